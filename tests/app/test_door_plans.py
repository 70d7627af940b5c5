"""On PostgreSQL, a batch's lookups by nonce and by code find each value in the
(account_id, key) index, and its admissions, their audit records and the takeover of
earlier scans find the attendees and scans by id, never by reading the account's scans or
attendees: on tables without statistics (fresh) as after ANALYZE, in a custom plan and in
the generic plan a prepared statement switches to (usetix/blueprints/api/door.py:
SEEN_NONCES, LOOKUP, ADMIT_EARLIER, SUPERSEDED). On SQLite, the admissions' statements
search by key too."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import psycopg.sql
import pytest
import sqlalchemy as sa

from usetix.blueprints.api.door import ADMIT_EARLIER, LOOKUP, SEEN_NONCES, SUPERSEDED
from usetix.database.engine import db

from ..databases import TEST_DATABASE_URL

POSTGRES_ONLY = pytest.mark.skipif(not (TEST_DATABASE_URL or "").startswith("postgresql"),
                                   reason="query plans of PostgreSQL")
SQLITE_ONLY = pytest.mark.skipif(bool(TEST_DATABASE_URL), reason="query plans of SQLite")
SCANS = 200_000
ATTENDEES = 100_000
REISSUED = 20_000
BATCH = 100
# The unique index of each looked-up table, and the column after account_id.
KEYS = {"uq_scans_account_nonce": "nonce", "uq_attendees_account_ticket_code": "ticket_code",
        "uq_reissued_ticket_codes_account_code": "code"}


@pytest.fixture
def grown(app, orgs, write_token):  # PostgreSQL's SQL
    """Acme with 100,000 attendees (20,000 of them reissued) and 200,000 scans (half of them
    admitted), not analyzed."""
    acme = orgs["acme"]
    with app.app_context():
        params = {"account": acme.account_id, "event": acme.event_ids[0]}
        db.session.execute(sa.text(
            "INSERT INTO attendees (account_id, event_id, name, email, ticket_type, checked_in, created_at, "
            "updated_at, version, ticket_code) SELECT :account, :event, 'Guest ' || n, 'guest' || n || "
            "'@example.com', 'General', false, now(), now(), 1, upper(substr(md5('code' || n), 1, 24)) "
            "FROM generate_series(1, :rows) AS n"), {**params, "rows": ATTENDEES})
        db.session.execute(sa.text(
            "INSERT INTO scans (account_id, event_id, token_id, result, code_tail, code_digest, nonce, source, "
            "scanned_at, received_at, updated_at, attendee_id, checked_in_at) SELECT :account, :event, "
            "(SELECT min(id) FROM api_tokens WHERE account_id = :account), "
            "CASE WHEN n % 2 = 0 THEN 'admitted' ELSE 'unknown_code' END, 'ABCD', md5('d' || n), 'nonce-' || n, "
            "'batch', now(), now(), now(), CASE WHEN n % 2 = 0 THEN 1000 + n % 100000 END, "
            "CASE WHEN n % 2 = 0 THEN now() END FROM generate_series(1, :rows) AS n"),
            {**params, "rows": SCANS})
        db.session.execute(sa.text(
            "INSERT INTO reissued_ticket_codes (account_id, attendee_id, code, reissued_at) "
            "SELECT account_id, id, upper(substr(md5('old' || id), 1, 24)), now() FROM attendees "
            "WHERE account_id = :account ORDER BY id LIMIT :rows"), {**params, "rows": REISSUED})
        db.session.commit()
    return acme


def executed(connection: sa.Connection, statement, params: dict) -> tuple[str, Any]:
    """The SQL and parameters ``statement`` is executed as (an expanding IN's values as
    parameters of their own); the test's transaction is rolled back."""
    sent = {}

    def capture(conn, cursor, sql, parameters, context, executemany):
        sent.update(sql=sql, values=parameters)

    sa.event.listen(connection.engine, "before_cursor_execute", capture)
    try:
        connection.execute(statement, params)
    finally:
        sa.event.remove(connection.engine, "before_cursor_execute", capture)
    return sent["sql"], sent["values"]


def positional(sql: str) -> tuple[str, list[str]]:
    """``sql``'s named parameters numbered as psycopg numbers them (in order of first use), and their names."""
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", sql)))
    return re.sub(r"%\((\w+)\)s", lambda match: f"${names.index(match.group(1)) + 1}", sql), names


def explain(connection: sa.Connection, statement, params: dict, generic: bool) -> str:
    """The plan of ``statement`` as a prepared statement's custom plan, or its generic plan."""
    sql, values = executed(connection, statement, params)
    numbered, names = positional(sql)
    connection.exec_driver_sql("PREPARE door_lookup AS " + numbered)
    driver = connection.connection.driver_connection
    arguments = ", ".join(psycopg.sql.Literal(values[name]).as_string(driver) for name in names)
    try:
        mode = "force_generic_plan" if generic else "force_custom_plan"
        connection.exec_driver_sql(f"SET plan_cache_mode = {mode}")
        rows = connection.exec_driver_sql(f"EXPLAIN (COSTS OFF) EXECUTE door_lookup({arguments})").all()
    finally:
        connection.exec_driver_sql("DEALLOCATE door_lookup")
        connection.exec_driver_sql("RESET plan_cache_mode")
    return "\n".join(row[0] for row in rows)


def index_conditions(plan: str) -> dict[str, list[str]]:
    """Each of KEYS' indexes the plan scans, with the conditions it scans them by."""
    found: dict[str, list[str]] = {}
    lines = plan.splitlines()
    for number, line in enumerate(lines):
        index = next((name for name in KEYS if re.search(rf"(using|on) {name}\b", line)), None)
        if index is not None:
            found.setdefault(index, []).append(lines[number + 1].strip())
    return found


@POSTGRES_ONLY
def test_the_batchs_lookups_seek_each_nonce_and_code(app, grown):
    codes = [f"{n:024X}" for n in range(BATCH)]
    attendee_ids = list(range(1000, 1000 + BATCH))
    with app.app_context():
        token_id = db.session.execute(sa.text("SELECT min(id) FROM api_tokens")).scalar()
    nonces = [f"nonce-{n}" for n in range(1, BATCH // 2 + 1)] + [f"new-{n}" for n in range(BATCH // 2)]
    cases = [(SEEN_NONCES["postgresql", False], {"account_id": grown.account_id, "nonces": nonces},
              {"uq_scans_account_nonce"}),
             (LOOKUP["postgresql", False], {"account_id": grown.account_id, "event_id": grown.event_ids[0],
                                            "codes": codes},
              {"uq_attendees_account_ticket_code", "uq_reissued_ticket_codes_account_code"}),
             # A redeem's one code and one nonce (its Idempotency-Key), bound alone.
             (SEEN_NONCES["postgresql", True], {"account_id": grown.account_id, "nonces": nonces[0]},
              {"uq_scans_account_nonce"}),
             (LOOKUP["postgresql", True], {"account_id": grown.account_id, "event_id": grown.event_ids[0],
                                           "codes": codes[0]},
              {"uq_attendees_account_ticket_code", "uq_reissued_ticket_codes_account_code"}),
             # The admissions and their audit records: the attendees by id, never by the account.
             (ADMIT_EARLIER.update, {"by_account_id": grown.account_id,
                                     "scan_ids": json.dumps(list(range(1, BATCH + 1))),
                                     "attendee_ids": json.dumps(attendee_ids), "now": datetime.now(UTC),
                                     "attendee_codes": json.dumps(list(zip(attendee_ids, codes, strict=True)))},
              set()),
             (ADMIT_EARLIER.audit, {"by_account_id": grown.account_id, "by_token_id": token_id, "address": "::1",
                                    "at": datetime.now(UTC), "audited_ids": json.dumps(attendee_ids)}, set())]
    with app.app_context(), db.engine.connect() as connection:
        for analyzed in (False, True):
            if analyzed:
                for table in ("scans", "attendees", "reissued_ticket_codes"):
                    connection.exec_driver_sql(f"ANALYZE {table}")
            for statement, params, indexes in cases:
                for generic in (False, True):
                    plan = explain(connection, statement, params, generic)
                    case = (sorted(indexes), "analyzed" if analyzed else "fresh", "generic" if generic else "custom")
                    conditions = index_conditions(plan)
                    assert set(conditions) == indexes, (case, plan)
                    for index, scanned_by in conditions.items():
                        assert all(re.match(rf"Index Cond: \(\(account_id = .*\) AND \(\({KEYS[index]}\)", each)
                                   for each in scanned_by), (case, plan)
                    assert "Seq Scan on scans" not in plan and "Seq Scan on attendees" not in plan, (case, plan)


@POSTGRES_ONLY
def test_the_batchs_takeover_finds_the_admitted_scans_by_attendee(app, grown):
    """The scans whose check-in a batch took over: each attendee's admitted scans sought in
    (attendee_id, result), not the account's admitted scans read by result (a hashed
    ``IN (SELECT …)`` of the list did that: 100,000 here)."""
    params = {"attendee_ids": json.dumps(list(range(1000, 1000 + BATCH))), "now": datetime.now(UTC)}
    with app.app_context(), db.engine.connect() as connection:
        for analyzed in (False, True):
            if analyzed:
                connection.exec_driver_sql("ANALYZE scans")
            for generic in (False, True):
                plan = explain(connection, SUPERSEDED, params, generic)
                assert re.search(r"Index Cond: \(\(attendee_id = ANY \(\$\d+\)\) AND \(\(result\)::text = ", plan), plan


@SQLITE_ONLY
def test_the_batchs_writes_find_rows_by_key_on_sqlite(app, orgs, write_token):
    """On SQLite a batch's admissions, their audit records and the takeover of earlier scans
    search their rows by key (a list bound as JSON once read every scan: SQLAlchemy wrote the
    list's condition as ``(… IN …) = 1``, which no index serves)."""
    ids = json.dumps([1, 2, 3])
    cases = [(ADMIT_EARLIER.update, {"by_account_id": 1, "scan_ids": ids, "attendee_ids": ids, "now": datetime.now(UTC),
                                     "attendee_codes": json.dumps([[1, "A"], [2, "B"]])}),
             (ADMIT_EARLIER.audit, {"by_account_id": 1, "by_token_id": 1, "address": "::1", "at": datetime.now(UTC),
                                    "audited_ids": ids}),
             (SUPERSEDED, {"attendee_ids": ids, "now": datetime.now(UTC)})]
    with app.app_context(), db.engine.connect() as connection:
        for statement, params in cases:
            sql, values = executed(connection, statement, params)
            details = [row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, values)]
            assert not [step for step in details if re.match(r"SCAN (scans|attendees)\b", step)], (sql, details)


@POSTGRES_ONLY
def test_a_redeems_lookups_are_planned_once(app, grown):
    """A redeem's lookups (one code, one nonce) as prepared statements: PostgreSQL switches to
    their generic plan after its first five executions instead of planning each one anew
    (an array's unnest made it plan every redeem: 0.4 ms of each)."""
    with app.app_context(), db.engine.connect() as connection:
        code = connection.execute(sa.text("SELECT ticket_code FROM attendees WHERE account_id = :account LIMIT 1"),
                                  {"account": grown.account_id}).scalar_one()
        lookups = [(LOOKUP["postgresql", True], {"account_id": grown.account_id, "event_id": grown.event_ids[0],
                                                 "codes": code}),
                   (SEEN_NONCES["postgresql", True], {"account_id": grown.account_id, "nonces": "nonce-1"})]
        for statement, params in lookups:
            for _ in range(12):  # psycopg prepares a statement at its fifth execution
                connection.execute(statement, params).all()
            sql, _ = executed(connection, statement, params)
            generic, custom = connection.execute(sa.text(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = :sql"),
                {"sql": positional(sql)[0]}).one()
            assert generic > 0 and custom <= 5, (generic, custom)
