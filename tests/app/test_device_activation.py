"""The approval page of the device grant (/admin/devices/activate), its throttle, Settings →
Devices with Unpair, "replaces", and the marks device tokens carry in API Tokens."""

from __future__ import annotations

import os
import re
import secrets

import pytest
import redis
import sqlalchemy as sa

from usetix import create_app
from usetix.core import audit_actions, device_codes
from usetix.database.engine import db
from usetix.database.models import ApiToken, AuditEvent, DeviceAuthorization

from ..helpers import AuthActions, bearer, csrf_token_from, make_test_config

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE = re.compile(r'name="user_code" type="hidden" value="([A-Z]{8})"')


def ask(client, name="Door 1"):
    body = client.post("/oauth/device_authorization", data={"client_id": device_codes.CLIENT_ID,
                                                            "device_name": name}).json
    return body


def poll(client, device_code):
    return client.post("/oauth/token", data={"grant_type": GRANT_TYPE, "device_code": device_code,
                                             "client_id": device_codes.CLIENT_ID})


def enter(client, typed):
    page = client.get("/admin/devices/activate")
    return client.post("/admin/devices/activate", data={"user_code": typed, "csrf_token": csrf_token_from(page.text)})


def decide(client, confirm_page, decision, events=(), **extra):
    return client.post("/admin/devices/activate/decision", data={
        "csrf_token": csrf_token_from(confirm_page.text), "user_code": USER_CODE.search(confirm_page.text).group(1),
        "events": [str(event) for event in events], "expiration": "30", "decision": decision, **extra})


def status_of(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(sa.select(DeviceAuthorization.status).order_by(DeviceAuthorization.id)))


def test_the_page_needs_a_login(client):
    response = client.get("/admin/devices/activate")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("typed", ["{code}", "{lower}", "{bare}", "  {bare_lower} "])
def test_code_with_or_without_dash_any_case_shows_what_asks(app, logged_in, typed):
    body = ask(logged_in)
    code = body["user_code"]
    page = enter(logged_in, typed.format(code=code, lower=code.lower(), bare=code.replace("-", ""),
                                         bare_lower=code.replace("-", "").lower()))
    assert page.status_code == 200
    assert f'id="confirm-code">{code}<' in page.text
    assert 'id="device-name">Door 1<' in page.text
    assert 'id="device-address">127.0.0.1<' in page.text
    assert ">Approve</button>" in page.text and ">Deny</button>" in page.text
    assert status_of(app) == ["pending"]  # seeing it approves nothing


def test_complete_uri_prefills_and_still_asks(app, logged_in):
    body = ask(logged_in)
    page = logged_in.get(body["verification_uri_complete"])
    assert page.status_code == 200
    assert f'id="confirm-code">{body["user_code"]}<' in page.text
    assert status_of(app) == ["pending"]


def test_complete_uri_survives_the_login(app, client, orgs):
    """An admin who scans the device's QR code while logged out logs in and lands on the code."""
    body = ask(client)
    to_login = client.get(body["verification_uri_complete"])
    assert to_login.status_code == 302
    back = AuthActions(client).login(next=to_login.headers["Location"].split("next=", 1)[1])
    assert back.status_code == 302 and back.headers["Location"] == body["verification_uri_complete"]
    assert f'id="confirm-code">{body["user_code"]}<' in client.get(back.headers["Location"]).text


def test_approve_with_events_and_expiry_then_the_device_gets_its_token(app, logged_in, orgs):
    acme = orgs["acme"]
    body = ask(logged_in)
    page = enter(logged_in, body["user_code"])
    answer = decide(logged_in, page, "approve", events=acme.event_ids[:2], expiration="7")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/admin/settings/devices")
    assert status_of(app) == ["approved"]
    waiting = logged_in.get("/admin/settings/devices").text
    assert 'id="devices-waiting"' in waiting and f"Door 1 · approved by {acme.email}" in waiting
    token = poll(logged_in, body["device_code"]).json
    assert token["expires_in"] <= 7 * 86400
    with app.app_context():
        row = db.session.scalar(sa.select(ApiToken))
        assert row.restricted_to == sorted(acme.event_ids[:2])
        assert row.created_by_id == acme.admin_id and row.device_authorization_id is not None
        records = db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.created_at, AuditEvent.id)).all()
        assert [r.action for r in records] == [audit_actions.DEVICE_REQUESTED, audit_actions.DEVICE_APPROVED,
                                               audit_actions.DEVICE_TOKEN_ISSUED]
        assert records[0].client_address == "127.0.0.1" and records[0].admin_id is None
        assert records[1].actor == acme.email and records[1].token_event_ids == row.event_ids
    devices = logged_in.get("/admin/settings/devices")
    assert "Door 1" in devices.text and acme.email in devices.text and "Acme Events event 0" in devices.text
    assert 'id="devices-waiting"' not in devices.text  # picked up
    tokens = logged_in.get("/admin/settings/api_tokens")
    assert f"paired by {acme.email}" in tokens.text
    log = logged_in.get("/admin/settings/audit_log")
    assert log.status_code == 200
    for label in ("Device asked to be paired", "Approved device", "Issued token to device"):
        assert label in log.text


def test_approve_needs_an_event_and_a_csrf_token(app, logged_in):
    body = ask(logged_in)
    page = enter(logged_in, body["user_code"])
    refused = decide(logged_in, page, "approve", events=())
    assert refused.status_code == 400 and "Tick at least one event" in refused.text
    no_csrf = logged_in.post("/admin/devices/activate/decision", data={
        "user_code": body["user_code"].replace("-", ""), "decision": "deny"})
    assert no_csrf.status_code == 400
    assert status_of(app) == ["pending"]


def test_another_accounts_event_cannot_be_granted(app, logged_in, orgs):
    body = ask(logged_in)
    page = enter(logged_in, body["user_code"])
    refused = decide(logged_in, page, "approve", events=orgs["globex"].event_ids[:1])
    assert refused.status_code == 400
    assert status_of(app) == ["pending"]


def test_deny_means_access_denied(app, logged_in):
    body = ask(logged_in)
    answer = decide(logged_in, enter(logged_in, body["user_code"]), "deny")
    assert answer.status_code == 302
    assert status_of(app) == ["denied"]
    assert poll(logged_in, body["device_code"]).json["error"] == "access_denied"
    with app.app_context():
        assert db.session.scalar(sa.select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(1)) == \
            audit_actions.DEVICE_DENIED


def test_a_wrong_code_is_a_form_error(logged_in):
    ask(logged_in)
    for typed, message in (("BCDF-GHJK", "No device is waiting with this code"), ("hello", "8 letters"),
                           ("AEIO-UAEI", "8 letters")):
        page = enter(logged_in, typed)
        assert page.status_code == 400 and message in page.text


@pytest.mark.app_config(DEVICE_CODE_RATE_LIMIT="3 per 10 minutes", DEVICE_CODE_ADDRESS_RATE_LIMIT="5 per 10 minutes")
def test_guessing_codes_is_throttled_per_session_and_per_address(app, client, orgs):
    auth = AuthActions(client)
    auth.login()
    body = ask(client)
    for guess in ("BCDF-GHJK", "BCDF-GHJL", "BCDF-GHJM"):
        assert enter(client, guess).status_code == 400
    refused = enter(client, body["user_code"])  # the right code, after the session's share
    assert refused.status_code == 429 and "Too many codes" in refused.text and "Retry-After" in refused.headers
    assert "confirm-code" not in refused.text
    # A new session from the same address has the address's remaining share, then none.
    other = app.test_client()
    AuthActions(other).login("admin@globex.example")
    assert enter(other, "BCDF-GHJN").status_code == 400
    assert enter(other, "BCDF-GHJP").status_code == 400
    assert enter(other, body["user_code"]).status_code == 429
    assert status_of(app) == ["pending"]


def test_unpair_revokes_and_is_recorded(app, logged_in, orgs):
    body = ask(logged_in)
    decide(logged_in, enter(logged_in, body["user_code"]), "approve", events=orgs["acme"].event_ids[:1])
    token = poll(logged_in, body["device_code"]).json["access_token"]
    with app.app_context():
        token_id = db.session.scalar(sa.select(ApiToken.id))
    asked = logged_in.get(f"/admin/settings/devices/{token_id}/unpair")
    assert asked.status_code == 200 and "Unpair this device?" in asked.text
    done = logged_in.post(f"/admin/settings/devices/{token_id}/unpair",
                          data={"confirm": "yes", "csrf_token": csrf_token_from(asked.text)})
    assert done.status_code == 302
    assert logged_in.get("/admin/events", headers=bearer(token)).status_code == 401
    assert "No paired devices" in logged_in.get("/admin/settings/devices").text
    with app.app_context():
        assert db.session.scalar(sa.select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(1)) == \
            audit_actions.DEVICE_UNPAIRED


def test_another_accounts_device_is_a_404(app, client, orgs):
    body = ask(client)
    AuthActions(client).login()
    decide(client, enter(client, body["user_code"]), "approve", events=orgs["acme"].event_ids[:1])
    poll(client, body["device_code"])
    with app.app_context():
        token_id = db.session.scalar(sa.select(ApiToken.id))
    other = app.test_client()
    AuthActions(other).login("admin@globex.example")
    assert other.get(f"/admin/settings/devices/{token_id}/unpair").status_code == 404
    assert "Door 1" not in other.get("/admin/settings/devices").text


def test_replaces_unpairs_the_old_device_at_once(app, logged_in, orgs):
    events = orgs["acme"].event_ids[:1]
    first = ask(logged_in, "Old phone")
    decide(logged_in, enter(logged_in, first["user_code"]), "approve", events=events)
    old_token = poll(logged_in, first["device_code"]).json["access_token"]
    with app.app_context():
        old_id = db.session.scalar(sa.select(ApiToken.id))
    second = ask(logged_in, "New phone")
    page = enter(logged_in, second["user_code"])
    assert "Replaces “Old phone”" in page.text
    assert decide(logged_in, page, "approve", events=events, replaces=str(old_id)).status_code == 302
    assert logged_in.get("/admin/events", headers=bearer(old_token)).status_code == 401
    new_token = poll(logged_in, second["device_code"]).json["access_token"]
    assert logged_in.get("/admin/events", headers=bearer(new_token)).status_code == 200


@pytest.mark.parametrize("method", ["HEAD", "GET"])
@pytest.mark.parametrize("csrf", [False, True])
def test_only_post_unpairs_or_decides(app, logged_in, orgs, method, csrf):
    """HEAD and GET never change state (CSRFProtect does not check them): the body a POST
    would act on only shows a page."""
    body = ask(logged_in)
    data = {"user_code": body["user_code"], "decision": "approve", "events": str(orgs["acme"].event_ids[0]),
            "confirm": "yes"}
    if csrf:
        data["csrf_token"] = csrf_token_from(logged_in.get("/admin/devices/activate").text)
    shown = logged_in.open("/admin/devices/activate", method=method, data=data)
    assert shown.status_code == 200
    assert status_of(app) == ["pending"]
    decide(logged_in, enter(logged_in, body["user_code"]), "approve", events=orgs["acme"].event_ids[:1])
    poll(logged_in, body["device_code"])
    with app.app_context():
        token_id = db.session.scalar(sa.select(ApiToken.id))
    assert logged_in.open(f"/admin/settings/devices/{token_id}/unpair", method=method, data=data).status_code == 200
    with app.app_context():
        assert db.session.get(ApiToken, token_id).revoked_at is None


REDIS_URL = os.environ.get("USETIX_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="USETIX_TEST_REDIS_URL is not set (CI sets it)")


@pytest.mark.parametrize("storage", [
    "worker-memory://",  # then the throttle counts in the database, as the login throttle
    pytest.param("redis", marks=needs_redis),
])
def test_the_code_throttle_is_shared_by_every_worker(tmp_path, storage, orgs, app):
    """Two apps on one database (two workers, or two hosts): the address's share is one."""
    settings = {**make_test_config(tmp_path), "DEVICE_CODE_RATE_LIMIT": "100 per 10 minutes",
                "DEVICE_CODE_ADDRESS_RATE_LIMIT": "4 per 10 minutes",
                "RATELIMIT_STORAGE_URL": REDIS_URL if storage == "redis" else storage}
    address = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250)}"  # this run's own key
    workers = [create_app(settings), create_app(settings)]
    clients = []
    for worker in workers:
        client = worker.test_client()
        client.environ_base["REMOTE_ADDR"] = address
        AuthActions(client).login()
        clients.append(client)
    try:
        body = ask(clients[0])
        for client in (clients[0], clients[1], clients[0], clients[1]):
            assert enter(client, "BCDF-GHJK").status_code == 400
        for client in clients:
            assert enter(client, body["user_code"]).status_code == 429
    finally:
        if storage == "redis":
            server = redis.Redis.from_url(REDIS_URL)
            for key in server.scan_iter(f"*{address}*"):
                server.delete(key)
            server.close()
        for worker in workers:
            with worker.app_context():
                db.engine.dispose()
