"""Faults that fail safe, and say so, on real gunicorn: Redis down as the rate-limit storage,
the database unreachable from the start (our 503 with Retry-After everywhere), and PostgreSQL
dropping every connection under load (at most one request per worker fails, with our 503)."""

from __future__ import annotations

import threading

import pytest
import requests
import sqlalchemy as sa

from usetix import create_app
from usetix.auth.token_service import issue_token
from usetix.core import token_format
from usetix.database.engine import db
from usetix.database.models import Admin

from ..databases import POSTGRES_URL, in_schema, new_schema_name, scratch_database
from ..helpers import (
    PASSWORD,
    bearer,
    closed_redis_url,
    csrf_token_from,
    free_port,
    wait_until,
)
from ..servers import gunicorn, prepare_database, server_env

TIMEOUT = 10


@pytest.fixture
def down():
    """A Redis URL at a closed port."""
    return closed_redis_url()


# --- Redis down as the rate-limit storage -----------------------------------------------------


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
            other = raw[:-1] + ("x" if raw[-1] != "x" else "y")  # one token in 62 ends in "x" itself
            refused = requests.get(base + "/admin/events", headers=bearer(other), timeout=TIMEOUT)
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


# --- The database cannot be reached ---------------------------------------------------------

def login_form_for(secret_key: str, tmp_path) -> tuple[str, str]:
    """A login form's CSRF token and the anonymous session cookie that goes with it, from an
    app in this process with the server's secret key and a database that answers: what a
    browser holds when it loaded the form before the server's database went away."""
    app = create_app({"TESTING": True, "SECRET_KEY": secret_key,
                      "DATABASE_URL": "sqlite:///" + str(tmp_path / "answers.sqlite3")})
    with app.app_context():
        db.create_all()
    client = app.test_client()
    page = client.get("/login")
    assert page.status_code == 200
    return csrf_token_from(page.text), client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value


@pytest.mark.gunicorn
@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_with_its_database_unreachable_the_app_answers_503_with_retry_after(tmp_path, database):
    """Real gunicorn whose database cannot be reached from the start: PostgreSQL at a closed
    port, or a SQLite file in a folder that does not exist. The API (a well-formed token:
    only the database could judge it), the login form (shown and submitted), a stored
    session's cookie on the dashboard and /healthz: each is our 503 with Retry-After, JSON
    or our page, never a 500; and the log holds no traceback."""
    if database == "postgresql":
        url = f"postgresql+psycopg://usetix@127.0.0.1:{free_port()}/usetix"
    else:
        url = "sqlite:///" + str(tmp_path / "no-such-folder" / "usetix.sqlite3")
    secret_key = server_env(url)["USETIX_SECRET_KEY"]
    csrf, cookie = login_form_for(secret_key, tmp_path)
    log = tmp_path / "gunicorn.log"
    token = bearer(token_format.generate())
    with gunicorn(url, workers=2, log_path=log) as base:
        answers = {
            "GET /admin/events": requests.get(base + "/admin/events", headers=token, timeout=TIMEOUT),
            "POST /admin/events": requests.post(base + "/admin/events", headers=token, timeout=TIMEOUT, json={
                "title": "Launch", "starts_at": "2027-01-01T18:00:00Z", "ends_at": "2027-01-01T20:00:00Z"}),
            "GET /login": requests.get(base + "/login", timeout=TIMEOUT),
            "POST /login": requests.post(base + "/login", timeout=TIMEOUT, allow_redirects=False,
                                         cookies={"usetix_session": cookie},
                                         data={"email": "admin@acme.example", "password": PASSWORD,
                                               "csrf_token": csrf}),
            "GET /admin/events (a stored session's cookie)": requests.get(
                base + "/admin/events", timeout=TIMEOUT, cookies={"usetix_session": "s" * 43}),
            "GET /healthz": requests.get(base + "/healthz", timeout=TIMEOUT),
        }
    for name, answer in answers.items():
        assert answer.status_code == 503, (name, answer.status_code, answer.text[:300])
        assert answer.headers["Retry-After"].isdigit(), name
        assert answer.headers["X-Content-Type-Options"] == "nosniff", name
        if name.startswith(("GET /admin/events (", "GET /login", "POST /login")):
            assert answer.headers["Content-Type"].startswith("text/html"), name
        else:
            assert answer.headers["Content-Type"] == "application/json", name
    assert answers["GET /admin/events"].json()["error"] == "unavailable"
    assert answers["POST /admin/events"].json()["error"] == "unavailable"
    assert "cannot be reached" in answers["POST /login"].text
    assert answers["GET /healthz"].json()["checks"]["database"] == "unavailable"
    text = log.read_text()
    assert "status=500" not in text and "Traceback" not in text


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
            statuses: list[tuple[int, str, str, str | None]] = []
            stop = threading.Event()
            logged_in = threading.Event()  # no restart before: a login cut short is not what is counted

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
                    logged_in.set()
                while not stop.is_set():
                    response = http.get(base + "/admin/events", headers=headers, timeout=TIMEOUT,
                                        allow_redirects=False)
                    statuses.append((response.status_code, response.headers.get("Content-Type", ""),
                                     response.headers.get("X-Content-Type-Options", ""),
                                     response.headers.get("Retry-After")))

            threads = [threading.Thread(target=load, args=(n == 1,)) for n in range(3)]
            for thread in threads:
                thread.start()
            try:
                wait_until(lambda: len(statuses) >= 30 and logged_in.is_set(), timeout=30,
                           message="load before the first restart")
                for _ in range(3):  # three "restarts", load after each
                    before = len(statuses)
                    with admin.begin() as conn:
                        killed = conn.execute(sa.text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE application_name = :name AND pid <> pg_backend_pid()"), {"name": name}).scalar()
                    assert killed >= 1
                    wait_until(lambda before=before: len(statuses) >= before + 30, timeout=30,
                               message="load after the restart")
                    failed = [s for s in statuses[before:] if s[0] != 200]
                    assert len(failed) <= workers, failed
                    for status, content_type, nosniff, retry_after in failed:
                        # Reads whose connection was lost: nothing was written, so our 503
                        # with Retry-After (usetix/web/database_failures.py; the dashboard's
                        # session store its own 503 page), JSON or page, with our headers.
                        assert status == 503 and retry_after is not None and nosniff == "nosniff"
                        if not content_type.startswith("text/html"):
                            assert content_type == "application/json"
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
