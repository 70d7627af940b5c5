"""Settings → Webhooks in the dashboard: add an endpoint (the secret revealed once), rotate
its secret (likewise), test, disable, delete, the delivery log with replay and recover;
CSRF on every form, and another account's endpoint is a 404."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from usetix.database.engine import db
from usetix.database.models import AuditEvent, WebhookEndpoint, WebhookMessage
from usetix.webhooks import delivery

from ..helpers import bearer, csrf_token_from, issue
from ..webhook_receiver import Receiver

pytestmark = pytest.mark.app_config(WEBHOOKS_ALLOW_PRIVATE_TARGETS=True, WEBHOOKS_SWEEP_GRACE_SECONDS=0)
PAGE = "/admin/settings/webhooks"
SECRET = re.compile(r'id="token-value">(whsec_[^<]+)<')


@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    made.close()


def csrf(client, path=PAGE):
    return csrf_token_from(client.get(path).get_data(as_text=True))


def add(client, url, events=("attendee.checked_in",)):
    return client.post(PAGE, data={"url": url, "description": "Door board", "events": list(events),
                                   "csrf_token": csrf(client)})


def deliver_all(app):
    with app.app_context():
        for row_id in delivery.due_messages():
            delivery.deliver(row_id)


def endpoint_id(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(WebhookEndpoint.id))


def test_adding_an_endpoint_reveals_its_secret_once(app, logged_in, receiver, orgs):
    answer = add(logged_in, receiver.url)
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    secret = SECRET.search(answer.get_data(as_text=True)).group(1)
    listed = logged_in.get(PAGE).get_data(as_text=True)
    assert receiver.url in listed and secret not in listed
    # The secret works: a check-in through the API arrives signed with it.
    token = issue(app, orgs["acme"], "write")
    acme = orgs["acme"]
    logged_in.post(f"/admin/events/{acme.event_ids[0]}/attendees/{acme.attendee_ids[0]}/check_in",
                   headers=bearer(token))
    deliver_all(app)
    [got] = receiver.received
    assert Webhook(secret).verify(got.body, got.headers)["type"] == "attendee.checked_in"


def test_a_refused_url_shows_the_form_again_with_the_reason(logged_in):
    answer = add(logged_in, "https://192.168.1.20/hook")
    assert answer.status_code == 400 and "private or reserved" in answer.get_data(as_text=True)
    answer = add(logged_in, "https://hooks.example.com/x", events=())
    assert answer.status_code == 400 and "Choose at least one event type" in answer.get_data(as_text=True)


def test_every_form_needs_the_csrf_token(app, logged_in, receiver):
    add(logged_in, receiver.url)
    eid = endpoint_id(app)
    for path in (PAGE, f"{PAGE}/{eid}/rotate_secret", f"{PAGE}/{eid}/test", f"{PAGE}/{eid}/enabled",
                 f"{PAGE}/{eid}/delete", f"{PAGE}/{eid}/recover", f"{PAGE}/{eid}/deliveries/msg_x/replay"):
        answer = logged_in.post(path, data={"url": receiver.url, "events": ["event.created"], "confirm": "yes",
                                            "since": "2026-01-01"})
        assert answer.status_code == 400, path
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookEndpoint)) == 1


def test_rotate_test_disable_and_delete(app, logged_in, receiver, orgs):
    first = SECRET.search(add(logged_in, receiver.url).get_data(as_text=True)).group(1)
    eid = endpoint_id(app)
    rotated = logged_in.post(f"{PAGE}/{eid}/rotate_secret", data={"csrf_token": csrf(logged_in)})
    second = SECRET.search(rotated.get_data(as_text=True)).group(1)
    assert second != first and rotated.headers["Cache-Control"] == "no-store"
    tested = logged_in.post(f"{PAGE}/{eid}/test", data={"csrf_token": csrf(logged_in)})
    assert tested.status_code == 302
    deliver_all(app)
    [got] = receiver.received
    assert Webhook(second).verify(got.body, got.headers)["type"] == "webhook.test"
    assert Webhook(first).verify(got.body, got.headers)  # both sign for 24 hours
    log = logged_in.get(f"{PAGE}/{eid}/deliveries").get_data(as_text=True)
    assert got.headers["webhook-id"] in log and "200 OK" in log
    replayed = logged_in.post(f"{PAGE}/{eid}/deliveries/{got.headers['webhook-id']}/replay",
                              data={"csrf_token": csrf(logged_in)})
    assert replayed.status_code == 302
    deliver_all(app)
    assert receiver.count() == 2 and receiver.received[1].headers["webhook-id"] == got.headers["webhook-id"]
    logged_in.post(f"{PAGE}/{eid}/enabled", data={"csrf_token": csrf(logged_in), "enabled": "no"})
    with app.app_context():
        assert db.session.get(WebhookEndpoint, eid).enabled is False
    confirm = logged_in.get(f"{PAGE}/{eid}/delete")
    assert confirm.status_code == 200 and "Delete this endpoint?" in confirm.get_data(as_text=True)
    logged_in.post(f"{PAGE}/{eid}/delete", data={"csrf_token": csrf(logged_in), "confirm": "yes"})
    with app.app_context():
        assert db.session.get(WebhookEndpoint, eid) is None
        assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookMessage)) == 0
        # Each change is in the audit log, by the admin who made it (no token acted).
        records = db.session.execute(sa.select(AuditEvent.action, AuditEvent.admin_id, AuditEvent.token_id)
                                     .where(AuditEvent.object_type == "webhook", AuditEvent.object_id == eid)
                                     .order_by(AuditEvent.id)).all()
        changes = ("webhook.created", "webhook.secret_rotated", "webhook.updated", "webhook.deleted")
        assert records == [(action, orgs["acme"].admin_id, None) for action in changes]


def test_another_accounts_endpoint_is_a_404(app, client, auth, orgs):
    theirs = client.post("/admin/webhooks", json={"url": "https://hooks.example.com/g", "events": ["event.created"]},
                         headers=bearer(issue(app, orgs["globex"], "write"))).json["data"]["id"]
    auth.login()
    token = csrf(client)
    for method, path in [("GET", f"{PAGE}/{theirs}/deliveries"), ("GET", f"{PAGE}/{theirs}/delete"),
                         ("POST", f"{PAGE}/{theirs}/rotate_secret"), ("POST", f"{PAGE}/{theirs}/test"),
                         ("POST", f"{PAGE}/{theirs}/delete"), ("POST", f"{PAGE}/{theirs}/enabled")]:
        answer = client.open(path, method=method, data={"csrf_token": token, "confirm": "yes"})
        assert answer.status_code == 404, path
    assert "hooks.example.com/g" not in client.get(PAGE).get_data(as_text=True)


def test_a_get_or_head_of_the_delete_page_never_deletes(app, logged_in, receiver):
    add(logged_in, receiver.url)
    eid = endpoint_id(app)
    assert logged_in.head(f"{PAGE}/{eid}/delete?confirm=yes").status_code == 200
    assert logged_in.get(f"{PAGE}/{eid}/delete?confirm=yes").status_code == 200
    with app.app_context():
        assert db.session.get(WebhookEndpoint, eid) is not None
