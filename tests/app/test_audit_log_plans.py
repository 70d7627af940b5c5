"""The dashboard audit log's queries are served by an index, whatever its size and filter
(usetix/blueprints/dashboard/audit_log.py, models.AuditEvent's indexes): each statement a
page sends on ``audit_events`` is explained on the suite's database. On PostgreSQL, with
100,000 records of one account (analyzed), no plan scans the table and no scan reads more
than a few pages' worth of rows (EXPLAIN ANALYZE); on SQLite, every plan searches an index.
The timings at a million records are the scale bench's (bench/scale.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from usetix.database.engine import db
from usetix.database.models import ApiToken, AuditEvent

from ..databases import POSTGRES_URL
from ..helpers import issue

LOG = "/admin/settings/audit_log"
RECORDS = 100_000 if POSTGRES_URL else 2_000
# A page is 26 records; the actions' loose index scan reads one per action.
MOST_ROWS_ONE_SCAN = 200
_ROWS = re.compile(r"Scan[^(]*on audit_events[^(]*\(actual rows=(\d+) loops=(\d+)\)|"
                   r"Scan[^(]*using \S+ on audit_events[^(]*\(actual rows=(\d+) loops=(\d+)\)")


def add_records(app, account_id: int) -> None:
    """RECORDS API-write records on the account's write token, a millisecond apart, in SQL."""
    with app.app_context():
        token = db.session.execute(sa.select(ApiToken.id, ApiToken.description)
                                   .where(ApiToken.account_id == account_id, ApiToken.tier == "write")).one()
        values = {"account_id": account_id, "token_id": token.id, "description": token.description,
                  "first_at": datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None)}
        if POSTGRES_URL:
            db.session.execute(sa.text("""
                INSERT INTO audit_events (account_id, actor, action, token_id, token_description, token_tier,
                                          created_at, object_type, object_id, object_label)
                SELECT :account_id, 'token', (ARRAY['attendee.created', 'attendee.checked_in'])[1 + g % 2],
                       :token_id, :description, 'write', :first_at + g * interval '1 millisecond', 'attendee', g,
                       'Guest ' || g
                FROM generate_series(1, :count) AS g"""), {**values, "count": RECORDS})
        else:
            db.session.execute(sa.text("""
                INSERT INTO audit_events (account_id, actor, action, token_id, token_description, token_tier,
                                          created_at, object_type, object_id, object_label)
                VALUES (:account_id, 'token', :action, :token_id, :description, 'write', :created_at, 'attendee',
                        :n, 'Guest')"""),
                [{**values, "action": ("attendee.created", "attendee.checked_in")[n % 2], "n": n,
                  "created_at": f"2026-01-01 00:{n // 60000 % 60:02d}:{n // 1000 % 60:02d}.{n % 1000:03d}000"}
                 for n in range(RECORDS)])
        db.session.commit()
        if POSTGRES_URL:
            db.session.execute(sa.text("ANALYZE audit_events"))
            db.session.commit()


def statements_of(app, client, url: str) -> tuple[str, list[tuple[str, object]]]:
    """The page at ``url`` and the SELECTs it sent on audit_events, with their bound values."""
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "audit_events" in statement and statement.lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.get(url)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 200
    return response.text, seen


def plan(app, statement: str, parameters) -> list[str]:
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            if POSTGRES_URL:
                cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + statement, parameters)
                return [row[0] for row in cursor.fetchall()]
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            return [row[-1] for row in cursor.fetchall()]
        finally:
            raw.rollback()
            raw.close()


def older(page: str) -> str:
    return re.search(r'<a rel="next" href="([^"]+)"', page).group(1).replace("&amp;", "&")


def test_every_audit_log_query_is_served_by_an_index(app, logged_in, orgs):
    acme = orgs["acme"]
    issue(app, acme, "write")
    add_records(app, acme.account_id)
    with app.app_context():
        token_id = db.session.scalar(sa.select(ApiToken.id).where(ApiToken.account_id == acme.account_id))
    urls = [LOG, f"{LOG}?action=attendee.checked_in", f"{LOG}?token={token_id}", f"{LOG}?admin={acme.admin_id}"]
    checked = 0
    for url in urls:
        page, statements = statements_of(app, logged_in, url)
        if 'rel="next"' in page:  # the Older page, and back
            older_page, more = statements_of(app, logged_in, older(page))
            newer = re.search(r'<a rel="prev" href="([^"]+)"', older_page).group(1).replace("&amp;", "&")
            statements += more + statements_of(app, logged_in, newer)[1]
        for statement, parameters in statements:
            lines = plan(app, statement, parameters)
            shown = "\n".join(lines)
            if POSTGRES_URL:
                assert not any("Seq Scan on audit_events" in line for line in lines), shown
                for match in _ROWS.finditer(shown):
                    rows = int(match.group(1) or match.group(3))
                    assert rows <= MOST_ROWS_ONE_SCAN, f"{url}: a scan read {rows} rows\n{statement}\n{shown}"
            else:
                assert not any(re.match(r"SCAN audit_events\b", line) for line in lines), shown
                assert any("audit_events USING" in line for line in lines), shown
            checked += 1
    assert checked >= 4 * len(urls)


@pytest.mark.skipif(not POSTGRES_URL, reason="the sizes that make PostgreSQL choose a plan")
def test_the_check_is_not_vacuous(app, logged_in, orgs):
    """Without the page's index the newest page's plan reads far more rows: the test above would fail."""
    acme = orgs["acme"]
    issue(app, acme, "write")
    add_records(app, acme.account_id)
    with app.app_context():
        db.session.execute(sa.text("DROP INDEX ix_audit_events_account_created_id"))
        db.session.commit()
    try:
        _, statements = statements_of(app, logged_in, LOG)
        page_query = next(s for s in statements if "ORDER BY audit_events.created_at DESC" in s[0]
                          and "LIMIT" in s[0] and "action" not in s[0].split("WHERE")[1].split("ORDER")[0])
        shown = "\n".join(plan(app, *page_query))
    finally:
        # The suite's PostgreSQL schema is shared by every test: put the index back.
        with app.app_context():
            index = next(i for i in AuditEvent.__table__.indexes if i.name == "ix_audit_events_account_created_id")
            index.create(db.engine)
    assert max(int(m.group(1) or m.group(3)) for m in _ROWS.finditer(shown)) > MOST_ROWS_ONE_SCAN \
        or "Seq Scan on audit_events" in shown
