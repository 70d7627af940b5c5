"""Sessions that really end: no store write per anonymous visit, no logged-out session
brought back by a request in flight, an absolute lifetime, a login bound to the address
the app trusts, batched purging, and a failing store answered with our own 503 page.

Tests marked with the ``app`` parameter run on the database store and on Redis; the Redis
runs are skipped only when USETIX_TEST_REDIS_URL is unset (CI sets it).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import before_render_template
from freezegun import freeze_time

from usetix.database.engine import db
from usetix.database.models import ServerSession

from ..helpers import NONCE_FIELD, PASSWORD, AuthActions, csrf_token_from

COOKIE = "usetix_session"
REDIS_URL = os.environ.get("USETIX_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="USETIX_TEST_REDIS_URL is not set (CI sets it)")
# The app fixture (conftest.py) with each session store: the database's, and Redis.
BOTH_STORES = pytest.mark.parametrize("app", [{}, pytest.param({"SESSION_REDIS_URL": REDIS_URL}, marks=needs_redis)],
                                      ids=["database", "redis"], indirect=True)
REDIS_PREFIX = "usetix:session:"


def cookie_of(client) -> str | None:
    cookie = client.get_cookie(COOKIE)
    return cookie.value if cookie else None


def digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def is_stored(app, sid: str) -> bool:
    """Whether the store holds a record for this cookie value, read behind the app's back."""
    store = app.session_interface.store
    if hasattr(store, "redis"):
        return bool(store.redis.exists(REDIS_PREFIX + digest(sid)))
    with app.app_context():
        return db.session.get(ServerSession, digest(sid)) is not None


def stored_rows(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(ServerSession))


def with_cookie(app, value: str, **environ):
    """Another browser holding exactly this cookie."""
    other = app.test_client()
    other.set_cookie(COOKIE, value)
    other.environ_base.update(environ)
    return other


@pytest.fixture
def store_calls(app, monkeypatch):
    """Every call the app makes to its session store, by method name."""
    calls: list[str] = []
    store = app.session_interface.store
    for name in ("load", "create", "update", "delete", "purge", "save"):
        method = getattr(store, name, None)
        if method is None:
            continue

        def spy(*args, _name=name, _method=method):
            calls.append(_name)
            return _method(*args)

        monkeypatch.setattr(store, name, spy)
    return calls


@pytest.fixture
def redis_cleanup(app):
    """Deletes, after the test, the Redis records of the cookies it names."""
    sids: list[str] = []
    yield sids
    store = app.session_interface.store
    if hasattr(store, "redis") and sids:
        store.redis.delete(*[REDIS_PREFIX + digest(sid) for sid in sids])
        store.redis.close()


# --- A deleted session stays deleted ---------------------------------------------------------

@BOTH_STORES
def test_a_request_in_flight_cannot_bring_back_a_logged_out_session(app, client, auth, orgs, redis_cleanup):
    """A stolen cookie kept busy: its request loads the session, the victim logs out, then
    the request saves the session it changed (the new-token form's nonce). The save must
    not re-create the record."""
    auth.login()
    sid = cookie_of(client)
    redis_cleanup.append(sid)
    assert is_stored(app, sid)
    rendering, release = threading.Event(), threading.Event()

    def hold(sender, template, context, **extra):
        if template.name == "dashboard/api_token_new.html":  # the session is loaded and changed by now
            rendering.set()
            assert release.wait(10)

    thief = with_cookie(app, sid)
    answers = []
    before_render_template.connect(hold, app)
    try:
        busy = threading.Thread(target=lambda: answers.append(thief.get("/admin/settings/api_tokens/new")))
        busy.start()
        assert rendering.wait(10)
        assert auth.logout().status_code == 302
        assert not is_stored(app, sid)
        release.set()
        busy.join(10)
    finally:
        release.set()
        before_render_template.disconnect(hold, app)
    assert answers and answers[0].status_code == 200  # it was served, logged in, before the logout
    assert not is_stored(app, sid)
    assert with_cookie(app, sid).get("/admin/events").status_code == 302


@BOTH_STORES
def test_a_token_create_in_flight_across_a_logout_creates_no_token(app, client, auth, orgs, redis_cleanup,
                                                                    monkeypatch):
    """The Create Token POST has loaded its session when the admin logs out elsewhere (the
    record is deleted): the token's transaction finds the login gone and makes nothing.
    (On real gunicorn: tests/live/test_api_writes_gunicorn.py.)"""
    from usetix.blueprints.dashboard.forms import TokenForm
    from usetix.database.models import ApiToken

    auth.login()
    sid = cookie_of(client)
    redis_cleanup.append(sid)
    form = client.get("/admin/settings/api_tokens/new").text
    real_expiry = TokenForm.expiry

    def logged_out_meanwhile(self, now):
        app.session_interface.store.delete(digest(sid))  # what a logout on another worker does
        return real_expiry(self, now)

    monkeypatch.setattr(TokenForm, "expiry", logged_out_meanwhile)
    response = client.post("/admin/settings/api_tokens", data={
        "description": "after logout", "tier": "write", "expiration": "30", "csrf_token": csrf_token_from(form),
        "nonce": NONCE_FIELD.search(form).group(1)})
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0
    assert not is_stored(app, sid)


def test_an_expired_record_is_never_extended(app, client, auth, orgs):
    """An UPDATE on a row that has expired but not been purged yet would revive it."""
    start = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    with freeze_time(start) as frozen:
        auth.login()
        sid = cookie_of(client)
        frozen.tick(timedelta(hours=8, minutes=1))
        with app.app_context():
            interface = app.session_interface
            session = interface.open_session(app, app.test_request_context(headers={"Cookie": f"{COOKIE}={sid}"})
                                             .request)
        assert not session  # expired: opened as an empty, anonymous session
        with app.app_context():
            assert interface.store.update(digest(sid), "{}", start + timedelta(days=1), datetime.now(UTC)) is False
        frozen.tick(timedelta(minutes=1))
        assert with_cookie(app, sid).get("/admin/events").status_code == 302


# --- Anonymous visitors write nothing --------------------------------------------------------

@BOTH_STORES
def test_anonymous_visits_never_touch_the_store(app, client, orgs, store_calls):
    for n in range(20):
        visitor = app.test_client()
        assert visitor.get("/login").status_code == 200
        assert visitor.get(f"/admin/events?page={n}").status_code == 302
        assert visitor.get("/admin/settings/api_tokens").status_code == 302
        # A returning visitor too: its signed cookie is read, not looked up.
        assert visitor.get("/login").status_code == 200
    assert store_calls == []
    if app.config["SESSION_REDIS_URL"] is None:
        assert stored_rows(app) == 0


def test_the_anonymous_cookie_is_signed_and_holds_no_session_id(app, client, orgs):
    response = client.get("/login")
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(f"{COOKIE}="))
    assert "; HttpOnly" in cookie and "; SameSite=Lax" in cookie
    value = cookie_of(client)
    assert len(value) != 43 and "." in value  # not the shape of a stored session's id
    # Flask's signed cookie: the CSRF secret, base64, in a value we sign.
    with app.test_request_context():
        serializer = app.session_interface._cookie_signer.get_signing_serializer(app)
        assert set(serializer.loads(value)) == {"csrf_token"}
    # Tampered: refused as a whole, so the form's token no longer matches anything.
    token = csrf_token_from(response.text)
    forged = with_cookie(app, "x" + value)
    refused = forged.post("/login", data={"email": "admin@acme.example", "password": PASSWORD,
                                          "csrf_token": token})
    assert refused.status_code == 400
    assert forged.get("/admin/events").status_code == 302


def test_login_works_from_the_signed_cookie_and_csrf_is_still_required(app, client, auth, orgs):
    page = client.get("/login")
    base = {"email": "admin@acme.example", "password": PASSWORD}
    assert client.post("/login", data=base).status_code == 400  # no token
    assert client.post("/login", data={**base, "csrf_token": "forged"}).status_code == 400
    # A token of another visitor's page does not fit this visitor's secret.
    other_token = csrf_token_from(app.test_client().get("/login").text)
    assert client.post("/login", data={**base, "csrf_token": other_token}).status_code == 400
    assert stored_rows(app) == 0
    response = client.post("/login", data={**base, "csrf_token": csrf_token_from(page.text)})
    assert response.status_code == 302
    sid = cookie_of(client)
    assert len(sid) == 43 and is_stored(app, sid)
    assert stored_rows(app) == 1


@BOTH_STORES
def test_logout_and_login_messages_show_without_a_stored_session(app, client, auth, orgs, redis_cleanup):
    auth.login()
    redis_cleanup.append(cookie_of(client))
    response = auth.logout()
    assert response.headers["Location"] == "/login"
    assert "You have been logged out." in client.get("/login").text
    assert "You have been logged out." not in client.get("/login").text  # shown once
    redirected = client.get("/admin/events", follow_redirects=True)
    assert "Please log in to see that page." in redirected.text
    if app.config["SESSION_REDIS_URL"] is None:
        assert stored_rows(app) == 0


# --- Purging, off the request path ------------------------------------------------------------

@contextmanager
def session_deletes(app):
    """The DELETE statements sent to the sessions table while the block runs."""
    with app.app_context():
        engine = db.engine
    deletes: list[str] = []

    def record(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("DELETE FROM SERVER_SESSIONS"):
            deletes.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield deletes
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def test_purge_sessions_deletes_expired_rows_in_batches(app, runner):
    now = datetime.now(UTC)
    with app.app_context():
        db.session.add_all(
            [ServerSession(key=f"{n:064x}", data="{}", expires_at=now - timedelta(minutes=n + 1)) for n in range(25)]
            + [ServerSession(key=f"{n:064x}", data="{}", expires_at=now + timedelta(hours=1)) for n in range(25, 28)]
        )
        db.session.commit()
    with session_deletes(app) as deletes:
        result = runner.invoke(args=["purge-sessions", "--batch-size", "10"])
    assert result.exit_code == 0, result.output
    assert "Purged 25 expired session(s)." in result.output
    assert len(deletes) == 3  # 10 + 10 + 5
    assert all("LIMIT" in statement.upper() for statement in deletes)
    assert stored_rows(app) == 3


def test_requests_only_ever_delete_their_own_session(app, client, auth, orgs):
    """No request sweeps the table: every DELETE a request sends names one key."""
    start = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    with session_deletes(app) as deletes, freeze_time(start) as frozen:
        auth.login()
        old = cookie_of(client)
        auth.logout()
        auth.login()
        frozen.tick(timedelta(hours=9))
        for _ in range(3):
            app.test_client().get("/login")
            with_cookie(app, old).get("/admin/events")
        auth.login()
        auth.logout()
    assert len(deletes) == 2  # the two logouts; an expired record waits for purge-sessions
    one_key = re.compile(r'DELETE FROM server_sessions WHERE server_sessions\."?key"? = (\?|%\(key_1\)s(::VARCHAR)?)')
    assert all(one_key.fullmatch(statement.strip()) for statement in deletes), deletes


# --- Absolute lifetime ------------------------------------------------------------------------

def test_an_active_session_still_ends_after_seven_days(client, auth, orgs):
    start = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    with freeze_time(start) as frozen:
        auth.login()
        for _ in range(23):  # every 7 hours, inside the idle timeout: 161 hours in all
            frozen.tick(timedelta(hours=7))
            assert client.get("/admin/events").status_code == 200
        frozen.tick(timedelta(hours=6, minutes=59))  # 167:59 after login
        assert client.get("/admin/events").status_code == 200
        frozen.tick(timedelta(minutes=2))  # 168:01
        assert client.get("/admin/events").status_code == 302


@BOTH_STORES
@pytest.mark.app_config(SESSION_ABSOLUTE_HOURS=1)
def test_the_absolute_lifetime_is_a_setting_and_caps_the_stored_expiry(app, client, auth, orgs, redis_cleanup):
    start = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    with freeze_time(start) as frozen:
        auth.login()
        sid = cookie_of(client)
        redis_cleanup.append(sid)
        store = app.session_interface.store
        if hasattr(store, "redis"):
            assert store.redis.pttl(REDIS_PREFIX + digest(sid)) <= 3_600_000  # not the 8 idle hours
        else:
            with app.app_context():
                assert db.session.get(ServerSession, digest(sid)).expires_at == start + timedelta(hours=1)
        for _ in range(5):
            frozen.tick(timedelta(minutes=11))
            assert client.get("/admin/events").status_code == 200
        frozen.tick(timedelta(minutes=6))  # 61 minutes after login
        assert client.get("/admin/events").status_code == 302


# --- Bound to the client the app trusts ------------------------------------------------------

VICTIM = "198.51.100.7"
THIEF = "203.0.113.9"


def test_a_stolen_cookie_from_another_address_is_refused_and_ends_the_login(app, client, auth, orgs):
    auth.login()
    sid = cookie_of(client)
    assert client.get("/admin/events").status_code == 200
    thief = with_cookie(app, sid, REMOTE_ADDR=THIEF)
    assert thief.get("/admin/events").status_code == 302
    assert not is_stored(app, sid)
    assert client.get("/admin/events").status_code == 302


def test_a_forged_x_forwarded_for_does_not_pass_as_the_victim(app, client, auth, orgs):
    """Without PROXY_FIX the header is the client's own word: the address is REMOTE_ADDR."""
    auth.login()  # from 127.0.0.1, the test client's address
    sid = cookie_of(client)
    thief = with_cookie(app, sid, REMOTE_ADDR=THIEF)
    refused = thief.get("/admin/events", headers={"X-Forwarded-For": "127.0.0.1"})
    assert refused.status_code == 302
    assert not is_stored(app, sid)


@pytest.mark.app_config(PROXY_FIX=True)
def test_behind_the_proxy_the_forwarded_address_is_what_counts(app, client, orgs):
    """The proxy (127.0.0.1) appends the address it saw; ProxyFix trusts that one entry."""
    client.environ_base["HTTP_X_FORWARDED_FOR"] = VICTIM
    assert AuthActions(client).login().status_code == 302
    sid = cookie_of(client)
    assert client.get("/admin/events").status_code == 200
    # The same browser from the same address, and the same cookie elsewhere, both via the proxy.
    assert with_cookie(app, sid, HTTP_X_FORWARDED_FOR=VICTIM).get("/admin/events").status_code == 200
    forged = with_cookie(app, sid, HTTP_X_FORWARDED_FOR=f"{VICTIM}, {THIEF}")  # the thief's own first entry
    assert forged.get("/admin/events").status_code == 302
    assert not is_stored(app, sid)


# --- Logging out from the reveal page over HTTPS ---------------------------------------------

def referer_sent(policy: str, page_url: str, target_url: str) -> str | None:
    """The Referer a browser sends from ``page_url`` to a same-origin ``target_url`` under
    ``policy`` (the values a page of ours could carry)."""
    assert target_url.split("/")[:3] == page_url.split("/")[:3]
    return {"no-referrer": None, "same-origin": page_url, "strict-origin-when-cross-origin": page_url,
            "origin": "/".join(page_url.split("/")[:3]) + "/"}[policy]


@pytest.mark.app_config(SESSION_COOKIE_SECURE=True)
def test_the_reveal_pages_log_out_form_works_over_https(app, orgs):
    """Flask-WTF checks the Referer over HTTPS; the reveal page must let the browser send one."""
    browser = app.test_client()
    base = "https://localhost"
    page = browser.get("/login", base_url=base)
    browser.post("/login", base_url=base, headers={"Referer": base + "/login"},
                 data={"email": "admin@acme.example", "password": PASSWORD,
                       "csrf_token": csrf_token_from(page.text)})
    form_url = base + "/admin/settings/api_tokens/new"
    form = browser.get(form_url, base_url=base)
    from ..helpers import NONCE_FIELD

    reveal = browser.post("/admin/settings/api_tokens", base_url=base, headers={"Referer": form_url}, data={
        "description": "Over HTTPS", "tier": "read", "csrf_token": csrf_token_from(form.text),
        "nonce": NONCE_FIELD.search(form.text).group(1)})
    assert reveal.status_code == 200 and 'id="token-value"' in reveal.text
    policy = reveal.headers["Referrer-Policy"]
    referer = referer_sent(policy, base + "/admin/settings/api_tokens", base + "/logout")
    response = browser.post("/logout", base_url=base, headers={"Referer": referer} if referer else {},
                            data={"csrf_token": csrf_token_from(reveal.text)})
    assert response.status_code == 302, response.text
    assert policy == "same-origin"
    assert browser.get("/admin/events", base_url=base).status_code == 302


# --- A store that fails ------------------------------------------------------------------------

@pytest.fixture
def drop_sessions_table(app):
    """Drops the sessions table when called; it is back after the test (PostgreSQL runs
    share one schema)."""
    def drop() -> None:
        with app.app_context():
            ServerSession.__table__.drop(db.engine)

    yield drop
    with app.app_context():
        ServerSession.__table__.create(db.engine, checkfirst=True)


def test_an_unreadable_store_answers_our_503_page(app, client, auth, orgs, drop_sessions_table):
    auth.login()
    drop_sessions_table()
    response = client.get("/admin/events")
    assert response.status_code == 503
    assert "503 Service Unavailable" in response.text and "session store" in response.text
    assert response.headers["Content-Security-Policy"] and response.headers["X-Content-Type-Options"] == "nosniff"
    stylesheet = client.get("/static/style.css")
    stylesheet.close()
    assert stylesheet.status_code == 200  # the error page's stylesheet still loads
    json = client.get("/admin/events", headers={"Accept": "application/json"})
    assert json.status_code == 401  # the API never opens a session


def test_a_login_the_store_cannot_keep_is_a_503_not_a_login(app, client, orgs, drop_sessions_table):
    page = client.get("/login")
    drop_sessions_table()
    response = client.post("/login", data={"email": "admin@acme.example", "password": PASSWORD,
                                           "csrf_token": csrf_token_from(page.text)})
    assert response.status_code == 503
    assert "Location" not in response.headers
    assert not [c for c in response.headers.getlist("Set-Cookie") if c.startswith(f"{COOKIE}=")]
    assert response.headers["X-Frame-Options"] == "DENY"
