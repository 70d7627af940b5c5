"""PreparedSelect: the API's hot SELECTs on the driver's cursor give SQLAlchemy's rows."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from usetix.auth.bearer import TOKEN_BY_DIGEST
from usetix.blueprints.api.attendees import ATTENDEES
from usetix.blueprints.api.events import EVENTS
from usetix.database.engine import db
from usetix.database.list_queries import FIRST, LIST_ORDER, SYNC_ORDER
from usetix.database.models import ApiToken
from usetix.database.prepared import SQLALCHEMY_CHECKED, PreparedSelect, driver_connection

from ..helpers import bearer
from ..queries import recorded_queries


def both_ways(app, prepared: PreparedSelect, params: dict):
    """The rows through the driver's cursor, and through SQLAlchemy, as plain lists."""
    with app.app_context(), db.engine.connect() as connection:
        fast = prepared.rows(connection, params)
        slow = connection.execute(prepared.statement, params).all()
    return [list(row) for row in fast], [list(row) for row in slow]


@pytest.mark.parametrize("since", [None, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)])
def test_a_list_page_reads_the_same_on_the_cursor_as_through_sqlalchemy(app, orgs, since):
    params = {"account_id": orgs["acme"].account_id, "limit": 25, "offset": 0}
    order = LIST_ORDER
    if since is not None:
        order = SYNC_ORDER
        params.update(updated_since=since, until=datetime(2200, 1, 1))
    fast, slow = both_ways(app, EVENTS.statements.page(order, False, since is not None, FIRST).rows, params)
    assert fast == slow
    assert len(fast) == (0 if since and since.year == 2100 else 3)
    starts_at = EVENTS.statements.names.index("starts_at")
    for row in fast:  # naive UTC datetimes, which orjson writes with a Z (OPT_NAIVE_UTC)
        assert isinstance(row[starts_at], datetime) and row[starts_at].tzinfo is None


def test_booleans_and_timestamps_come_back_typed(app, orgs):
    with app.app_context():
        event_id = db.session.scalar(sa.text("SELECT min(id) FROM events WHERE account_id = :a"),
                                     {"a": orgs["acme"].account_id})
    params = {"account_id": orgs["acme"].account_id, "event_id": event_id, "limit": 25, "offset": 0}
    fast, slow = both_ways(app, ATTENDEES.statements.page(LIST_ORDER, False, False, FIRST).rows, params)
    assert fast == slow and len(fast) == 2
    checked_in = ATTENDEES.statements.names.index("checked_in")
    assert all(type(row[checked_in]) is bool for row in fast)


def test_the_token_lookup_reads_the_same_on_the_cursor(app, orgs, read_token):
    from usetix.core import token_format as tokens

    with app.app_context():
        db.session.execute(sa.update(ApiToken).values(last_used_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)))
        db.session.commit()
    fast, slow = both_ways(app, TOKEN_BY_DIGEST, {"digest": tokens.digest(read_token)})
    assert fast == slow
    [(_, account_id, tier, revoked, last_used_at, expires_at, *permissions, event_ids)] = fast
    assert (account_id, tier, revoked) == (orgs["acme"].account_id, "read", False)
    assert last_used_at == datetime(2026, 1, 2, 3, 4, 5)  # naive UTC, as stored
    assert expires_at is None
    assert permissions == ["read", "read", "none", "none"] and event_ids is None  # the read preset, every event


def test_statement_listeners_get_sqlalchemys_context(app, client, read_token):
    """A listener that reads the execution context (Flask-SQLAlchemy's query recording, APM
    hooks) works: while one is registered the statements run through SQLAlchemy."""
    contexts = []

    def needs_context(conn, cursor, statement, parameters, context, executemany):
        contexts.append(context.compiled is not None)

    with app.app_context():
        sa.event.listen(db.engine, "before_cursor_execute", needs_context)
    try:
        assert client.get("/admin/events", headers=bearer(read_token)).status_code == 200
    finally:
        with app.app_context():
            sa.event.remove(db.engine, "before_cursor_execute", needs_context)
    assert contexts and all(contexts)


@pytest.mark.app_config(SQLALCHEMY_RECORD_QUERIES=True)
def test_the_api_serves_with_query_recording_on(client, read_token):
    assert client.get("/admin/events", headers=bearer(read_token)).status_code == 200


def test_the_suite_runs_the_production_branch(app, orgs):
    """Without a listener (as in production, and in this suite by default) the statement
    runs on the driver's cursor: no engine-wide listener in tests/conftest.py sets
    SQLAlchemy's flags for every engine."""
    with app.app_context(), db.engine.connect() as connection:
        assert not (connection._has_events or connection.engine._has_events)
        assert driver_connection(connection) is connection.connection.dbapi_connection


@pytest.mark.parametrize("on", ["connection", "engine"])
def test_a_listener_added_later_is_still_honoured(app, orgs, on):
    """The listener branch: a listener added to one connection, or to the engine, after
    PreparedSelect ran without one, sees the statement (SQLAlchemy runs it)."""
    seen = []
    page = EVENTS.statements.page(LIST_ORDER, False, False, FIRST).rows
    params = {"account_id": orgs["acme"].account_id, "limit": 25, "offset": 0}

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    with app.app_context(), db.engine.connect() as connection:
        quiet = page.rows(connection, params)
        assert seen == []
        target = connection if on == "connection" else connection.engine
        sa.event.listen(target, "before_cursor_execute", record)
        try:
            assert driver_connection(connection) is None
            heard = page.rows(connection, params)
        finally:
            sa.event.remove(target, "before_cursor_execute", record)
    assert len(seen) == 1 and seen[0].startswith("SELECT events.id")
    assert [list(row) for row in heard] == [list(row) for row in quiet] and len(quiet) == 3


def test_an_echoing_engine_logs_the_statements(app, orgs, caplog):
    """``echo`` logs every statement through SQLAlchemy's logger: PreparedSelect's too."""
    page = EVENTS.statements.page(LIST_ORDER, False, False, FIRST).rows
    params = {"account_id": orgs["acme"].account_id, "limit": 25, "offset": 0}
    with app.app_context():
        engine = db.engine
    engine.echo = True
    try:
        with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"), engine.connect() as connection:
            assert driver_connection(connection) is None
            rows = page.rows(connection, params)
    finally:
        engine.echo = False
    assert len(rows) == 3
    assert any(r.getMessage().startswith("SELECT events.id") for r in caplog.records)


def test_private_attributes_read_are_as_checked():
    """driver_connection() reads SQLAlchemy's private ``_echo`` and ``_has_events``; this
    fails when a SQLAlchemy release stops setting them the way it was checked against."""
    assert sa.__version__.split(".")[:2] == SQLALCHEMY_CHECKED.split(".")[:2]
    quiet = sa.create_engine("sqlite://")
    loud = sa.create_engine("sqlite://", echo=True)
    try:
        with quiet.connect() as connection:
            # Plain attributes: an instance's flag, over the class's default (a class listener sets that).
            assert vars(connection)["_echo"] is False
            assert sa.engine.Connection._has_events is False and sa.engine.Engine._has_events is False
            assert connection._has_events is False and quiet._has_events is False
            assert driver_connection(connection) is connection.connection.dbapi_connection
            sa.event.listen(connection, "after_cursor_execute", lambda *args: None)
            assert vars(connection)["_has_events"] is True and driver_connection(connection) is None
        sa.event.listen(quiet, "begin", lambda conn: None)  # not a statement listener
        with quiet.connect() as connection:
            assert vars(quiet)["_has_events"] is True
            assert driver_connection(connection) is connection.connection.dbapi_connection
        with loud.connect() as connection:
            assert vars(connection)["_echo"] is True and driver_connection(connection) is None
    finally:
        quiet.dispose()
        loud.dispose()


def test_statements_with_no_bound_value_and_with_repeated_ones(app, orgs, read_token):
    """The values go to the driver in the order the SQL names them, once per mention."""
    tokens_table = ApiToken.__table__
    no_binds = PreparedSelect(sa.select(sa.func.count()).select_from(tokens_table))
    account = sa.bindparam("account_id")
    repeated = PreparedSelect(sa.select(sa.func.count()).select_from(tokens_table)
                              .where(tokens_table.c.account_id == account, tokens_table.c.id > sa.bindparam("after"),
                                     tokens_table.c.account_id == account))
    for prepared, params in ((no_binds, {}), (repeated, {"account_id": orgs["acme"].account_id, "after": 0})):
        fast, slow = both_ways(app, prepared, params)
        assert fast == slow and fast[0][0] > 0


def test_a_driver_error_is_raised_as_sqlalchemys(app):
    broken = PreparedSelect(sa.select(sa.column("nothing")).select_from(sa.table("no_such_table")))
    with app.app_context(), db.engine.connect() as connection, pytest.raises(sa.exc.DBAPIError):
        broken.rows(connection, {})


@pytest.mark.parametrize("hide", [True, False])
def test_a_driver_error_hides_its_values_when_the_engine_does(app, hide):
    broken = PreparedSelect(sa.select(sa.column("nothing")).select_from(sa.table("no_such_table"))
                            .where(sa.column("nothing") == sa.bindparam("secret")))
    with app.app_context():
        engine = db.engine
    assert engine.hide_parameters is True  # the app's default (usetix/config.py)
    engine.hide_parameters = hide
    try:
        with engine.connect() as connection, pytest.raises(sa.exc.DBAPIError) as raised:
            broken.rows(connection, {"secret": "utx-digest-of-a-token"})
    finally:
        engine.hide_parameters = True
    assert ("utx-digest-of-a-token" in str(raised.value)) is not hide


def test_an_authenticated_page_sends_two_statements(app, client, read_token):
    client.get("/admin/events", headers=bearer(read_token))  # last_used_at written here
    with recorded_queries(app) as statements:
        assert client.get("/admin/events", headers=bearer(read_token)).status_code == 200
    assert len(statements) == 2
