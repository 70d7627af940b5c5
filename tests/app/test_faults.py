"""Faults that fail safe, and say so.

Redis down as the rate-limit storage (a URL pointing at a closed port): the API's limits
fail open, with an error logged at most once per interval; the login throttle fails
closed with our 503 page. /healthz reports each dependency the app is configured to use.
A rollback that fails at the end of a request leaves its answer and its log line true.
In process; through real gunicorn (and PostgreSQL dropping every connection under load):
tests/live/test_faults.py.
"""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from usetix import create_app
from usetix.core import token_format
from usetix.database.engine import db
from usetix.database.models import RateLimitCounter, ServerSession

from ..databases import TEST_DATABASE_URL
from ..helpers import (
    bearer,
    closed_redis_url,
    empty_all_tables,
    issue,
    login_with_form,
    make_org,
    make_test_config,
)


def assert_our_headers(response) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Accept" in response.headers["Vary"]


@pytest.fixture
def down():
    """A Redis URL at a closed port."""
    return closed_redis_url()


@pytest.fixture
def redis_url():
    from ..databases import REDIS_URL, redis_client_or_skip

    redis_client_or_skip().close()
    return REDIS_URL


@pytest.fixture
def app_factory(tmp_path):
    """Apps with extra settings on this test's database, holding Acme Events."""
    made = []

    def make(**settings):
        app = create_app({**make_test_config(tmp_path), **settings})
        with app.app_context():
            db.create_all()
            org = make_org("Acme Events", "admin@acme.example")
        made.append(app)
        return app, org

    yield make
    for app in made:
        with app.app_context():
            if TEST_DATABASE_URL:
                empty_all_tables()
            db.engine.dispose()


# --- Redis down as the rate-limit storage -----------------------------------------------------

def test_redis_down_the_api_serves_uncounted_and_logs_once(app_factory, down, caplog):
    app, org = app_factory(RATELIMIT_STORAGE_URL=down)
    raw = issue(app, org)
    client = app.test_client()
    with caplog.at_level(logging.ERROR, logger="usetix.ratelimit"):
        for _ in range(3):
            response = client.get("/admin/events", headers=bearer(raw))
            assert response.status_code == 200
            assert "RateLimit-Limit" not in response.headers  # not counted, so nothing to say
        # Refusals are counted by the credential gate and the bearer hook: both survive.
        malformed = client.get("/admin/events", headers=bearer("utx_" + "A" * 36))
        unknown = client.get("/admin/events", headers=bearer(token_format.generate()))
        missing = client.get("/admin/events", headers={"Accept": "application/json"})
    for response in (malformed, unknown, missing):
        assert response.status_code == 401
        assert response.json["error"] in ("malformed_token", "invalid_token", "missing_token")
        assert_our_headers(response)
    outages = [r for r in caplog.records if r.name == "usetix.ratelimit" and r.levelno == logging.ERROR]
    assert len(outages) == 1, [r.getMessage() for r in outages]  # once per interval, not per request
    assert "API's limits are not counted" in outages[0].getMessage()
    assert down.rpartition(":")[0] in outages[0].getMessage()


def test_redis_down_logins_fail_closed_with_our_503_page(app_factory, down, caplog):
    app, _ = app_factory(RATELIMIT_STORAGE_URL=down)
    with caplog.at_level(logging.ERROR, logger="usetix.ratelimit"):
        response = login_with_form(app.test_client())
    assert response.status_code == 503
    assert response.mimetype == "text/html"
    assert "Logging in is paused" in response.text
    assert int(response.headers["Retry-After"]) > 0
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert_our_headers(response)
    assert "logins are refused (503)" in caplog.text
    # No password was checked, so no session was made.
    assert "Location" not in response.headers


def test_redis_down_healthz_is_503_as_every_login_is(app_factory, down):
    app, _ = app_factory(RATELIMIT_STORAGE_URL=down)
    response = app.test_client().get("/healthz", headers={"Accept": "application/json"})
    assert response.status_code == 503
    assert response.json == {"status": "unavailable", "checks": {
        "database": "ok", "session_store": "ok", "rate_limit_storage": "unavailable"}}


def test_session_redis_down_healthz_is_503(app_factory):
    app, _ = app_factory(SESSION_REDIS_URL=closed_redis_url())
    response = app.test_client().get("/healthz", headers={"Accept": "application/json"})
    assert response.status_code == 503
    assert response.json == {"status": "unavailable", "checks": {
        "database": "ok", "session_store": "unavailable", "rate_limit_storage": "ok"}}


def test_healthz_reports_each_configured_redis_when_up(app_factory, redis_url):
    app, _ = app_factory(RATELIMIT_STORAGE_URL=redis_url, SESSION_REDIS_URL=redis_url)
    response = app.test_client().get("/healthz", headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.json == {"status": "ok", "checks": {"database": "ok", "session_store": "ok",
                                                        "rate_limit_storage": "ok"}}


@pytest.mark.parametrize("table, check", [(ServerSession.__table__, "session_store"),
                                          (RateLimitCounter.__table__, "rate_limit_storage")])
def test_healthz_is_503_when_a_table_every_login_needs_is_gone(app, client, orgs, table, check):
    """The database answers SELECT 1, but without the sessions table (or the login
    throttle's) every login is a 503: so is /healthz, naming what failed."""
    with app.app_context():
        table.drop(db.engine)
    try:
        response = client.get("/healthz", headers={"Accept": "application/json"})
        assert response.status_code == 503
        assert response.json == {"status": "unavailable", "checks": {
            "database": "ok", "session_store": "ok", "rate_limit_storage": "ok", check: "unavailable"}}
        assert login_with_form(client).status_code == 503  # what /healthz said
    finally:  # PostgreSQL runs share one schema
        with app.app_context():
            table.create(db.engine, checkfirst=True)
    assert client.get("/healthz").status_code == 200


def test_healthz_does_not_check_the_throttle_when_limits_are_off(app_factory):
    app, _ = app_factory(RATELIMIT_ENABLED=False, RATELIMIT_STORAGE_URL=closed_redis_url())
    response = app.test_client().get("/healthz", headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.json == {"status": "ok", "checks": {"database": "ok", "session_store": "ok"}}


# --- Teardown that fails ----------------------------------------------------------------------

@pytest.fixture
def failing_rollback(app, monkeypatch):
    """Every rollback on the app's engine fails, as on a connection the server dropped."""
    with app.app_context():
        dialect = db.engine.dialect

    def rollback(dbapi_connection):
        raise dialect.loaded_dbapi.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(dialect, "do_rollback", rollback)


@pytest.mark.parametrize("path", ["/admin/account", "/admin/events"])
def test_a_rollback_failing_in_teardown_leaves_the_answer_and_its_log_line(app, client, read_token, path,
                                                                          failing_rollback, caplog):
    caplog.set_level(logging.INFO, logger="usetix.requests")
    response = client.get(path, headers=bearer(read_token))
    assert response.status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "usetix.requests"]
    assert len(lines) == 1 and " status=200 " in lines[0]
    if path == "/admin/account":  # the one that began a transaction on the request's connection
        assert "its connection is discarded" in caplog.text
    assert client.get(path, headers=bearer(read_token)).status_code == 200  # and the next one too


def test_the_orm_sessions_failing_rollback_is_discarded_without_raising(app, orgs, failing_rollback, caplog):
    """Flask-SQLAlchemy's session, which the pages use, ends in the same way."""
    with app.app_context():
        assert db.session.scalar(sa.text("SELECT 1")) == 1  # a transaction is open
    assert "its connection is discarded" in caplog.text
    with app.app_context():
        assert db.session.scalar(sa.text("SELECT 2")) == 2  # a working connection next time
