"""Token expiry: the create form's choices, the 401 from the boundary second on (SQLite and
PostgreSQL alike, whichever the suite runs on), the expiry header and what pages say."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from usetix.database.engine import db
from usetix.database.models import Admin, ApiToken

from ..helpers import NONCE_FIELD, TOKEN_VALUE, bearer, csrf_token_from, issue

LIST = "/admin/settings/api_tokens"
START = datetime(2026, 12, 1, 8, 30, 15, tzinfo=UTC)


def create(client, expiration=None, expires_on=None, description="Expiring sync", tier="read"):
    form = client.get(LIST + "/new")
    data = {"description": description, "tier": tier, "csrf_token": csrf_token_from(form.text),
            "nonce": NONCE_FIELD.search(form.text).group(1)}
    if expiration is not None:
        data["expiration"] = expiration
    if expires_on is not None:
        data["expires_on"] = expires_on
    return client.post(LIST, data=data)


def stored_expiry(app):
    with app.app_context():
        return db.session.scalars(sa.select(ApiToken.expires_at).order_by(ApiToken.id)).all()


def issue_expiring(app, org, expires_at, tier="read"):
    raw = issue(app, org, tier)
    with app.app_context():
        db.session.execute(sa.update(ApiToken).values(expires_at=expires_at))
        db.session.commit()
    return raw


# -- the form ---------------------------------------------------------------------------

def test_the_form_offers_expiry_choices_with_30_days_by_default(client, logged_in):
    with freeze_time(START):
        page = client.get(LIST + "/new").text
    for value, label in [("7", "7 days"), ("30", "30 days"), ("60", "60 days"), ("90", "90 days"),
                         ("custom", "Custom date"), ("none", "No expiry")]:
        assert re.search(rf'<input[^>]*value="{value}"[^>]*> {label}</label>', page), value
    assert re.search(r'<input[^>]*checked[^>]*value="30"|<input[^>]*value="30"[^>]*checked', page)
    assert re.search(r'<input[^>]*id="expires_on"[^>]*max="2027-12-02"[^>]*min="2026-12-02"[^>]*type="date"', page)
    assert 'id="no-expiry-warning"' in page and "works until someone" in page


@pytest.mark.parametrize("choice, expected", [
    (None, START + timedelta(days=30)),  # a form without the field (an old tab) gets the default
    ("7", START + timedelta(days=7)),
    ("30", START + timedelta(days=30)),
    ("60", START + timedelta(days=60)),
    ("90", START + timedelta(days=90)),
    ("none", None),
])
def test_each_choice_sets_the_expiry(app, client, logged_in, choice, expected):
    with freeze_time(START):
        response = create(client, choice)
    assert response.status_code == 200
    assert stored_expiry(app) == [expected]


def test_a_custom_date_expires_at_midnight_utc(app, client, logged_in):
    with freeze_time(START):
        response = create(client, "custom", "2027-03-15")
    assert response.status_code == 200
    assert stored_expiry(app) == [datetime(2027, 3, 15, tzinfo=UTC)]
    assert "Expires in 104 days" in response.text and "2027-03-15 00:00 UTC" in response.text


@pytest.mark.parametrize("expires_on, message", [
    ("", "Pick the date the token expires."),
    ("2026-12-01", "The expiry date must be tomorrow (2026-12-02) or later."),
    ("2027-12-03", "The expiry date can be at most 366 days ahead (2027-12-02)."),
    ("2027-02-30", "That date does not exist."),
    ("next tuesday", "Give the date as YYYY-MM-DD."),
])
def test_bad_custom_dates_are_form_errors_and_create_nothing(app, client, logged_in, expires_on, message):
    with freeze_time(START):
        response = create(client, "custom", expires_on)
    assert response.status_code == 400
    assert f'<p class="error" role="alert">{message}</p>' in response.text
    assert 'name="description"' in response.text and 'value="Expiring sync"' in response.text
    assert stored_expiry(app) == []
    # The same form, corrected, still works (its nonce was not spent).
    nonce = NONCE_FIELD.search(response.text).group(1)
    with freeze_time(START):
        fixed = client.post(LIST, data={"description": "Expiring sync", "tier": "read", "expiration": "custom",
                                        "expires_on": "2027-01-01", "csrf_token": csrf_token_from(response.text),
                                        "nonce": nonce})
    assert fixed.status_code == 200 and stored_expiry(app) == [datetime(2027, 1, 1, tzinfo=UTC)]


@pytest.mark.parametrize("choice", ["1", "365", "0030", "forever", ""])
def test_unknown_choices_are_form_errors(app, client, logged_in, choice):
    assert create(client, choice).status_code == 400
    assert stored_expiry(app) == []


@pytest.mark.parametrize("field", ["expiration", "expires_on"])
def test_a_file_part_for_an_expiry_field_is_a_form_error(app, client, logged_in, field):
    import io

    form = client.get(LIST + "/new")
    data = {"description": "Uploaded", "tier": "read", "expiration": "custom", "expires_on": "2027-01-01",
            "csrf_token": csrf_token_from(form.text), "nonce": NONCE_FIELD.search(form.text).group(1)}
    data[field] = (io.BytesIO(b"2027-01-01"), "date.txt")
    response = client.post(LIST, data=data, content_type="multipart/form-data")
    assert response.status_code == 400
    assert '<p class="error" role="alert">' in response.text
    assert stored_expiry(app) == []


def test_the_date_is_ignored_unless_custom_is_picked(app, client, logged_in):
    with freeze_time(START):
        assert create(client, "7", "garbage").status_code == 200
    assert stored_expiry(app) == [START + timedelta(days=7)]


def test_the_reveal_says_when_it_expires_or_warns_that_it_never_does(app, client, logged_in):
    with freeze_time(START):
        seven = create(client, "7").text
        forever = create(client, "none", description="Forever").text
    assert re.search(r'id="token-expiry">Expires in 7 days\s*\(2026-12-08 08:30 UTC\)', seven)
    assert "never expires" not in seven
    assert 'id="token-expiry">No expiry' in forever and "This token never expires" in forever


# -- the API ----------------------------------------------------------------------------

def test_the_token_works_until_the_second_before_and_is_401_from_the_boundary_second(app, client, orgs):
    expires_at = datetime(2027, 1, 1, tzinfo=UTC)
    raw = issue_expiring(app, orgs["acme"], expires_at)
    with freeze_time(expires_at - timedelta(microseconds=1)):
        last = client.get("/admin/events", headers=bearer(raw))
    with freeze_time(expires_at):
        first_refused = client.get("/admin/events", headers=bearer(raw))
    with freeze_time(expires_at + timedelta(days=400)):
        much_later = client.get("/admin/events", headers=bearer(raw))
    assert last.status_code == 200
    assert last.headers["Usetix-Token-Expiration"] == "2027-01-01T00:00:00Z"
    for refused in (first_refused, much_later):
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="Usetix", error="invalid_token"'
        assert refused.json == {"error": "expired_token", "message": "This token expired at 2027-01-01T00:00:00Z."}
        assert "Usetix-Token-Expiration" not in refused.headers


@pytest.mark.parametrize("set_by", ["issue_token", "update"])
def test_a_fractional_expiry_is_kept_as_the_whole_second_its_header_and_message_state(app, client, orgs, set_by):
    """Whoever sets it (issuing, or any later UPDATE), an expiry given with a fraction is
    stored as its whole second: the token stops at the second its header names, not 0.69 s
    later."""
    from usetix.auth.token_service import issue_token

    second = datetime(2027, 1, 1, 12, 0, 5, tzinfo=UTC)
    given = second + timedelta(microseconds=690_000)
    if set_by == "update":
        raw = issue_expiring(app, orgs["acme"], given)
    else:
        with app.app_context():
            raw = issue_token(db.session.get(Admin, orgs["acme"].admin_id), "fractional", "read", None,
                              expires_at=given)[1]
    assert stored_expiry(app) == [second]
    with freeze_time(second - timedelta(microseconds=1)):
        last = client.get("/admin/account", headers=bearer(raw))
    with freeze_time(second + timedelta(microseconds=300_000)):
        refused = client.get("/admin/account", headers=bearer(raw))
    assert last.status_code == 200 and last.headers["Usetix-Token-Expiration"] == "2027-01-01T12:00:05Z"
    assert last.json["data"]["token"]["expires_at"] == "2027-01-01T12:00:05Z"
    assert refused.status_code == 401
    assert refused.json == {"error": "expired_token", "message": "This token expired at 2027-01-01T12:00:05Z."}


def test_a_token_made_on_the_form_expires_exactly_its_days_later(app, client, logged_in):
    with freeze_time(START):
        raw = TOKEN_VALUE.search(create(client, "7").text).group(1)
    api = app.test_client()
    with freeze_time(START + timedelta(days=7, seconds=-1)):
        assert api.get("/admin/account", headers=bearer(raw)).status_code == 200
    with freeze_time(START + timedelta(days=7)):
        assert api.get("/admin/account", headers=bearer(raw)).status_code == 401


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "DELETE", "PATCH"])
@pytest.mark.parametrize("tier", ["read", "write"])
def test_expired_is_always_401_never_403_or_5xx(app, client, orgs, method, tier):
    raw = issue_expiring(app, orgs["acme"], datetime(2027, 1, 1, tzinfo=UTC), tier)
    with freeze_time(datetime(2027, 1, 2, tzinfo=UTC)):
        for path in ("/admin/events", "/admin/events/1", "/admin/nowhere", "/admin/account"):
            response = client.open(path, method=method, headers=bearer(raw))
            assert response.status_code == 401, (method, path)
            if method != "HEAD":
                assert response.json["error"] == "expired_token"


def test_no_expiry_means_no_header_and_null_in_the_account(app, client, orgs, read_token):
    response = client.get("/admin/account", headers=bearer(read_token))
    assert "Usetix-Token-Expiration" not in response.headers
    assert response.json["data"]["token"]["expires_at"] is None


def test_every_authenticated_answer_of_an_expiring_token_carries_the_header(app, client, orgs):
    raw = issue_expiring(app, orgs["acme"], datetime(2027, 1, 1, 12, 0, 5, tzinfo=UTC))
    event_id = orgs["acme"].event_ids[0]
    with freeze_time(START):
        for path in ("/admin/account", "/admin/events", f"/admin/events/{event_id}",
                     f"/admin/events/{event_id}/attendees", "/admin/events/99999", "/admin/events?page=0"):
            response = client.get(path, headers=bearer(raw))
            assert response.headers["Usetix-Token-Expiration"] == "2027-01-01T12:00:05Z", path
        account = client.get("/admin/account", headers=bearer(raw)).json["data"]["token"]
    assert account["expires_at"] == "2027-01-01T12:00:05Z"


def test_expiry_costs_no_extra_query(app, client, orgs):
    from ..queries import recorded_queries

    raw = issue_expiring(app, orgs["acme"], datetime(2027, 1, 1, tzinfo=UTC))
    with freeze_time(START):
        client.get("/admin/events", headers=bearer(raw), buffered=True)  # the first use is written
        with recorded_queries(app) as statements:
            assert client.get("/admin/events", headers=bearer(raw)).status_code == 200
    assert len(statements) == 2  # the token (with its expiry), then the page
    with freeze_time(datetime(2027, 1, 1, tzinfo=UTC)), recorded_queries(app) as statements:
        assert client.get("/admin/events", headers=bearer(raw)).status_code == 401
    assert len(statements) == 1


# -- the list ---------------------------------------------------------------------------

def test_the_list_shows_expiry_highlights_the_soon_and_can_hide_the_dead(app, client, logged_in, orgs):
    now = START
    with app.app_context():
        admin = db.session.get(Admin, orgs["acme"].admin_id)
        for description, expires_at, revoked in [
            ("soon", now + timedelta(days=5, hours=2), None),
            ("later", now + timedelta(days=40), None),
            ("forever", None, None),
            ("gone", now - timedelta(days=2, hours=1), None),
            ("revoked", now + timedelta(days=3), now - timedelta(hours=1)),
        ]:
            db.session.add(ApiToken(account_id=admin.account_id, created_by_id=admin.id, description=description,
                                    tier="read", digest=description.ljust(64, "0"), expires_at=expires_at,
                                    revoked_at=revoked))
        db.session.commit()
    with freeze_time(now):
        page = client.get(LIST).text
        live_only = client.get(LIST + "?active=1").text

    def row(description, html):
        match = re.search(rf'<tr data-token-id="\d+" class="([^"]*)">\s*<td><a [^>]*>{description}</a>.*?</tr>',
                          html, re.S)
        return match and (match.group(1), match.group(0))

    classes, html = row("soon", page)
    assert "expiring-soon" in classes and "Expires in 5 days" in html and "<td>Live</td>" in html
    classes, html = row("later", page)
    assert "expiring-soon" not in classes and "Expires in 40 days" in html
    assert "No expiry" in row("forever", page)[1]
    classes, html = row("gone", page)
    assert classes == "token-expired" and "Expired 2 days ago" in html and "Revoke" not in html
    classes, html = row("revoked", page)
    assert classes == "token-revoked" and "<td>Revoked</td>" in html and "Revoke</button>" not in html
    assert [d for d in ("soon", "later", "forever", "gone", "revoked") if row(d, live_only)] == \
        ["soon", "later", "forever"]
    assert "Show revoked and expired too" in live_only and "Hide revoked and expired" in page
