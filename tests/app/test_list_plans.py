"""On PostgreSQL at 100,000 rows, a cursor page and a sync page seek in an index: their
plans never scan the event's or the account's rows (usetix/database/list_queries.py and
the indexes of migration e27c0de50001)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from usetix.blueprints.api.attendees import ATTENDEES
from usetix.blueprints.api.events import EVENTS
from usetix.database.engine import db
from usetix.database.list_queries import AFTER, BEFORE, FIRST, LIST_ORDER, SYNC_ORDER

from ..databases import TEST_DATABASE_URL

POSTGRES_ONLY = pytest.mark.skipif(not (TEST_DATABASE_URL or "").startswith("postgresql"),
                                   reason="query plans of PostgreSQL")
ROWS = 100_000


@pytest.fixture
def grown(app, orgs):  # PostgreSQL's SQL
    """Acme's first event grown to 100,000 attendees, and Acme to 100,000 events, in SQL."""
    acme = orgs["acme"]
    with app.app_context():
        db.session.execute(sa.text(
            "INSERT INTO attendees (account_id, event_id, name, email, ticket_type, checked_in, created_at, "
            "updated_at, version, ticket_code) SELECT :account, :event, 'Guest ' || n, 'guest' || n || '@example.com', "
            "'General', false, now() - n * interval '1 second', now() - n * interval '1 second', 1, "
            "upper(substr(md5(random()::text || n), 1, 24)) "
            "FROM generate_series(1, :rows) AS n"),
            {"account": acme.account_id, "event": acme.event_ids[0], "rows": ROWS})
        db.session.execute(sa.text(
            "INSERT INTO events (account_id, title, starts_at, ends_at, venue, status, created_at, updated_at, "
            "version) SELECT :account, 'Event ' || n, now() + n * interval '1 hour', "
            "now() + n * interval '2 hours', 'Hall', 'published', now(), now() - n * interval '1 second', 1 "
            "FROM generate_series(1, :rows) AS n"),
            {"account": acme.account_id, "rows": ROWS})
        db.session.commit()
        db.session.execute(sa.text("ANALYZE attendees"))
        db.session.execute(sa.text("ANALYZE events"))
        db.session.execute(sa.text("ANALYZE tombstones"))
        db.session.commit()
    return acme


def plan(app, statement, params: dict) -> str:
    with app.app_context():
        compiled = statement.compile(dialect=db.engine.dialect)
        values = compiled.construct_params(params)
        with db.engine.connect() as connection:
            rows = connection.exec_driver_sql("EXPLAIN " + compiled.string, values).all()
    return "\n".join(row[0] for row in rows)


def statement_of(page):
    return getattr(page.rows, "statement", page.rows)


WAYS = ((LIST_ORDER, False, AFTER), (LIST_ORDER, False, BEFORE), (SYNC_ORDER, False, AFTER),
        (SYNC_ORDER, True, AFTER), (SYNC_ORDER, False, FIRST))
CASES = [(listed, *way) for listed in ("events", "attendees") for way in WAYS]


@POSTGRES_ONLY
def test_cursor_and_sync_pages_seek_in_an_index(app, grown):
    """Every case on one grown database (growing it is most of the test's time)."""
    middle = datetime.now() - timedelta(seconds=ROWS // 2)  # half the rows changed after it: a deep page
    for listed, order, include_deleted, way in CASES:
        lister = EVENTS if listed == "events" else ATTENDEES
        key = {LIST_ORDER: {"events": (middle, 50_000), "attendees": (50_000,)}[listed],
               SYNC_ORDER: (middle, 50_000)}[order]
        params = {"account_id": grown.account_id, "event_id": grown.event_ids[0], "limit": 101, "offset": 0,
                  # A first sync page counts what it lists (meta.total): a sync of the last 100 changes.
                  "until": datetime(2100, 1, 1), "updated_since": datetime.now() - timedelta(seconds=100),
                  **{f"key{index}": value for index, value in enumerate(key)}}
        shown = plan(app, statement_of(lister.statements.page(order, include_deleted, way == FIRST, way)), params)
        case = (listed, order, include_deleted, way)
        assert f"Seq Scan on {listed}" not in shown, (case, shown)
        assert "Index" in shown, (case, shown)
        if way != FIRST:  # a cursor page reads its rows in index order: nothing to sort
            assert "Sort" not in shown or include_deleted, (case, shown)


@pytest.mark.skipif(bool(TEST_DATABASE_URL), reason="SQLite's planner (PostgreSQL's: above)")
def test_on_sqlite_an_events_first_page_reads_that_event_alone(app, orgs):
    """An event's list, even its first page with its count, reads the event's attendees by
    the event's index, not the account's attendees (an index on the account misled SQLite)."""
    acme = orgs["acme"]
    statement = statement_of(ATTENDEES.statements.page(LIST_ORDER, False, False, FIRST))
    with app.app_context():
        compiled = statement.compile(dialect=db.engine.dialect)
        values = compiled.construct_params({"account_id": acme.account_id, "event_id": acme.event_ids[0],
                                            "limit": 25, "offset": 0})
        with db.engine.connect() as connection:
            shown = [row[-1] for row in connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + compiled.string, tuple(values[name] for name in compiled.positiontup))]
    searches = [line for line in shown if "attendees" in line]
    assert searches and all("(event_id=?" in line for line in searches), shown
