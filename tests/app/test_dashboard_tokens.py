"""Settings → API Tokens: create with the ten-second reveal, list, revoke, audit log."""

import re
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from usetix.auth.passwords import hash_password
from usetix.core import token_format as tokens
from usetix.database.engine import db
from usetix.database.models import Admin, ApiToken, AuditEvent, ServerSession

from ..helpers import NONCE_FIELD, PASSWORD, bearer, create_token_via_form, csrf_token_from

LIST = "/admin/settings/api_tokens"


def token_rows(app):
    with app.app_context():
        return db.session.scalars(sa.select(ApiToken).order_by(ApiToken.id)).all()


def new_form(client):
    page = client.get(LIST + "/new")
    return csrf_token_from(page.text), NONCE_FIELD.search(page.text).group(1)


def post_form(client, csrf, nonce, description="Mailchimp sync", tier="read"):
    return client.post(LIST, data={"description": description, "tier": tier, "csrf_token": csrf, "nonce": nonce})


def test_new_token_form(client, logged_in):
    page = client.get(LIST + "/new")
    assert page.status_code == 200
    assert 'name="description"' in page.text
    assert re.search(r'<input[^>]*checked[^>]*value="read"|<input[^>]*value="read"[^>]*checked', page.text)
    assert "Read — GET and HEAD only" in page.text
    assert "Read + Write — all methods" in page.text
    assert "Create Token" in page.text
    assert f'action="{LIST}"' in page.text


def test_token_list_links_to_the_form(client, logged_in):
    page = client.get(LIST)
    assert re.search(rf'<a[^>]*href="{LIST}/new"[^>]*>Token</a>', page.text)


def test_creating_a_token_reveals_it_once(app, client, logged_in):
    csrf, nonce = new_form(client)
    response = post_form(client, csrf, nonce)
    assert response.status_code == 200
    raw = re.search(r'<code id="token-value">([^<]*)</code>', response.text).group(1)
    assert tokens.parse(raw) == raw
    # Ten seconds, with and without script; nothing cached, nothing in a URL a Referer could carry.
    assert f'<meta http-equiv="refresh" content="10;url={LIST}">' in response.text
    assert '<span id="countdown">10</span>' in response.text
    assert '<script src="/static/reveal.js"></script>' in response.text
    assert "<script>" not in response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert raw not in response.headers.get("Location", "") and raw not in response.request.url
    # Afterwards: description and tier only, never any part of the value.
    listing = client.get(LIST)
    assert "Mailchimp sync" in listing.text and ">Read<" in listing.text
    for part in (raw, raw[4:12], raw[12:20], raw[20:28], raw[-6:]):
        assert part not in listing.text
    assert raw not in client.get("/admin/settings/audit_log").text


def test_only_the_digest_is_stored_anywhere(app, client, logged_in):
    raw = create_token_via_form(client, tier="write")
    (row,) = token_rows(app)
    assert row.digest == tokens.digest(raw)
    assert (row.tier, row.description, row.revoked_at, row.last_used_at) == ("write", "Mailchimp sync", None, None)
    with app.app_context():
        for table in db.metadata.sorted_tables:
            for record in db.session.execute(sa.select(table)):
                assert not any(isinstance(v, str) and raw in v for v in record), table.name
    if app.config["DATABASE_URL"].startswith("sqlite:///"):
        database = app.config["DATABASE_URL"].removeprefix("sqlite:///")
        for suffix in ("", "-wal"):
            try:
                with open(database + suffix, "rb") as written:
                    assert raw.encode() not in written.read()
            except FileNotFoundError:
                pass


def test_the_revealed_token_works_on_the_api(client, logged_in, app):
    raw = create_token_via_form(client)
    api = app.test_client()
    assert api.get("/admin/events", headers=bearer(raw)).status_code == 200


def test_resubmitting_the_form_never_makes_a_second_token(app, client, logged_in):
    csrf, nonce = new_form(client)
    assert post_form(client, csrf, nonce).status_code == 200
    again = post_form(client, csrf, nonce)
    assert again.status_code == 302
    assert again.headers["Location"] == LIST
    assert "already submitted" in client.get(LIST).text
    assert len(token_rows(app)) == 1


def test_a_double_click_racing_past_the_session_check_still_makes_one_token(app, client, logged_in):
    csrf, nonce = new_form(client)
    with app.app_context():
        before = db.session.execute(sa.select(ServerSession.key, ServerSession.data)).all()
    assert post_form(client, csrf, nonce).status_code == 200
    # The second click's request read the session before the first one saved it, so
    # the nonce still looks unspent there: the database must catch the repeat.
    with app.app_context():
        for key, data in before:
            db.session.execute(sa.update(ServerSession).where(ServerSession.key == key).values(data=data))
        db.session.commit()
    again = post_form(client, csrf, nonce)
    assert again.status_code == 302
    assert again.headers["Location"] == LIST
    assert len(token_rows(app)) == 1


def test_two_open_forms_each_work_once(app, client, logged_in):
    first = new_form(client)
    second = new_form(client)
    assert post_form(client, *first, description="one").status_code == 200
    assert post_form(client, *second, description="two").status_code == 200
    assert post_form(client, *first, description="one").status_code == 302
    assert [t.description for t in token_rows(app)] == ["one", "two"]


def test_invalid_input_shows_the_form_again_and_creates_nothing(app, client, logged_in):
    csrf, nonce = new_form(client)
    for description, tier, message in [
        ("", "read", "Give the token a description."),
        ("   ", "read", "Give the token a description."),
        ("x" * 101, "read", "Field cannot be longer than 100 characters."),
        ("ok", "admin", "Not a valid choice"),
    ]:
        response = post_form(client, csrf, nonce, description, tier)
        assert response.status_code == 400
        assert message in response.text
        assert 'name="description"' in response.text
    assert token_rows(app) == []
    # The same form, corrected, still works: the nonce is spent only on success.
    assert post_form(client, csrf, nonce, "x" * 100).status_code == 200
    assert len(token_rows(app)) == 1


def test_missing_or_stale_csrf_token_shows_the_form_again(app, client, logged_in):
    _, nonce = new_form(client)
    for csrf in (None, "stale-token"):
        data = {"description": "Mailchimp sync", "tier": "read", "nonce": nonce}
        if csrf:
            data["csrf_token"] = csrf
        response = client.post(LIST, data=data)
        assert response.status_code == 400
        assert "CSRF token" in response.text
        assert 'name="description"' in response.text
    assert token_rows(app) == []


def test_unicode_description_is_kept(app, client, logged_in):
    create_token_via_form(client, description="Synchro Müller – 日本 ✓")
    assert token_rows(app)[0].description == "Synchro Müller – 日本 ✓"
    assert "Synchro Müller – 日本 ✓" in client.get(LIST).text


def revoke(client, token_id, csrf=True, confirm="yes"):
    """Revoke as the list's form does once its script's dialog is accepted (``confirm=yes``)."""
    data = {"csrf_token": csrf_token_from(client.get(LIST).text)} if csrf else {}
    if confirm is not None:
        data["confirm"] = confirm
    return client.post(f"{LIST}/{token_id}/revoke", data=data)


def test_revoke_is_immediate_and_recorded(app, client, logged_in):
    raw = create_token_via_form(client)
    (row,) = token_rows(app)
    page = client.get(LIST)
    assert f'<tr data-token-id="{row.id}" class="token-live' in page.text
    assert f'action="{LIST}/{row.id}/revoke"' in page.text
    assert "data-confirm=" in page.text
    response = revoke(client, row.id)
    assert response.status_code == 302 and response.headers["Location"] == LIST
    listing = client.get(LIST)
    assert "was revoked" in listing.text
    # Still listed, as revoked, with nothing left to revoke; hidden by the filter.
    assert f'<tr data-token-id="{row.id}" class="token-revoked' in listing.text
    assert f'action="{LIST}/{row.id}/revoke"' not in listing.text
    assert f'data-token-id="{row.id}"' not in client.get(LIST + "?active=1").text
    assert token_rows(app)[0].revoked_at is not None
    assert app.test_client().get("/admin/events", headers=bearer(raw)).status_code == 401


def test_revoking_twice_says_so(app, client, logged_in):
    create_token_via_form(client)
    (row,) = token_rows(app)
    revoke(client, row.id)
    again = revoke(client, row.id)
    assert again.status_code == 302
    assert "was already revoked" in client.get(LIST).text
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.action == "token.revoked")) == 1


def test_revoke_needs_csrf(app, client, logged_in):
    create_token_via_form(client)
    (row,) = token_rows(app)
    assert revoke(client, row.id, csrf=False).status_code == 400
    assert token_rows(app)[0].revoked_at is None


@pytest.mark.parametrize("method", ["HEAD", "GET"])
@pytest.mark.parametrize("csrf", [False, True])
def test_only_post_revokes(app, client, logged_in, method, csrf):
    """HEAD and GET never change state (and CSRFProtect does not check them): the form body
    a POST would act on, CSRF token or not, only shows the confirmation page."""
    create_token_via_form(client)
    (row,) = token_rows(app)
    data = {"confirm": "yes", **({"csrf_token": csrf_token_from(client.get(LIST).text)} if csrf else {})}
    response = client.open(f"{LIST}/{row.id}/revoke", method=method, data=data)
    assert response.status_code == 200
    assert token_rows(app)[0].revoked_at is None
    assert revoke(client, row.id).status_code == 302  # the same form, POSTed, does revoke
    assert token_rows(app)[0].revoked_at is not None


def test_the_pages_that_take_a_form_and_a_get_are_known(app):
    """Every dashboard or login route that answers GET (and so HEAD) and also a form
    POST: each has its HEAD-and-GET test (above, test_a_head_with_credentials_logs_nobody_in, and
    tests/app/test_device_activation.py's for the device pages)."""
    both = {rule.endpoint for rule in app.url_map.iter_rules()
            if rule.endpoint.startswith(("dashboard.", "login.")) and {"GET", "POST"} <= rule.methods}
    # (delete_webhook's test is in tests/app/test_dashboard_webhooks.py)
    assert both == {"dashboard.revoke_api_token", "login.login", "dashboard.activate_device",
                    "dashboard.unpair_device", "dashboard.delete_webhook"}


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_a_head_with_credentials_logs_nobody_in(app, client, orgs, method):
    csrf = csrf_token_from(client.get("/login").text)
    form = {"email": "admin@acme.example", "password": PASSWORD, "csrf_token": csrf}
    assert client.open("/login", method=method, data=form).status_code == 200
    assert client.get("/admin/events").status_code == 302  # still sent to the login form
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ServerSession)) == 0


def test_another_accounts_token_cannot_be_seen_or_revoked(app, client, auth, orgs):
    auth.login(email="admin@globex.example")
    create_token_via_form(client, description="Globex secret sync")
    (globex_token,) = token_rows(app)
    auth.logout()
    auth.login()
    assert "Globex secret sync" not in client.get(LIST).text
    assert "Globex secret sync" not in client.get("/admin/settings/audit_log").text
    foreign = revoke(client, globex_token.id)
    missing = revoke(client, 999999)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.data == missing.data
    assert token_rows(app)[0].revoked_at is None


def test_every_admin_of_the_account_manages_its_tokens(app, client, auth, orgs):
    with app.app_context():
        db.session.add(Admin(account_id=orgs["acme"].account_id, email="second@acme.example",
                             password_hash=hash_password(PASSWORD)))
        db.session.commit()
    auth.login()
    create_token_via_form(client, description="made by the first admin")
    auth.logout()
    auth.login(email="second@acme.example")
    page = client.get(LIST)
    assert "made by the first admin" in page.text and "admin@acme.example" in page.text
    (row,) = token_rows(app)
    revoke(client, row.id)
    assert token_rows(app)[0].revoked_at is not None


def test_list_shows_creator_dates_and_last_use(app, client, auth, orgs):
    with freeze_time(datetime(2026, 5, 1, 18, 30, tzinfo=UTC)) as clock:
        auth.login()
        raw = create_token_via_form(client, tier="write")
        page = client.get(LIST)
        assert "2026-05-01 18:30 UTC" in page.text
        assert "Read + Write" in page.text
        assert "Never" in page.text
        clock.move_to(datetime(2026, 5, 1, 21, 15, tzinfo=UTC))
        app.test_client().get("/admin/events", headers=bearer(raw), buffered=True)  # closed: usage written
        page = client.get(LIST)
        assert "2026-05-01 21:15 UTC" in page.text
        assert "Never" not in page.text


def test_audit_log_records_create_and_revoke(app, client, auth, orgs):
    with freeze_time(datetime(2026, 5, 1, 12, 0, tzinfo=UTC)) as clock:
        auth.login()
        create_token_via_form(client, description="Analytics", tier="read")
        (row,) = token_rows(app)
        clock.move_to(datetime(2026, 5, 1, 13, 0, tzinfo=UTC))
        revoke(client, row.id)
        page = client.get("/admin/settings/audit_log").text
    with app.app_context():
        entries = db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id)).all()
        assert [(e.action, e.token_id, e.token_description, e.token_tier, e.admin_id, e.actor, e.client_address,
                 e.account_id) for e in entries] == [
            ("token.created", row.id, "Analytics", "read", orgs["acme"].admin_id, "admin@acme.example",
             "127.0.0.1", orgs["acme"].account_id),
            ("token.revoked", row.id, "Analytics", "read", orgs["acme"].admin_id, "admin@acme.example",
             "127.0.0.1", orgs["acme"].account_id),
        ]
    table = page[page.index("<tbody>"):]  # (the action filter above it names both too)
    assert table.index("Revoked token") < table.index("Created token")  # newest first
    assert "2026-05-01 13:00 UTC" in page and "2026-05-01 12:00 UTC" in page


def test_over_https_the_form_also_needs_a_same_site_referer(tmp_path, orgs):
    from usetix import create_app

    from ..helpers import AuthActions, make_test_config

    https_app = create_app({**make_test_config(tmp_path), "SESSION_COOKIE_SECURE": True})
    client = https_app.test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    client.environ_base["HTTP_REFERER"] = "https://localhost/login"
    assert AuthActions(client).login().status_code == 302
    csrf, nonce = new_form(client)
    del client.environ_base["HTTP_REFERER"]  # Flask-WTF's strict HTTPS check must still run here
    response = post_form(client, csrf, nonce)
    assert response.status_code == 400
    assert "referrer" in response.text and 'name="description"' in response.text
    assert token_rows(https_app) == []
    client.environ_base["HTTP_REFERER"] = "https://localhost/admin/settings/api_tokens/new"
    assert post_form(client, csrf, nonce).status_code == 200  # the same form, nonce unspent
