"""Usage you can audit: last use (when, from where, with what) and a use count, written at
most once a minute per token, after the response, never failing or delaying a request."""

import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from usetix import create_app
from usetix.database.engine import db
from usetix.database.models import ApiToken

from ..helpers import WriteLock, bearer, make_test_config, wait_until
from ..queries import recorded_queries

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def usage(app):
    with app.app_context():
        row = db.session.execute(sa.select(ApiToken.last_used_at, ApiToken.last_used_address,
                                           ApiToken.last_used_agent, ApiToken.use_count)).one()
    return tuple(row)


def call(client, token, address="127.0.0.1", agent="sync-script/1.0", path="/admin/events"):
    """An API request whose response is closed, as every server closes it (the usage write runs then)."""
    return client.get(path, headers={**bearer(token), "User-Agent": agent}, buffered=True,
                      environ_base={"REMOTE_ADDR": address})


def test_the_last_use_and_the_count_are_written_once_a_minute(app, client, read_token):
    with freeze_time(START) as clock:
        with recorded_queries(app) as first:
            assert call(client, read_token, "198.51.100.7", "first/1").status_code == 200
        assert usage(app) == (START, "198.51.100.7", "first/1", 1)
        clock.tick(timedelta(seconds=30))
        with recorded_queries(app) as within:
            for n in range(4):
                assert call(client, read_token, "198.51.100.8", f"second/{n}").status_code == 200
        assert usage(app) == (START, "198.51.100.7", "first/1", 1)  # nothing written within the minute
        clock.tick(timedelta(seconds=31))
        assert call(client, read_token, "203.0.113.5", "third/1").status_code == 200
    assert usage(app) == (START + timedelta(seconds=61), "203.0.113.5", "third/1", 6)
    # The token, the page, then (after the response) the usage, with its lock timeout set around it.
    assert [s.split()[0] for s in first if not s.startswith(("PRAGMA busy_timeout", "SET LOCAL"))] == \
        ["SELECT", "SELECT", "UPDATE"]
    assert not [s for s in within if s.lstrip().upper().startswith("UPDATE")]


def test_a_long_user_agent_is_cut_to_the_column(app, client, read_token):
    call(client, read_token, agent="x" * 5000)
    assert usage(app)[2] == "x" * 255


def test_two_workers_write_once_a_minute_between_them_and_lose_no_count(app, orgs, read_token, tmp_path):
    """Two apps on one database stand for two gunicorn workers (each its own memory)."""
    other = create_app({**make_test_config(tmp_path), "DATABASE_URL": app.config["DATABASE_URL"]})
    first, second = app.test_client(), other.test_client()
    with freeze_time(START) as clock:
        call(first, read_token, "192.0.2.1")
        clock.tick(timedelta(seconds=20))
        with recorded_queries(other) as statements:
            call(second, read_token, "192.0.2.2")  # sees the fresh last_used_at: keeps its count
            call(second, read_token, "192.0.2.2")
        assert not [s for s in statements if s.lstrip().upper().startswith("UPDATE")]
        assert usage(app)[1:] == ("192.0.2.1", "sync-script/1.0", 1)
        clock.tick(timedelta(seconds=41))
        call(second, read_token, "192.0.2.2")  # its turn: its three uses go in
        assert usage(app) == (START + timedelta(seconds=61), "192.0.2.2", "sync-script/1.0", 4)
        clock.tick(timedelta(seconds=1))
        call(first, read_token, "192.0.2.1")  # within the minute of the other's write: kept for later
        assert usage(app)[3] == 4
        clock.tick(timedelta(seconds=60))
        call(first, read_token, "192.0.2.1")
    assert usage(app) == (START + timedelta(seconds=122), "192.0.2.1", "sync-script/1.0", 6)
    with other.app_context():
        db.engine.dispose()


# A pooled SQLite connection waits this long for a lock (PostgreSQL's wait has no end): the
# usage write must give up long before, at its own short lock timeout.
@pytest.mark.app_config(SQLITE_BUSY_TIMEOUT_MS=120_000)
def test_a_held_write_lock_neither_fails_nor_delays_an_authenticated_request(app, client, read_token, caplog):
    caplog.set_level(logging.WARNING, logger="usetix.usage")

    def usage_records():
        return [r for r in caplog.records if r.name == "usetix.usage"]

    with WriteLock(app):
        response = client.get("/admin/events", headers=bearer(read_token))
        assert response.status_code == 200 and len(response.json["data"]) == 3
        assert usage_records() == []  # answered before the write was tried: it never waits for the lock
        # What the server does once the answer is sent: the write runs, and gives up.
        closing = threading.Thread(target=response.close)
        closing.start()
        wait_until(lambda: not closing.is_alive(), timeout=30, message="the usage write waited for the lock")
        again = client.get("/admin/events", headers=bearer(read_token))
        assert again.status_code == 200
        again.close()  # within the minute of the failed try: no second try
    [record] = [r for r in caplog.records if r.name == "usetix.usage"]
    assert record.getMessage().startswith("Usage of token 1 not recorded: OperationalError: ")
    assert read_token not in caplog.text
    assert usage(app) == (None, None, None, 0)
    # The uses were kept: the next write, a minute later, adds them.
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=2)
    with freeze_time(later):
        call(client, read_token)
    assert usage(app) == (later, "127.0.0.1", "sync-script/1.0", 3)


def test_a_failing_write_is_logged_and_the_answer_is_unchanged(app, client, read_token, caplog):
    caplog.set_level(logging.WARNING, logger="usetix.usage")
    with app.app_context():
        engine = db.engine
    # The database itself refuses the write, as a full disk or a read-only replica would.
    if engine.dialect.name == "sqlite":
        setup = ["CREATE TRIGGER refuse BEFORE UPDATE ON api_tokens BEGIN SELECT RAISE(ABORT, 'write refused'); END"]
        teardown = ["DROP TRIGGER refuse"]
    else:
        setup = ["CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'write refused'; END $$ "
                 "LANGUAGE plpgsql",
                 "CREATE TRIGGER refuse BEFORE UPDATE ON api_tokens FOR EACH ROW EXECUTE FUNCTION refuse()"]
        teardown = ["DROP TRIGGER refuse ON api_tokens", "DROP FUNCTION refuse()"]
    with engine.begin() as connection:
        for statement in setup:
            connection.exec_driver_sql(statement)
    try:
        response = call(client, read_token)
    finally:
        with engine.begin() as connection:
            for statement in teardown:
                connection.exec_driver_sql(statement)
    assert response.status_code == 200 and len(response.json["data"]) == 3
    [record] = [r for r in caplog.records if r.name == "usetix.usage"]
    assert record.getMessage().startswith("Usage of token 1 not recorded: ")
    assert "write refused" in record.getMessage()
    assert usage(app) == (None, None, None, 0)


# Not a unit of time: the number of threads that hammer one worker's counter at once.
THREADS = 8


def test_counting_from_threads_never_raises(app, read_token):
    """A gthread worker counts from several threads; the count may be approximate, never an error."""
    recorder = app.extensions["usetix.usage"]
    errors = []

    def hammer():
        try:
            for _ in range(500):
                recorder.count(1, None, datetime(2026, 12, 1, 9, 0))
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert 0 < recorder.pending(1) <= THREADS * 500
