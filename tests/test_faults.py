"""Faults that fail safe, and say so.

Redis down as the rate-limit storage (a URL pointing at a closed port): the API's limits
fail open, with an error logged at most once per interval; the login throttle fails
closed with our 503 page. /healthz reports each dependency the app is configured to use.
A rollback that fails at the end of a request leaves its answer and its log line true.
After PostgreSQL drops every connection under load, at most one request per worker fails.
In process and through real gunicorn.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest
import requests
import sqlalchemy as sa

from usetix import create_app
from usetix.auth.token_service import issue_token
from usetix.core import token_format
from usetix.extensions import db
from usetix.models import Admin, RateLimitCounter, ServerSession

from .databases import POSTGRES_URL, TEST_DATABASE_URL, in_schema, new_schema_name, scratch_database
from .helpers import (
    PASSWORD,
    bearer,
    csrf_token_from,
    empty_all_tables,
    issue,
    make_org,
    make_test_config,
)
from .servers import free_port, gunicorn, prepare_database

TIMEOUT = 10


def closed_redis_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def login(client, email: str = "admin@acme.example", password: str = PASSWORD, **kwargs):
    page = client.get("/login", **kwargs)
    return client.post("/login", data={"email": email, "password": password,
                                        "csrf_token": csrf_token_from(page.text)}, **kwargs)


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
    from .databases import REDIS_URL, redis_client_or_skip

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
        response = login(app.test_client())
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
        assert login(client).status_code == 503  # what /healthz said
    finally:  # PostgreSQL runs share one schema
        with app.app_context():
            table.create(db.engine, checkfirst=True)
    assert client.get("/healthz").status_code == 200


def test_healthz_does_not_check_the_throttle_when_limits_are_off(app_factory):
    app, _ = app_factory(RATELIMIT_ENABLED=False, RATELIMIT_STORAGE_URL=closed_redis_url())
    response = app.test_client().get("/healthz", headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.json == {"status": "ok", "checks": {"database": "ok", "session_store": "ok"}}


@pytest.mark.gunicorn
def test_redis_down_under_gunicorn(tmp_path):
    """Real gunicorn, two workers, the rate-limit storage at a closed port: the API serves,
    refusals are 401, the login form is our 503 page, and so is /healthz; no bare 500."""
    with scratch_database(tmp_path, "faults") as url:
        _redis_down_under_gunicorn(tmp_path, url)


def _redis_down_under_gunicorn(tmp_path, url: str) -> None:
    prepare_database(url, PASSWORD)
    raw = issue_token_in(url)
    log = tmp_path / "gunicorn.log"
    with gunicorn(url, workers=2, log_path=log, RATELIMIT_STORAGE_URL=closed_redis_url()) as base:
        for _ in range(4):
            ok = requests.get(base + "/admin/events", headers=bearer(raw), timeout=TIMEOUT)
            assert ok.status_code == 200 and "RateLimit-Limit" not in ok.headers
            refused = requests.get(base + "/admin/events", headers=bearer(raw[:-1] + "x"), timeout=TIMEOUT)
            assert refused.status_code == 401 and refused.json()["error"] in ("malformed_token", "invalid_token")
        http = requests.Session()
        page = http.get(base + "/login", timeout=TIMEOUT)
        paused = http.post(base + "/login", timeout=TIMEOUT, allow_redirects=False, data={
            "email": "admin@acme.example", "password": PASSWORD, "csrf_token": csrf_token_from(page.text)})
        assert paused.status_code == 503 and "Logging in is paused" in paused.text
        assert paused.headers["X-Content-Type-Options"] == "nosniff"
        health = requests.get(base + "/healthz", timeout=TIMEOUT)
        assert health.status_code == 503 and health.json()["checks"]["rate_limit_storage"] == "unavailable"
    text = log.read_text()
    assert "status=500" not in text and "Traceback" not in text
    # Each worker logs the outage once (two workers), not once per request.
    assert 1 <= text.count("the API's limits are not counted") <= 2


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


# --- PostgreSQL drops every connection under load ---------------------------------------------

@pytest.mark.gunicorn
@pytest.mark.skipif(not POSTGRES_URL, reason="needs PostgreSQL (USETIX_TEST_DATABASE_URL; CI's second pass)")
def test_after_postgresql_drops_its_connections_at_most_one_request_per_worker_fails(tmp_path):
    schema = new_schema_name("restart")
    name = schema[-24:]  # application_name: how this test finds its own server's connections
    admin = sa.create_engine(POSTGRES_URL, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.engine.make_url(in_schema(POSTGRES_URL, schema)).update_query_dict(
        {"application_name": name}).render_as_string(hide_password=False)
    workers = 2
    try:
        prepare_database(url, PASSWORD)
        raw = issue_token_in(url)
        # The per-token limit (600 a minute in each worker) is not what this test measures.
        with gunicorn(url, workers=workers, log_path=tmp_path / "gunicorn.log",
                      API_RATE_LIMIT="1000000 per minute") as base:
            statuses: list[tuple[int, str, str]] = []
            stop = threading.Event()

            def load(dashboard: bool):
                """The API (the token lookup runs on the driver's cursor) and, alternately
                on the same workers, the dashboard (the session store and the ORM), so
                that each worker holds more than one pooled connection."""
                http = requests.Session()
                headers = bearer(raw)
                if dashboard:
                    page = http.get(base + "/login", timeout=TIMEOUT)
                    assert http.post(base + "/login", timeout=TIMEOUT, data={
                        "email": "admin@acme.example", "password": PASSWORD,
                        "csrf_token": csrf_token_from(page.text)}).status_code == 200
                    headers = {}
                while not stop.is_set():
                    response = http.get(base + "/admin/events", headers=headers, timeout=TIMEOUT,
                                        allow_redirects=False)
                    statuses.append((response.status_code, response.headers.get("Content-Type", ""),
                                     response.headers.get("X-Content-Type-Options", "")))

            threads = [threading.Thread(target=load, args=(n == 1,)) for n in range(3)]
            for thread in threads:
                thread.start()
            try:
                time.sleep(1)
                for _ in range(3):  # three "restarts", a second of load after each
                    before = len(statuses)
                    with admin.begin() as conn:
                        killed = conn.execute(sa.text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE application_name = :name AND pid <> pg_backend_pid()"), {"name": name}).scalar()
                    assert killed >= 1
                    time.sleep(1)
                    failed = [s for s in statuses[before:] if s[0] != 200]
                    assert len(failed) <= workers, failed
                    for _, content_type, nosniff in failed:
                        # The API's failure is our JSON 500 with our headers. (A page whose
                        # session store fails is the session store's own 503 page, which
                        # the sessions work brings: not asserted here.)
                        if not content_type.startswith("text/html"):
                            assert content_type == "application/json" and nosniff == "nosniff"
                    assert len(statuses) - before > 10  # the load went on
            finally:
                stop.set()
                for thread in threads:
                    thread.join()
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def issue_token_in(url: str) -> str:
    """A read token for the seeded Acme account, issued in this process."""
    app = create_app({"TESTING": True, "DATABASE_URL": url})
    with app.app_context():
        admin = db.session.scalar(sa.select(Admin).where(Admin.email == "admin@acme.example"))
        raw = issue_token(admin, "faults", "read", "127.0.0.1")[1]
        db.session.remove()
        db.engine.dispose()
    return raw


def test_after_an_outage_the_storage_is_left_alone_for_a_moment(monkeypatch):
    """A storage that hangs must not cost every request its timeout: after a failure the
    API's limits skip it (fail open) and logins are refused (fail closed) without asking
    it, for OUTAGE_RETRY_SECONDS; then it is asked again."""
    from limits.errors import StorageError

    from usetix import ratelimit

    limits = ratelimit.RateLimits({"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": closed_redis_url(),
                                   "LOGIN_RATE_LIMIT": "3/minute", "LOGIN_ADDRESS_RATE_LIMIT": "3/minute",
                                   "LOGIN_EMAIL_RATE_LIMIT": "3/minute", "API_RATE_LIMIT": "3/minute",
                                   "API_FAILED_AUTH_LIMIT": "3/minute", "LEAK_REPORT_RATE_LIMIT": "3/minute"})
    calls = []

    def incr(key, expiry, amount=1):
        calls.append(key)
        raise StorageError(ConnectionError("down"))

    monkeypatch.setattr(limits.storage, "incr", incr)
    clock = [1000.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: clock[0])
    assert limits.hit(limits.api, "api-token", "1") is None and len(calls) == 1
    assert limits.hit(limits.api, "api-token", "1") is None and len(calls) == 1  # not asked again
    with pytest.raises(ratelimit.LimitsUnavailable):
        limits.reserve_login_attempt("a@example.com", "192.0.2.1")
    assert len(calls) == 1
    clock[0] += ratelimit.OUTAGE_RETRY_SECONDS
    assert limits.hit_quietly(limits.failed_auth, "api-auth-failures", "192.0.2.1") is None
    assert len(calls) == 2  # asked again, once the moment has passed
