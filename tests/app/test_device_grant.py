"""The OAuth 2.0 device grant's endpoints (RFC 8628 §3.1-3.5) and sign-out (RFC 7009):
every answer of §3.5, a code used once, an expired or denied code never yielding a token,
the issued token an ordinary check-in-only Usetix token limited to the approved events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from usetix.auth import device_grant
from usetix.core import audit_actions, device_codes, token_format
from usetix.database.engine import db
from usetix.database.models import Admin, ApiToken, AuditEvent, DeviceAuthorization

from ..helpers import bearer

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def ask(client, **extra):
    response = client.post("/oauth/device_authorization",
                           data={"client_id": device_codes.CLIENT_ID, "device_name": "Door 1", **extra})
    return response


def poll(client, device_code, client_id=device_codes.CLIENT_ID):
    return client.post("/oauth/token", data={"grant_type": GRANT_TYPE, "device_code": device_code,
                                             "client_id": client_id})


def decide(app, org, user_code, events=None, approve=True, expires_at=None, replaces=None):
    with app.app_context():
        row = device_grant.pending_by_user_code(device_codes.normalize_user_code(user_code), datetime.now(UTC))
        admin = db.session.get(Admin, org.admin_id)
        if approve:
            device_grant.approve(row, admin, events or org.event_ids[:1], expires_at, "192.0.2.9", replaces=replaces)
        else:
            device_grant.deny(row, admin, "192.0.2.9")


def actions_recorded(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.created_at, AuditEvent.id)))


def test_device_authorization_answers_codes_and_stores_only_the_digest(app, client):
    response = ask(client)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert set(body) == {"device_code", "user_code", "verification_uri", "verification_uri_complete",
                         "expires_in", "interval"}
    assert body["expires_in"] == 600 and body["interval"] == 5
    assert body["verification_uri"] == "/admin/devices/activate"
    assert body["verification_uri_complete"] == f"/admin/devices/activate?user_code={body['user_code']}"
    code = body["user_code"]
    assert len(code) == 9 and code[4] == "-"
    assert all(letter in device_codes.USER_CODE_ALPHABET for letter in code.replace("-", ""))
    with app.app_context():
        row = db.session.scalar(sa.select(DeviceAuthorization))
        assert row.device_code_digest == device_grant.device_code_digest(body["device_code"])
        assert body["device_code"] not in (row.device_code_digest, row.user_code)
        assert (row.user_code, row.device_name, row.status) == (code.replace("-", ""), "Door 1", "pending")
        assert row.requested_from == "127.0.0.1"


@pytest.mark.app_config(PUBLIC_URL="https://tickets.example.org/")
def test_verification_uri_is_the_configured_public_url_never_the_host_header(client):
    body = client.post("/oauth/device_authorization", data={"client_id": device_codes.CLIENT_ID},
                       base_url="https://evil.example").json
    assert body["verification_uri"] == "https://tickets.example.org/admin/devices/activate"


def test_plain_http_is_refused_off_the_loopback(client):
    for path in ("/oauth/device_authorization", "/oauth/token", "/oauth/revoke"):
        response = client.post(path, data={"client_id": device_codes.CLIENT_ID}, base_url="http://tickets.example.org")
        assert response.status_code == 400, path
        assert response.json["error"] == "invalid_request" and "HTTPS" in response.json["message"]


def test_unknown_client_is_401_invalid_client(client):
    for path, data in (("/oauth/device_authorization", {"client_id": "someone-else"}),
                       ("/oauth/device_authorization", {}),
                       ("/oauth/token", {"grant_type": GRANT_TYPE, "device_code": "x", "client_id": "nope"}),
                       ("/oauth/revoke", {"token": "x", "client_id": "nope"})):
        response = client.post(path, data=data, headers={"Accept": "application/json"})
        assert response.status_code == 401, (path, response.json)
        assert response.json["error"] == "invalid_client"
        assert response.json["message"]
        assert response.headers["WWW-Authenticate"].startswith('Basic error="invalid_client"')  # RFC 6749 §5.2
        assert response.headers["Cache-Control"] == "no-store"


def test_device_name_is_bounded_and_printable(client):
    assert ask(client, device_name="x" * 65).json["error"] == "invalid_request"
    assert ask(client, device_name="door\u202e1").status_code == 400
    assert ask(client, device_name="y" * 64).status_code == 200


def test_scope_beyond_check_in_is_invalid_scope(client):
    assert ask(client, scope="attendees:read").json["error"] == "invalid_scope"
    assert ask(client, scope="check_in:write events:read").status_code == 200


def test_pending_then_slow_down_grows_the_interval_then_token_once(app, client, orgs):
    with freeze_time(T0) as clock:
        body = ask(client).json
        first = poll(client, body["device_code"])
        assert first.status_code == 400 and first.json["error"] == "authorization_pending"
        assert first.headers["Cache-Control"] == "no-store"
        clock.tick(2)
        assert poll(client, body["device_code"]).json["error"] == "slow_down"
        clock.tick(6)  # 6 s after the last poll: too soon for the interval of 10 s it now is
        assert poll(client, body["device_code"]).json["error"] == "slow_down"
        clock.tick(16)  # the interval is 15 s now
        assert poll(client, body["device_code"]).json["error"] == "authorization_pending"
        with app.app_context():
            assert db.session.scalar(sa.select(DeviceAuthorization.interval)) == 15
        decide(app, orgs["acme"], body["user_code"], expires_at=T0 + timedelta(days=30))
        clock.tick(1)  # an approved code is handed out whatever the pace
        granted = poll(client, body["device_code"])
        assert granted.status_code == 200, granted.json
        assert granted.headers["Cache-Control"] == "no-store"
        token = granted.json
        assert token["token_type"] == "Bearer"
        assert token["scope"] == "check_in:write events:read"
        assert token["expires_in"] == 30 * 86400 - 25  # 25 s of polling since T0
        token_format.parse(token["access_token"])  # the product's own format
        again = poll(client, body["device_code"])
        assert again.status_code == 400 and again.json["error"] == "invalid_grant"
    with app.app_context():
        row = db.session.scalar(sa.select(ApiToken))
        assert row.digest == token_format.digest(token["access_token"])
        assert row.description == "Door 1" and row.created_by_id == orgs["acme"].admin_id
        assert row.permissions == ("read", "none", "write", "none") and row.restricted_to == orgs["acme"].event_ids[:1]
        assert row.device_authorization.status == "issued"
    assert actions_recorded(app) == [audit_actions.DEVICE_REQUESTED, audit_actions.DEVICE_APPROVED,
                                     audit_actions.DEVICE_TOKEN_ISSUED]


def test_issued_token_checks_in_on_an_approved_event_and_404s_on_another(app, client, orgs):
    acme = orgs["acme"]
    body = ask(client).json
    decide(app, acme, body["user_code"], events=[acme.event_ids[0]])
    token = poll(client, body["device_code"]).json["access_token"]
    attendee_on = acme.attendee_ids[0]  # the first event's
    attendee_off = acme.attendee_ids[2]  # the second event's
    ok = client.post(f"/admin/events/{acme.event_ids[0]}/attendees/{attendee_on}/check_in", headers=bearer(token))
    assert ok.status_code == 201, ok.json
    assert ok.json["data"]["id"] == attendee_on
    other = client.post(f"/admin/events/{acme.event_ids[1]}/attendees/{attendee_off}/check_in", headers=bearer(token))
    assert other.status_code == 404
    listing = client.get(f"/admin/events/{acme.event_ids[0]}/attendees", headers=bearer(token))
    assert listing.status_code == 403 and listing.json["error"] == "insufficient_scope"


def test_denied_code_is_access_denied_and_never_a_token(app, client, orgs):
    with freeze_time(T0) as clock:
        body = ask(client).json
        decide(app, orgs["acme"], body["user_code"], approve=False)
        for _ in range(3):
            clock.tick(10)
            answer = poll(client, body["device_code"])
            assert answer.status_code == 400 and answer.json["error"] == "access_denied"
        clock.tick(600)
        assert poll(client, body["device_code"]).json["error"] == "expired_token"
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0
    assert actions_recorded(app) == [audit_actions.DEVICE_REQUESTED, audit_actions.DEVICE_DENIED]


def test_expired_code_is_expired_token_and_cannot_be_approved(app, client, orgs):
    with freeze_time(T0) as clock:
        body = ask(client).json
        clock.tick(device_codes.EXPIRES_IN)
        answer = poll(client, body["device_code"])
        assert answer.status_code == 400 and answer.json["error"] == "expired_token"
        with app.app_context():
            assert device_grant.pending_by_user_code(body["user_code"].replace("-", ""), datetime.now(UTC)) is None
            row = db.session.scalar(sa.select(DeviceAuthorization))
            with pytest.raises(device_grant.NoLongerPending):
                device_grant.approve(row, db.session.get(Admin, orgs["acme"].admin_id), orgs["acme"].event_ids[:1],
                                     None, "192.0.2.9")
        assert poll(client, body["device_code"]).json["error"] == "expired_token"
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0


def test_unknown_device_code_and_bad_requests(client):
    assert poll(client, "not-a-code").json["error"] == "invalid_grant"
    missing = client.post("/oauth/token", data={"grant_type": GRANT_TYPE, "client_id": device_codes.CLIENT_ID})
    assert missing.status_code == 400 and missing.json["error"] == "invalid_request"
    other_grant = client.post("/oauth/token", data={"grant_type": "password", "client_id": device_codes.CLIENT_ID})
    assert other_grant.json["error"] == "unsupported_grant_type"


def test_expiry_chosen_and_no_expiry(app, client, orgs):
    with freeze_time(T0):
        body = ask(client).json
        decide(app, orgs["acme"], body["user_code"], expires_at=T0 + timedelta(days=7))
        assert poll(client, body["device_code"]).json["expires_in"] == 7 * 86400
        body = ask(client).json
        decide(app, orgs["acme"], body["user_code"], expires_at=None)
        assert "expires_in" not in poll(client, body["device_code"]).json


def test_revoke_signs_a_device_out_and_always_answers_200(app, client, orgs):
    body = ask(client).json
    decide(app, orgs["acme"], body["user_code"])
    token = poll(client, body["device_code"]).json["access_token"]
    assert client.get("/admin/events", headers=bearer(token)).status_code == 200
    for value in ("utx_not_a_token", "", "whatever"):
        answer = client.post("/oauth/revoke", data={"token": value, "client_id": device_codes.CLIENT_ID})
        assert answer.status_code == 200 and answer.json == {}
    answer = client.post("/oauth/revoke", data={"token": token, "client_id": device_codes.CLIENT_ID})
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    assert client.get("/admin/events", headers=bearer(token)).status_code == 401
    assert client.post("/oauth/revoke", data={"token": token, "client_id": device_codes.CLIENT_ID}).status_code == 200
    assert actions_recorded(app)[-1] == audit_actions.DEVICE_SIGNED_OUT
    with app.app_context():
        record = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == audit_actions.DEVICE_SIGNED_OUT))
        assert record.actor == "device: Door 1" and record.object_type == "device"


def test_revoke_leaves_a_dashboard_token_alone(app, client, orgs, read_token):
    answer = client.post("/oauth/revoke", data={"token": read_token, "client_id": device_codes.CLIENT_ID})
    assert answer.status_code == 200
    assert client.get("/admin/events", headers=bearer(read_token)).status_code == 200


@pytest.mark.app_config(DEVICE_AUTHORIZATION_RATE_LIMIT="2 per 10 minutes")
def test_codes_asked_for_are_limited_per_address(client):
    assert ask(client).status_code == 200
    assert ask(client).status_code == 200
    refused = ask(client)
    assert refused.status_code == 429 and refused.json["error"] == "slow_down"
    assert "Retry-After" in refused.headers


def test_a_repeated_parameter_is_invalid_request(client):
    """RFC 6749 §3.1: parameters must not be sent more than once."""
    for path, data in (("/oauth/device_authorization", {"client_id": [device_codes.CLIENT_ID, "other"]}),
                       ("/oauth/token", {"grant_type": GRANT_TYPE, "client_id": device_codes.CLIENT_ID,
                                         "device_code": ["a", "b"]})):
        response = client.post(path, data=data)
        assert response.status_code == 400 and response.json["error"] == "invalid_request", path
        assert response.json["message"] == "A parameter was sent more than once."


def test_revoke_takes_any_hint_and_needs_a_token(app, client, orgs):
    body = ask(client).json
    decide(app, orgs["acme"], body["user_code"])
    token = poll(client, body["device_code"]).json["access_token"]
    missing = client.post("/oauth/revoke", data={"client_id": device_codes.CLIENT_ID})
    assert missing.status_code == 400 and missing.json["error"] == "invalid_request"
    hinted = client.post("/oauth/revoke", data={"client_id": device_codes.CLIENT_ID, "token": token,
                                                "token_type_hint": "refresh_token"})
    assert hinted.status_code == 200
    assert client.get("/admin/events", headers=bearer(token)).status_code == 401


def test_every_error_says_a_sentence(client):
    answer = client.post("/oauth/token", data={"grant_type": "password", "client_id": device_codes.CLIENT_ID})
    assert answer.json == {"error": "unsupported_grant_type",
                           "message": "grant_type must be urn:ietf:params:oauth:grant-type:device_code."}
    pending = poll(client, ask(client).json["device_code"]).json
    assert pending["message"] == "No one has approved this device yet: poll again after the interval."


def test_purge_device_codes_keeps_those_that_gave_a_token(app, client, orgs, runner):
    with freeze_time(T0) as clock:
        paired = ask(client).json
        decide(app, orgs["acme"], paired["user_code"])
        assert poll(client, paired["device_code"]).status_code == 200
        ask(client)  # never decided
        denied = ask(client).json
        decide(app, orgs["acme"], denied["user_code"], approve=False)
        approved = ask(client).json
        decide(app, orgs["acme"], approved["user_code"])  # and never fetched
        clock.tick(device_codes.EXPIRES_IN - 1)
        assert "Purged 0 expired device code(s)." in runner.invoke(args=["purge-device-codes"]).output
        clock.tick(1)
        assert "Purged 3 expired device code(s)." in runner.invoke(args=["purge-device-codes"]).output
    with app.app_context():
        assert db.session.scalars(sa.select(DeviceAuthorization.status)).all() == ["issued"]
        assert db.session.scalar(sa.select(ApiToken.device_authorization_id)) is not None
