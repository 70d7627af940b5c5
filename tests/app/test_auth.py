"""Login and logout on server-side sessions."""

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from usetix.database.engine import db
from usetix.database.models import Admin, ServerSession

from ..helpers import PASSWORD

COOKIE = "usetix_session"


def session_cookie(client):
    cookie = client.get_cookie(COOKIE)
    return cookie.value if cookie else None


def stored_session_keys(app):
    with app.app_context():
        return set(db.session.scalars(sa.select(ServerSession.key)))


def test_login_page_has_the_form(client):
    page = client.get("/login")
    assert page.status_code == 200
    for field in ('name="email"', 'name="password"', 'name="csrf_token"'):
        assert field in page.text


def test_login_success_goes_to_events(client, auth, orgs):
    response = auth.login()
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/events"
    assert client.get("/admin/events").status_code == 200


def test_email_is_case_insensitive(client, auth, orgs):
    assert auth.login(email="  ADMIN@Acme.Example ").status_code == 302


@pytest.mark.parametrize("email, password", [
    ("admin@acme.example", "wrong password"),
    ("nobody@acme.example", PASSWORD),
])
def test_bad_credentials_get_one_message(client, auth, orgs, email, password):
    response = auth.login(email=email, password=password)
    assert response.status_code == 200
    assert "Unknown email or wrong password." in response.text
    assert client.get("/admin/events").status_code == 302


def test_login_without_csrf_token_is_rejected(client, orgs):
    client.get("/login")
    response = client.post("/login", data={"email": "admin@acme.example", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/admin/events").status_code == 302


def test_login_with_a_forged_csrf_token_is_rejected(client, orgs):
    client.get("/login")
    response = client.post("/login", data={"email": "admin@acme.example", "password": PASSWORD,
                                           "csrf_token": "forged"})
    assert response.status_code == 400


def test_next_path_is_followed(auth, orgs):
    response = auth.login(next="/admin/settings/api_tokens")
    assert response.headers["Location"] == "/admin/settings/api_tokens"


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/x", "/\\evil.example", "\\\\evil.example",
    "javascript:alert(1)", "http:evil.example", "evil.example", "%2F%2Fevil.example",
])
def test_next_never_leaves_the_site(auth, orgs, target):
    from urllib.parse import quote

    response = auth.login(next=quote(target, safe=""))
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/events"


def test_anonymous_dashboard_request_redirects_to_login(client):
    response = client.get("/admin/settings/api_tokens?x=1")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    assert "%2Fadmin%2Fsettings%2Fapi_tokens" in response.headers["Location"]


def test_session_id_changes_at_login_and_old_id_is_dead(app, client, auth, orgs):
    client.get("/login")
    before = session_cookie(client)
    assert before
    auth.login()
    after = session_cookie(client)
    assert after and after != before
    # The pre-login id (what a fixation attacker would have planted) is worth nothing.
    attacker = app.test_client()
    attacker.set_cookie(COOKIE, before)
    assert attacker.get("/admin/events").status_code == 302


def test_store_holds_only_the_digest_of_the_session_id(app, client, auth, orgs):
    auth.login()
    sid = session_cookie(client)
    keys = stored_session_keys(app)
    assert hashlib.sha256(sid.encode()).hexdigest() in keys
    assert sid not in keys
    with app.app_context():
        assert all(sid not in row.data for row in db.session.scalars(sa.select(ServerSession)))


def test_cookie_flags(client, auth, orgs):
    response = auth.login()
    cookies = response.headers.getlist("Set-Cookie")
    cookie = next(c for c in cookies if c.startswith(f"{COOKIE}="))
    assert "; HttpOnly" in cookie and "; SameSite=Lax" in cookie
    assert "; Secure" not in cookie
    assert "Expires" not in cookie  # a browser-session cookie; the server enforces the idle timeout
    # No remember-me cookie is ever set (Flask-Login may only send its deletion).
    assert not [c for c in cookies if c.startswith("remember_token=") and "Max-Age=0" not in c]


def test_cookie_is_secure_when_configured_for_https(tmp_path, orgs):
    from usetix import create_app

    from ..helpers import AuthActions, make_test_config

    https_app = create_app({**make_test_config(tmp_path), "SESSION_COOKIE_SECURE": True})
    https_client = https_app.test_client()
    https_client.environ_base["wsgi.url_scheme"] = "https"
    # Over HTTPS Flask-WTF also checks that the Referer is this site, as browsers send it.
    https_client.environ_base["HTTP_REFERER"] = "https://localhost/login"
    response = AuthActions(https_client).login()
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(f"{COOKIE}="))
    assert "; Secure" in cookie


def test_logout_deletes_the_server_side_session(app, client, auth, orgs):
    auth.login()
    sid = session_cookie(client)
    digest = hashlib.sha256(sid.encode()).hexdigest()
    response = auth.logout()
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert digest not in stored_session_keys(app)
    assert session_cookie(client) != sid
    assert client.get("/admin/events").status_code == 302
    replay = app.test_client()
    replay.set_cookie(COOKIE, sid)
    assert replay.get("/admin/events").status_code == 302


def test_logout_needs_post_and_csrf(client, logged_in):
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert client.get("/admin/events").status_code == 200


def test_session_expires_after_idle_time(client, auth, orgs):
    start = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    with freeze_time(start) as frozen:
        auth.login()
        frozen.tick(timedelta(hours=7, minutes=59))
        assert client.get("/admin/events").status_code == 200  # activity extends the session
        frozen.tick(timedelta(hours=7, minutes=59))
        assert client.get("/admin/events").status_code == 200
        frozen.tick(timedelta(hours=8, minutes=1))
        assert client.get("/admin/events").status_code == 302


def test_purge_sessions_removes_expired_rows(app, client, auth, orgs, runner):
    start = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    with freeze_time(start) as frozen:
        auth.login()
        assert stored_session_keys(app)
        frozen.tick(timedelta(hours=9))
        result = runner.invoke(args=["purge-sessions"])
        assert "Purged 1 expired session(s)." in result.output
        assert stored_session_keys(app) == set()


def test_the_cookie_from_another_browser_ends_the_session(client, auth, orgs):
    auth.login()
    assert client.get("/admin/events").status_code == 200
    stolen = client.get("/admin/events", headers={"User-Agent": "a different browser"})
    assert stolen.status_code == 302
    assert client.get("/admin/events").status_code == 302


def test_json_requests_never_touch_the_session_store(app, client, logged_in):
    statements = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        sa.event.listen(db.engine, "before_cursor_execute", record)
        try:
            response = client.get("/admin/events", headers={"Accept": "application/json"})
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", record)
    assert response.status_code == 401
    assert "Set-Cookie" not in response.headers
    assert not [s for s in statements if "server_sessions" in s]


def test_an_admin_is_a_flask_login_user_as_user_mixin_made_it(app, orgs):
    """The model imports no Flask-Login (setup.cfg's contract) but has UserMixin's protocol:
    active, authenticated, not anonymous, its id as a string."""
    from flask_login import UserMixin

    with app.app_context():
        admin = db.session.scalars(sa.select(Admin).where(Admin.email == "admin@acme.example")).one()
        mixin = UserMixin()
        mixin.id = admin.id
        protocol = ("is_active", "is_authenticated", "is_anonymous")
        assert tuple(getattr(admin, name) for name in protocol) == tuple(getattr(mixin, name) for name in protocol)
        assert admin.get_id() == mixin.get_id() == str(admin.id)
