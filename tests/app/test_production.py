"""Production settings: gunicorn.conf.py, trusted hosts behind a proxy, /healthz, the
Redis session store, and the one-line-per-request log."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import subprocess
import sys

import pytest
import sqlalchemy as sa

from usetix import create_app
from usetix.database.engine import db
from usetix.database.models import ApiToken, ServerSession

from ..databases import REDIS_URL, redis_client_or_skip
from ..helpers import bearer, free_port, issue, make_test_config, wait_until
from ..queries import recorded_queries
from ..servers import GUNICORN, ROOT, server_env

COOKIE = "usetix_session"


# --- gunicorn.conf.py -----------------------------------------------------------------------

@functools.lru_cache
def gunicorn_settings(**env: str) -> dict[str, str]:
    """gunicorn.conf.py as gunicorn itself resolves it (``--print-config``, which also
    loads the app), with ``env`` added to a server's environment."""
    environ = {k: v for k, v in server_env("sqlite://").items() if not k.startswith("WEB_CONCURRENCY")}
    done = subprocess.run([GUNICORN, "--print-config"], cwd=ROOT, env={**environ, **env},
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    settings = {}
    for line in done.stdout.splitlines():
        name, sep, value = line.partition(" = ")
        if sep:
            settings[name.strip()] = value.strip()
    return settings


def test_gunicorn_conf_defaults():
    settings = gunicorn_settings()
    assert settings["wsgi_app"] == "wsgi:app"
    assert settings["bind"] == "['127.0.0.1:8000']"
    assert int(settings["workers"]) == 2 * len(os.sched_getaffinity(0)) + 1
    assert int(settings["graceful_timeout"]) > 0
    assert settings["control_socket_disable"] == "True"
    assert settings["accesslog"] == "None"  # one line per request: the app's own


def test_gunicorn_conf_reads_the_environment():
    settings = gunicorn_settings(USETIX_BIND="0.0.0.0:9000", USETIX_WORKERS="3", USETIX_ACCESS_LOG="-")
    assert settings["bind"] == "['0.0.0.0:9000']"
    assert settings["workers"] == "3"
    assert settings["accesslog"] == "-"
    assert gunicorn_settings(USETIX_ACCESS_LOG="")["accesslog"] == "None"


def test_access_log_format_names_no_query_string_and_no_header():
    log_format = gunicorn_settings()["access_log_format"]
    for atom in ("%(r)s", "%(q)s", "%(f)s", "%(u)s"):  # request line, query, referrer, Basic user
        assert atom not in log_format
    assert "}i)s" not in log_format  # no request header at all, Authorization least of all
    assert "%(U)s" in log_format and "%(s)s" in log_format


# --- Trusted hosts, behind a proxy or not ---------------------------------------------------

def hosts_app(tmp_path, **settings):
    return create_app({**make_test_config(tmp_path), "TRUSTED_HOSTS": "app.usetix.io, .usetix.example", **settings})


def test_a_forged_host_is_refused_when_trusted_hosts_are_set(app, tmp_path, orgs):
    client = hosts_app(tmp_path).test_client()
    for accept in ("text/html", "application/json"):
        response = client.get("/admin/events", headers={"Host": "evil.example", "Accept": accept})
        assert response.status_code == 400
        assert "evil.example" not in response.text
        assert "Location" not in response.headers and "Set-Cookie" not in response.headers
    assert client.get("/admin/events", headers={"Host": "evil.example", "Accept": "application/json"}).json[
        "error"] == "bad_request"
    assert client.get("/login", headers={"Host": "app.usetix.io"}).status_code == 200
    assert client.get("/login", headers={"Host": "app.usetix.io:8443"}).status_code == 200
    assert client.get("/login", headers={"Host": "eu.usetix.example"}).status_code == 200


def test_links_never_name_a_host(app, client, tmp_path, orgs):
    """Relative links (RFC 8288): with TRUSTED_HOSTS unset (the default) a forged Host
    never reaches a Link header either."""
    raw = issue(app, orgs["acme"], "read")
    for each in (client, hosts_app(tmp_path).test_client()):
        response = each.get("/admin/events?per_page=1", headers={**bearer(raw), "Host": "app.usetix.io"})
        assert response.status_code == 200
        assert re.fullmatch(r'</admin/events\?cursor=[\w.-]+>; rel="next"', response.headers["Link"])
        numbered = each.get("/admin/events?per_page=1&page=1", headers={**bearer(raw), "Host": "app.usetix.io"})
        assert numbered.headers["Link"] == '</admin/events?per_page=1&page=2>; rel="next"'
    response = client.get("/admin/events?per_page=1", headers={**bearer(raw), "Host": "evil.example"})
    assert "evil.example" not in response.headers["Link"]


def test_behind_a_proxy_the_forwarded_host_is_checked(app, tmp_path, orgs):
    raw = issue(app, orgs["acme"], "read")
    client = hosts_app(tmp_path, PROXY_FIX=True).test_client()
    proxied = {"Host": "10.0.0.5:8000", "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    forged = client.get("/admin/events?per_page=1", headers={**bearer(raw), **proxied,
                                                             "X-Forwarded-Host": "evil.example"})
    assert forged.status_code == 400
    good = client.get("/admin/events?per_page=1", headers={**bearer(raw), **proxied,
                                                           "X-Forwarded-Host": "app.usetix.io"})
    assert good.status_code == 200
    assert good.headers["Link"].startswith("</admin/events?")


def test_without_proxy_fix_forwarded_headers_are_ignored(app, tmp_path, orgs):
    raw = issue(app, orgs["acme"], "read")
    client = hosts_app(tmp_path).test_client()
    response = client.get("/admin/events?per_page=1", headers={
        **bearer(raw), "Host": "app.usetix.io", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    assert "evil.example" not in response.headers["Link"]


def test_health_check_answers_whatever_the_host(app, tmp_path):
    """Load balancers probe by the backend's address."""
    client = hosts_app(tmp_path).test_client()
    assert client.get("/healthz", headers={"Host": "10.0.0.5:8000"}).status_code == 200


def test_trusted_hosts_from_the_environment(app, tmp_path, monkeypatch):
    monkeypatch.setenv("USETIX_TRUSTED_HOSTS", "app.usetix.io,admin.usetix.io")
    client = create_app(make_test_config(tmp_path)).test_client()
    assert client.get("/login", headers={"Host": "admin.usetix.io"}).status_code == 200
    assert client.get("/login", headers={"Host": "usetix.io.evil.example"}).status_code == 400


# --- /healthz --------------------------------------------------------------------------------

def test_healthz_is_200_when_the_database_answers(client):
    for accept in ("application/json", "text/html"):
        response = client.get("/healthz", headers={"Accept": accept})
        assert response.status_code == 200
        assert response.json == {"status": "ok", "checks": {"database": "ok", "session_store": "ok",
                                                            "rate_limit_storage": "ok"}}
        assert "Set-Cookie" not in response.headers


UNREACHABLE = {
    "sqlite": lambda tmp_path: f"sqlite:///{tmp_path / 'no-such-directory' / 'usetix.sqlite3'}",
    "postgresql": lambda tmp_path: f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test?connect_timeout=2",
}


@pytest.mark.parametrize("kind", UNREACHABLE)
def test_healthz_is_503_when_the_database_cannot_be_reached(tmp_path, kind, caplog):
    app = create_app({**make_test_config(tmp_path), "DATABASE_URL": UNREACHABLE[kind](tmp_path)})
    with caplog.at_level(logging.ERROR, logger=app.logger.name):
        response = app.test_client().get("/healthz", headers={"Accept": "application/json"})
    assert response.status_code == 503
    assert response.json == {"status": "unavailable", "checks": {
        "database": "unavailable", "session_store": "unavailable", "rate_limit_storage": "unavailable"}}
    assert "health check: database unavailable" in caplog.text


def test_healthz_recovers_when_the_database_comes_back(tmp_path):
    directory = tmp_path / "later"
    app = create_app({**make_test_config(tmp_path), "DATABASE_URL": f"sqlite:///{directory / 'usetix.sqlite3'}"})
    client = app.test_client()
    assert client.get("/healthz").status_code == 503
    directory.mkdir()
    assert client.get("/healthz").status_code == 503  # a database without the tables a login needs
    with app.app_context():
        db.create_all()
    assert client.get("/healthz").status_code == 200
    with app.app_context():
        db.engine.dispose()


# --- Sessions in Redis ------------------------------------------------------------------------

SESSION_PREFIX = "usetix:session:"


@pytest.fixture
def redis_client():
    """A client of the test Redis. Skipped only where nothing asks for Redis: CI (CI=true)
    and a set USETIX_TEST_REDIS_URL make an unreachable Redis a failure."""
    client = redis_client_or_skip()
    created: list[str] = []
    yield client, created
    if created:
        client.delete(*created)
    client.close()


def session_key(sid: str) -> str:
    return SESSION_PREFIX + hashlib.sha256(sid.encode()).hexdigest()


def cookie_of(client) -> str:
    return client.get_cookie(COOKIE).value


@pytest.mark.app_config(SESSION_REDIS_URL=REDIS_URL)
def test_sessions_live_in_redis_and_every_host_sees_them(app, client, auth, orgs, redis_client, tmp_path):
    redis, created = redis_client
    assert auth.login().status_code == 302
    sid = cookie_of(client)
    created.append(session_key(sid))
    stored = redis.get(session_key(sid))
    assert stored is not None and sid.encode() not in stored
    assert json.loads(stored)["data"]["_user_id"] == str(orgs["acme"].admin_id)
    idle_ms = app.config["PERMANENT_SESSION_LIFETIME"].total_seconds() * 1000
    assert idle_ms - 120_000 < redis.pttl(session_key(sid)) <= idle_ms  # Redis expires it itself
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ServerSession)) == 0

    # Another app host, same Redis and database: the same cookie is the same login.
    other_host = create_app({**make_test_config(tmp_path), "SESSION_REDIS_URL": REDIS_URL}).test_client()
    other_host.set_cookie(COOKIE, sid)
    assert other_host.get("/admin/events").status_code == 200

    assert auth.logout().status_code == 302
    assert redis.exists(session_key(sid)) == 0
    assert redis.exists(session_key(cookie_of(client))) == 0  # its flash message is in a signed cookie
    assert other_host.get("/admin/events").status_code == 302


@pytest.mark.app_config(SESSION_REDIS_URL=REDIS_URL)
def test_an_expired_redis_session_is_gone(client, auth, orgs, redis_client):
    redis, created = redis_client
    auth.login()
    key = session_key(cookie_of(client))
    created.append(key)
    assert client.get("/admin/events").status_code == 200
    redis.pexpire(key, 1)
    wait_until(lambda: not redis.exists(key), message="Redis expired the session")
    response = client.get("/admin/events")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


# --- One log line per request ---------------------------------------------------------------

LINE = re.compile(r"method=(\S+) path=(\S+) status=(\d{3}) duration_ms=([\d.]+) account=(\S+) token=(\S+)")


@pytest.fixture
def request_lines(caplog):
    """The request log's records while the test runs."""
    caplog.set_level(logging.INFO, logger="usetix.requests")
    return lambda: [r for r in caplog.records if r.name == "usetix.requests"]


def test_an_api_request_logs_one_line_with_account_and_token_ids(app, client, orgs, request_lines):
    raw = issue(app, orgs["acme"], "read")
    with app.app_context():
        token_id = db.session.scalar(sa.select(ApiToken.id))
    response = client.get("/admin/events?per_page=2&updated_since=2026-01-01T00:00:00Z", headers=bearer(raw))
    assert response.status_code == 200
    [record] = request_lines()
    method, path, status, duration, account, token = LINE.fullmatch(record.getMessage()).groups()
    assert (method, path, status) == ("GET", "/admin/events", "200")
    assert float(duration) >= 0
    assert (account, token) == (str(orgs["acme"].account_id), str(token_id))
    assert raw not in record.getMessage() and "per_page" not in record.getMessage()
    assert record.levelno == logging.INFO and record.funcName == "log_request"


def test_a_refused_token_is_logged_with_its_duration_and_never_its_value(client, orgs, request_lines):
    bad = "usx_" + "A" * 40
    response = client.get("/admin/events", headers=bearer(bad))
    assert response.status_code == 401
    [record] = request_lines()
    # A number for duration_ms (not "-"): the clock started before the bearer hook answered.
    assert LINE.fullmatch(record.getMessage()).group(3, 5, 6) == ("401", "-", "-")
    assert "AAAA" not in record.getMessage()


def test_a_dashboard_request_logs_the_admins_account(client, auth, orgs, request_lines):
    auth.login()
    before = len(request_lines())
    assert client.get("/admin/events").status_code == 200
    [record] = request_lines()[before:]
    assert LINE.fullmatch(record.getMessage()).group(1, 2, 3, 5, 6) == (
        "GET", "/admin/events", "200", str(orgs["acme"].account_id), "-")


def test_a_path_cannot_forge_a_log_line(client, request_lines):
    client.get("/admin/x%0Amethod=GET%20path=/forged status=200")
    [record] = request_lines()
    message = record.getMessage()
    assert "\n" not in message
    assert message.startswith('method=GET path="/admin/x\\nmethod=GET path=/forged status=200" status=404 ')


def test_the_request_log_adds_no_query(app, client, orgs, tmp_path, request_lines):
    raw = issue(app, orgs["acme"], "read")
    quiet = create_app({**make_test_config(tmp_path), "REQUEST_LOG": False})
    counts = []
    for each in (app, quiet):
        each.test_client().get("/admin/events", headers=bearer(raw), buffered=True)  # usage written
        with recorded_queries(each) as statements:
            assert each.test_client().get("/admin/events", headers=bearer(raw)).status_code == 200
        counts.append(len(statements))
    assert counts[0] == counts[1]
    assert len(request_lines()) == 2  # the app with the log on; none from the quiet one


def test_request_log_goes_to_stderr_outside_pytest(tmp_path):
    """A plain process (no logging set up, as under gunicorn) gets the line on stderr."""
    script = (
        "from usetix import create_app\n"
        f"app = create_app({{'TESTING': True, 'DATABASE_URL': 'sqlite:///{tmp_path / 'x.sqlite3'}'}})\n"
        "from usetix.database.engine import db\n"
        "with app.app_context(): db.create_all()\n"  # /healthz reads the sessions table
        "app.test_client().get('/healthz?probe=1')\n"
        "app.logger.error('an error')\n"  # app.logger now has Flask's stderr handler
        "app.test_client().get('/healthz?probe=2')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    lines = [line for line in done.stderr.splitlines() if "path=/healthz" in line]
    assert len(lines) == 2  # once per request, however many handlers the app's logger has
    for line in lines:
        assert re.search(
            r"INFO usetix\.requests method=GET path=/healthz status=200 duration_ms=[\d.]+ account=- token=-$", line)
    assert "probe" not in done.stderr
