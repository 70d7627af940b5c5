"""Webhooks (issue 25) through the app: endpoints over the API, the outbox written with each
write, and deliveries to a local receiver, verified with the official ``standardwebhooks``
library. The worker's steps run in this process (usetix/webhooks/delivery.py), one at a
time, so each test decides when an attempt happens; tests/live/test_webhook_workers.py runs
real ``usetix worker`` processes."""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from freezegun import freeze_time
from standardwebhooks.webhooks import WebhookVerificationError

from usetix.blueprints.api import events as events_api
from usetix.blueprints.api.refused import Refused
from usetix.database.engine import db
from usetix.database.models import WebhookAttempt, WebhookEndpoint, WebhookMessage, utcnow
from usetix.webhooks import delivery
from usetix.webhooks.endpoints import delete_endpoint
from usetix.webhooks.sender import Connections, headers_for, send
from usetix.webhooks.worker import sweep_once

from ..helpers import NEW_EVENT, bearer, issue
from ..webhook_receiver import Receiver

SCHEDULE = [0.2, 0.4, 0.8, 1.6]
pytestmark = pytest.mark.app_config(WEBHOOKS_ALLOW_PRIVATE_TARGETS=True, WEBHOOKS_RETRY_SCHEDULE=SCHEDULE,
                                    WEBHOOKS_SWEEP_GRACE_SECONDS=0)
MERGE = {"Content-Type": "application/merge-patch+json"}
ALL_TYPES = ["event.created", "event.updated", "event.deleted", "attendee.created", "attendee.updated",
             "attendee.deleted", "attendee.checked_in", "attendee.check_in_undone"]


@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    made.close()


@pytest.fixture
def other_receiver():
    made = Receiver()
    yield made
    made.close()


def add_endpoint(client, token, url, events=("attendee.checked_in",)):
    response = client.post("/admin/webhooks", json={"url": url, "events": list(events)}, headers=bearer(token))
    assert response.status_code == 201, response.json
    return response.json["data"]


def messages(app, **criteria):
    with app.app_context():
        query = sa.select(WebhookMessage).order_by(WebhookMessage.id)
        for name, value in criteria.items():
            query = query.where(getattr(WebhookMessage, name) == value)
        rows = db.session.scalars(query).all()
        db.session.expunge_all()
        return rows


def run_due(app, *, fast_forward: bool = False) -> int:
    """What a worker does with the messages due now (``fast_forward``: the pending ones, as
    if their retry time had come); how many it took."""
    with app.app_context():
        if fast_forward:
            with db.engine.begin() as connection:
                connection.execute(sa.update(WebhookMessage.__table__)
                                   .where(WebhookMessage.status == "pending").values(next_attempt_at=utcnow()))
        due = delivery.due_messages()
        for row_id in due:
            delivery.deliver(row_id)
    return len(due)


def check_in_path(org, n=0):
    return f"/admin/events/{org.event_ids[0]}/attendees/{org.attendee_ids[n]}/check_in"


def test_a_check_in_sends_one_signed_attendee_checked_in(app, client, orgs, write_token, receiver):
    acme = orgs["acme"]
    endpoint = add_endpoint(client, write_token, receiver.url)
    assert endpoint["secret"].startswith("whsec_") and len(endpoint["secret"]) >= len("whsec_") + 32
    assert client.post(check_in_path(acme), headers=bearer(write_token)).status_code == 201
    assert run_due(app) == 1
    [got] = receiver.received
    payload = got.verified(endpoint["secret"])
    assert payload["type"] == "attendee.checked_in"
    assert payload["data"]["id"] == acme.attendee_ids[0] and payload["data"]["checked_in"] is True
    assert payload["data"]["checked_in_at"].endswith("Z") and payload["timestamp"].endswith("Z")
    assert got.headers["content-type"] == "application/json"
    assert got.message_id.startswith("msg_") and got.headers["webhook-signature"].startswith("v1,")
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60
    # The data is the attendee as the API answers it.
    answered = client.get(f"/admin/events/{acme.event_ids[0]}/attendees/{acme.attendee_ids[0]}",
                          headers=bearer(write_token)).json["data"]
    assert payload["data"] == answered
    assert run_due(app) == 0 and receiver.count() == 1  # delivered once, done
    [message] = messages(app)
    assert message.status == "delivered" and message.attempts == 1


def test_a_door_batchs_admissions_send_one_attendee_checked_in_each(app, client, orgs, write_token, receiver):
    """A batch writes its admissions' messages in one statement: one message per admitted
    ticket, each its own webhook-id, each the attendee as the API answers it."""
    acme = orgs["acme"]
    endpoint = add_endpoint(client, write_token, receiver.url)
    add_endpoint(client, write_token, receiver.url, events=("event.created",))  # not subscribed: gets none
    event = acme.event_ids[0]
    codes = [client.get(f"/admin/events/{event}/attendees/{attendee}", headers=bearer(write_token))
             .json["data"]["ticket_code"] for attendee in acme.attendee_ids[:2]]
    scanned = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    answer = client.post(f"/admin/events/{event}/check_ins/batch", headers=bearer(write_token), json={"scans": [
        {"nonce": f"wh-{n}", "code": code, "scanned_at": scanned} for n, code in enumerate([*codes, "NOPE"])]})
    assert [r["result"] for r in answer.json["data"]] == ["admitted", "admitted", "unknown_code"]
    written = messages(app)
    assert [(m.endpoint_id, m.event_type) for m in written] == [(endpoint["id"], "attendee.checked_in")] * 2
    assert len({m.message_id for m in written}) == 2
    assert run_due(app) == 2
    payloads = sorted((got.verified(endpoint["secret"]) for got in receiver.received),
                      key=lambda payload: payload["data"]["id"])
    for attendee, payload in zip(acme.attendee_ids[:2], payloads, strict=True):
        answered = client.get(f"/admin/events/{event}/attendees/{attendee}", headers=bearer(write_token)).json["data"]
        assert payload["type"] == "attendee.checked_in" and payload["data"] == answered
        assert payload["data"]["checked_in_at"] == scanned


def test_a_tampered_body_or_an_old_timestamp_is_rejected_by_the_library(app, client, orgs, write_token, receiver):
    endpoint = add_endpoint(client, write_token, receiver.url)
    client.post(check_in_path(orgs["acme"]), headers=bearer(write_token))
    run_due(app)
    [got] = receiver.received
    got.verified(endpoint["secret"])
    tampered = got.body.replace(b'"Guest 0"', b'"Guest 9"')
    assert tampered != got.body
    with pytest.raises(WebhookVerificationError):
        type(got)(got.headers, tampered, got.at).verified(endpoint["secret"])
    # The same message signed (correctly) six minutes ago: too old for the library.
    old = headers_for(got.message_id, got.body.decode(), [endpoint["secret"]], now=time.time() - 360)
    with pytest.raises(WebhookVerificationError, match="too old"):
        type(got)(old, got.body, got.at).verified(endpoint["secret"])
    with pytest.raises(WebhookVerificationError):  # another endpoint's secret
        got.verified(add_endpoint(client, write_token, receiver.url)["secret"])


def test_failures_are_retried_on_the_schedule_with_one_webhook_id(app, client, orgs, write_token, receiver):
    receiver.script[:] = [500, 500, 500, 200]
    endpoint = add_endpoint(client, write_token, receiver.url)
    client.post(check_in_path(orgs["acme"]), headers=bearer(write_token))
    delays = []
    for _ in range(4):
        assert run_due(app, fast_forward=bool(delays) or receiver.count() > 0) == 1
        [message] = messages(app)
        if message.status == "pending":
            with app.app_context():
                last = db.session.scalar(sa.select(sa.func.max(WebhookAttempt.attempted_at)))
            delays.append((message.next_attempt_at - last).total_seconds())
    assert receiver.count() == 4
    assert len({got.message_id for got in receiver.received}) == 1
    for got in receiver.received:
        got.verified(endpoint["secret"])
    # The schedule's delays, with their jitter (+/- 10 %): rising.
    assert len(delays) == 3
    for delay, planned in zip(delays, SCHEDULE, strict=False):
        assert planned * 0.85 <= delay <= planned * 1.15 + 0.05
    assert delays == sorted(delays)
    [message] = messages(app)
    assert message.status == "delivered" and message.attempts == 4
    failed = client.get(f"/admin/webhooks/{endpoint['id']}/deliveries?status=failed", headers=bearer(write_token))
    assert [row["status_code"] for row in failed.json["data"]] == [500, 500, 500]
    every = client.get(f"/admin/webhooks/{endpoint['id']}/deliveries", headers=bearer(write_token)).json
    assert [row["succeeded"] for row in every["data"]] == [False, False, False, True]
    assert every["data"][0]["response_body"] == "status 500" and every["data"][0]["error"] == "HTTP 500"
    with app.app_context():
        assert db.session.get(WebhookEndpoint, endpoint["id"]).failing_since is None  # the success ended it


def test_the_schedule_spent_fails_the_message_and_recover_queues_it_again(app, client, orgs, write_token, receiver):
    receiver.script[:] = [500] * (len(SCHEDULE) + 1)
    endpoint = add_endpoint(client, write_token, receiver.url)
    client.post(check_in_path(orgs["acme"]), headers=bearer(write_token))
    run_due(app)
    for _ in SCHEDULE:
        run_due(app, fast_forward=True)
    [message] = messages(app)
    assert message.status == "failed" and receiver.count() == len(SCHEDULE) + 1
    answer = client.post(f"/admin/webhooks/{endpoint['id']}/recover", json={"since": "2020-01-01T00:00:00Z"},
                         headers=bearer(write_token))
    assert answer.status_code == 202 and answer.json["data"] == {"requeued": 1}
    run_due(app)
    assert receiver.count() == len(SCHEDULE) + 2 and receiver.received[-1].message_id == message.message_id
    assert messages(app)[0].status == "delivered"


def test_410_disables_the_endpoint(app, client, orgs, write_token, receiver):
    receiver.script[:] = [410]
    endpoint = add_endpoint(client, write_token, receiver.url)
    client.post(check_in_path(orgs["acme"]), headers=bearer(write_token))
    run_due(app)
    shown = client.get(f"/admin/webhooks/{endpoint['id']}", headers=bearer(write_token)).json["data"]
    assert shown["enabled"] is False and shown["disabled_reason"] == "gone"
    assert messages(app)[0].status == "failed"
    # Nothing more is written for it, so nothing is sent.
    client.post(check_in_path(orgs["acme"], 1), headers=bearer(write_token))
    assert run_due(app, fast_forward=True) == 0 and receiver.count() == 1


def test_three_days_of_failures_disable_with_notices_before_and_after(app, client, orgs, write_token, receiver,
                                                                      logged_in):
    receiver.script[:] = [500, 500]
    endpoint = add_endpoint(client, write_token, receiver.url)
    with app.app_context(), db.engine.begin() as connection:  # failing for two and a half days
        connection.execute(sa.update(WebhookEndpoint.__table__).values(
            failing_since=utcnow() - timedelta(hours=60)))
    page = logged_in.get("/admin/settings/webhooks").get_data(as_text=True)
    assert "will be disabled" in page and receiver.url in page
    client.post(check_in_path(orgs["acme"]), headers=bearer(write_token))
    run_due(app)
    assert client.get(f"/admin/webhooks/{endpoint['id']}", headers=bearer(write_token)).json["data"]["enabled"]
    with app.app_context(), db.engine.begin() as connection:  # three days
        connection.execute(sa.update(WebhookEndpoint.__table__).values(
            failing_since=utcnow() - timedelta(hours=73)))
    run_due(app, fast_forward=True)
    shown = client.get(f"/admin/webhooks/{endpoint['id']}", headers=bearer(write_token)).json["data"]
    assert shown["enabled"] is False and shown["disabled_reason"] == "failing"
    page = logged_in.get("/admin/events").get_data(as_text=True)  # the notice shows on the dashboard's pages
    assert "was disabled" in page and receiver.url in page


def test_replay_sends_the_same_webhook_id_with_a_fresh_signature(app, client, orgs, write_token, receiver):
    endpoint = add_endpoint(client, write_token, receiver.url)
    client.post(check_in_path(orgs["acme"]), headers=bearer(write_token))
    run_due(app)
    [first] = receiver.received
    # A minute on: a webhook-timestamp is in whole seconds, so a fresh one differs only from the next second.
    with freeze_time(datetime.now(UTC) + timedelta(minutes=1), tick=True):
        replayed = client.post(f"/admin/webhooks/{endpoint['id']}/deliveries/{first.message_id}/replay",
                               headers=bearer(write_token))
        assert replayed.status_code == 202 and replayed.json["data"]["message_id"] == first.message_id
        run_due(app)
    second = receiver.received[1]
    assert second.message_id == first.message_id and second.body == first.body
    assert second.headers["webhook-timestamp"] != first.headers["webhook-timestamp"]
    assert second.headers["webhook-signature"] != first.headers["webhook-signature"]
    second.verified(endpoint["secret"])
    unknown = client.post(f"/admin/webhooks/{endpoint['id']}/deliveries/msg_nosuchmessage/replay",
                          headers=bearer(write_token))
    assert unknown.status_code == 404 and unknown.json["error"] == "not_found"


def test_a_rotated_secret_signs_beside_the_previous_one(app, client, orgs, write_token, receiver):
    endpoint = add_endpoint(client, write_token, receiver.url)
    rotated = client.post(f"/admin/webhooks/{endpoint['id']}/rotate_secret", headers=bearer(write_token))
    assert rotated.status_code == 200
    new_secret = rotated.json["data"]["secret"]
    assert new_secret != endpoint["secret"] and new_secret.startswith("whsec_")
    client.post(check_in_path(orgs["acme"]), headers=bearer(write_token))
    run_due(app)
    [got] = receiver.received
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert got.verified(new_secret) == got.verified(endpoint["secret"])  # either secret verifies it
    # 24 hours later the previous one is gone from the signatures.
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(sa.update(WebhookEndpoint.__table__).values(
            previous_secret_expires_at=utcnow() - timedelta(seconds=1)))
    client.delete(check_in_path(orgs["acme"]), headers=bearer(write_token))
    add = client.patch(f"/admin/webhooks/{endpoint['id']}", json={"events": ["attendee.check_in_undone"]},
                       headers={**bearer(write_token), **MERGE})
    assert add.status_code == 200 and add.json["data"]["events"] == ["attendee.check_in_undone"]
    client.post(check_in_path(orgs["acme"]), headers=bearer(write_token))
    client.delete(check_in_path(orgs["acme"]), headers=bearer(write_token))
    run_due(app)
    latest = receiver.received[-1]
    assert latest.verified(new_secret)["type"] == "attendee.check_in_undone"
    assert len(latest.headers["webhook-signature"].split(" ")) == 1
    with pytest.raises(WebhookVerificationError):
        latest.verified(endpoint["secret"])


@pytest.mark.parametrize("url", [
    "http://hooks.example.com/x",  # not https
    "https://user:secret@hooks.example.com/x",  # credentials
    "https://10.1.2.3/x", "https://192.168.0.10/x", "https://169.254.169.254/latest/meta-data",
    "https://224.0.0.1/x", "https://[fe80::1]/x", "https://0.0.0.0/x", "ftp://hooks.example.com/x", "not a url",
])
def test_a_private_or_unsafe_url_is_refused_naming_the_field(client, write_token, url):
    answer = client.post("/admin/webhooks", json={"url": url, "events": ["event.created"]}, headers=bearer(write_token))
    assert answer.status_code == 422
    assert [error["field"] for error in answer.json["errors"]] == ["url"]


@pytest.mark.app_config(WEBHOOKS_ALLOW_PRIVATE_TARGETS=False)
@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/x", "https://127.0.0.1/x", "https://[::1]/x",
                                 "https://localhost/x", "https://[::ffff:127.0.0.1]/x"])
def test_loopback_is_refused_without_the_setting(client, write_token, url):
    answer = client.post("/admin/webhooks", json={"url": url, "events": ["event.created"]}, headers=bearer(write_token))
    assert answer.status_code == 422 and answer.json["errors"][0]["field"] == "url"


def test_an_unknown_event_type_is_422_naming_the_field(client, write_token):
    answer = client.post("/admin/webhooks", json={"url": "https://hooks.example.com/x", "events": ["event.exploded"]},
                         headers=bearer(write_token))
    assert answer.status_code == 422 and answer.json["errors"][0]["field"] == "events.0"


def test_a_name_that_resolves_to_a_private_address_is_refused_at_delivery(app, client, orgs, write_token, receiver,
                                                                           monkeypatch):
    """Saved while the name was public; at delivery it resolves to a private address (DNS
    rebinding): nothing is sent, the attempt is logged as refused."""
    endpoint = add_endpoint(client, write_token, "https://hooks.example.com/usetix")
    real = socket.getaddrinfo

    def rebound(host, *args, **kwargs):
        if host == "hooks.example.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 443))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebound)
    client.post(check_in_path(orgs["acme"]), headers=bearer(write_token))
    run_due(app)
    [attempt] = client.get(f"/admin/webhooks/{endpoint['id']}/deliveries", headers=bearer(write_token)).json["data"]
    assert attempt["succeeded"] is False and attempt["status_code"] is None
    assert "10.0.0.7" in attempt["error"] and "private" in attempt["error"]
    assert receiver.count() == 0


def test_a_rolled_back_write_sends_nothing(app, client, orgs, write_token, receiver, monkeypatch):
    add_endpoint(client, write_token, receiver.url, ALL_TYPES)
    real = events_api.emit_webhook_event

    def emit_then_fail(*args, **kwargs):
        real(*args, **kwargs)
        raise Refused(events_api.lost_race())  # the write is refused after its messages were written

    monkeypatch.setattr(events_api, "emit_webhook_event", emit_then_fail)
    answer = client.post("/admin/events", json=NEW_EVENT, headers=bearer(write_token))
    assert answer.status_code == 409
    assert messages(app) == []
    assert run_due(app) == 0 and sweep_once(app) == 0 and receiver.count() == 0
    monkeypatch.setattr(events_api, "emit_webhook_event", real)
    assert client.post("/admin/events", json=NEW_EVENT, headers=bearer(write_token)).status_code == 201
    assert run_due(app) == 1 and receiver.received[0].verified is not None


def test_every_write_emits_its_type_with_the_object(app, client, orgs, write_token, receiver):
    endpoint = add_endpoint(client, write_token, receiver.url, ALL_TYPES)
    acme = orgs["acme"]
    event = client.post("/admin/events", json=NEW_EVENT, headers=bearer(write_token)).json["data"]
    client.patch(f"/admin/events/{event['id']}", json={"venue": "Annex"}, headers={**bearer(write_token), **MERGE})
    attendees = f"/admin/events/{acme.event_ids[0]}/attendees"
    person = client.post(attendees, json={"name": "Ada", "email": "ada@example.com", "ticket_type": "VIP"},
                         headers=bearer(write_token)).json["data"]
    client.patch(f"{attendees}/{person['id']}", json={"ticket_type": "General"},
                 headers={**bearer(write_token), **MERGE})
    client.post(f"{attendees}/{person['id']}/check_in", headers=bearer(write_token))
    client.delete(f"{attendees}/{person['id']}/check_in", headers=bearer(write_token))
    client.delete(f"{attendees}/{person['id']}", headers=bearer(write_token))
    client.delete(f"/admin/events/{event['id']}", headers=bearer(write_token))
    assert run_due(app) == 8
    payloads = sorted((got.verified(endpoint["secret"]) for got in receiver.received),
                      key=lambda payload: ALL_TYPES.index(payload["type"]))
    assert [payload["type"] for payload in payloads] == ALL_TYPES
    by_type = {payload["type"]: payload["data"] for payload in payloads}
    assert by_type["event.created"]["id"] == event["id"] and by_type["event.updated"]["venue"] == "Annex"
    assert by_type["event.deleted"] == {"id": event["id"], "deleted": True}
    assert by_type["attendee.updated"]["ticket_type"] == "General"
    assert by_type["attendee.checked_in"]["checked_in"] is True
    assert by_type["attendee.check_in_undone"]["checked_in"] is False
    assert by_type["attendee.deleted"] == {"id": person["id"], "deleted": True}
    assert len({got.message_id for got in receiver.received}) == 8


def test_only_subscribed_enabled_endpoints_of_the_account_get_messages(app, client, orgs, write_token, receiver):
    mine = add_endpoint(client, write_token, receiver.url, ["event.created"])
    globex_token = issue(app, orgs["globex"], "write")
    add_endpoint(client, globex_token, receiver.url, ["event.created", "attendee.checked_in"])
    client.post(check_in_path(orgs["acme"]), headers=bearer(write_token))  # acme's endpoint is not subscribed
    assert messages(app) == []
    client.patch(f"/admin/webhooks/{mine['id']}", json={"enabled": False}, headers={**bearer(write_token), **MERGE})
    client.post("/admin/events", json=NEW_EVENT, headers=bearer(write_token))
    assert messages(app) == []
    client.patch(f"/admin/webhooks/{mine['id']}", json={"enabled": True}, headers={**bearer(write_token), **MERGE})
    client.post("/admin/events", json=NEW_EVENT, headers=bearer(write_token))
    [message] = messages(app)
    assert message.endpoint_id == mine["id"]


def test_another_accounts_endpoint_is_a_404_everywhere(app, client, orgs, write_token):
    theirs = add_endpoint(client, issue(app, orgs["globex"], "write"), "https://hooks.example.com/globex")
    base = f"/admin/webhooks/{theirs['id']}"
    missing = client.get("/admin/webhooks/999999", headers=bearer(write_token))
    for method, path, body in [("GET", base, None), ("PATCH", base, {"enabled": False}), ("DELETE", base, None),
                               ("POST", f"{base}/rotate_secret", None), ("POST", f"{base}/test", None),
                               ("GET", f"{base}/deliveries", None), ("POST", f"{base}/deliveries/msg_x/replay", None),
                               ("POST", f"{base}/recover", {"since": "2026-01-01T00:00:00Z"})]:
        headers = {**bearer(write_token), **(MERGE if method == "PATCH" else {})}
        answer = client.open(path, method=method, json=body, headers=headers)
        assert (answer.status_code, answer.get_data()) == (404, missing.get_data()), (method, path)
    assert client.get("/admin/webhooks", headers=bearer(write_token)).json["data"] == []


def test_the_list_and_reads_never_show_the_secret(client, write_token):
    endpoint = add_endpoint(client, write_token, "https://hooks.example.com/x")
    for answer in (client.get("/admin/webhooks", headers=bearer(write_token)),
                   client.get(f"/admin/webhooks/{endpoint['id']}", headers=bearer(write_token))):
        assert endpoint["secret"] not in answer.get_data(as_text=True) and "secret" not in answer.get_data(as_text=True)


def test_the_permission_decides(app, client, orgs, read_token, write_token):
    answer = client.get("/admin/webhooks", headers=bearer(read_token))  # the Read preset has none
    assert answer.status_code == 403 and answer.json["required"] == "webhooks:read"
    reader = issue(app, orgs["acme"], "custom", permissions=("read", "none", "none", "read"))
    assert client.get("/admin/webhooks", headers=bearer(reader)).status_code == 200
    answer = client.post("/admin/webhooks", json={"url": "https://hooks.example.com/x", "events": ["event.created"]},
                         headers=bearer(reader))
    assert answer.status_code == 401  # a read token's write: the tier's rule


def test_the_delivery_log_pages_keep_the_status_filter(app, client, orgs, write_token, receiver):
    receiver.script[:] = [500] * 3
    endpoint = add_endpoint(client, write_token, receiver.url, ["attendee.checked_in"])
    for n in range(3):
        client.post(check_in_path(orgs["acme"], n), headers=bearer(write_token))
    run_due(app)
    for n in range(3):
        client.delete(check_in_path(orgs["acme"], n), headers=bearer(write_token))
    client.patch(f"/admin/webhooks/{endpoint['id']}", json={"events": ["attendee.check_in_undone"]},
                 headers={**bearer(write_token), **MERGE})
    run_due(app, fast_forward=True)  # three successes now
    path = f"/admin/webhooks/{endpoint['id']}/deliveries?status=failed&per_page=2"
    first = client.get(path, headers=bearer(write_token))
    assert first.status_code == 200 and first.json["meta"]["total"] == 3 and len(first.json["data"]) == 2
    following = first.headers["Link"].split(";")[0].strip("<>")
    assert "status=failed" in following
    second = client.get(following, headers=bearer(write_token)).json
    assert [row["succeeded"] for row in first.json["data"] + second["data"]] == [False] * 3
    assert client.get(f"/admin/webhooks/{endpoint['id']}/deliveries?status=ok",
                      headers=bearer(write_token)).json["parameter"] == "status"


def test_the_test_event_goes_to_the_endpoint(app, client, write_token, receiver):
    endpoint = add_endpoint(client, write_token, receiver.url, ["event.created"])
    answer = client.post(f"/admin/webhooks/{endpoint['id']}/test", headers=bearer(write_token))
    assert answer.status_code == 202
    run_due(app)
    [got] = receiver.received
    assert got.message_id == answer.json["data"]["message_id"]
    assert got.verified(endpoint["secret"])["type"] == "webhook.test"


def test_deleting_an_endpoint_stops_its_messages(app, client, orgs, write_token, receiver):
    endpoint = add_endpoint(client, write_token, receiver.url)
    client.post(check_in_path(orgs["acme"]), headers=bearer(write_token))
    assert client.delete(f"/admin/webhooks/{endpoint['id']}", headers=bearer(write_token)).status_code == 204
    assert run_due(app) == 0 and receiver.count() == 0 and messages(app) == []


def test_a_write_adds_one_statement_whatever_the_number_of_endpoints(app, client, orgs, write_token, receiver):
    """The outbox is one INSERT … SELECT per write (on PostgreSQL a check-in's is inside its
    one statement): the statements a write sends are the same for no endpoint and for two."""
    acme = orgs["acme"]
    with app.app_context():
        engine = db.engine
    sent: list[str] = []

    def record(conn, cursor, statement, *args):
        sent.append(statement)

    def statements_of(write):
        sent.clear()
        sa.event.listen(engine, "before_cursor_execute", record)
        try:
            write()
        finally:
            sa.event.remove(engine, "before_cursor_execute", record)
        return [statement for statement in sent if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT"))]

    attendees = f"/admin/events/{acme.event_ids[0]}/attendees"

    def create():
        answer = client.post(attendees, json={"name": "Ada", "email": "ada@example.com", "ticket_type": "VIP"},
                             headers=bearer(write_token))
        assert answer.status_code == 201

    def check_in():
        assert client.post(check_in_path(acme, 1), headers=bearer(write_token)).status_code == 201
        assert client.delete(check_in_path(acme, 1), headers=bearer(write_token)).status_code == 204

    create(), check_in()  # warm: the token's last use written, the statements built
    before = [len(statements_of(create)), len(statements_of(check_in))]
    add_endpoint(client, write_token, receiver.url, ALL_TYPES)
    add_endpoint(client, write_token, receiver.url, ALL_TYPES)
    after_create = statements_of(create)
    after_check_in = statements_of(check_in)
    assert [len(after_create), len(after_check_in)] == before
    assert sum("INTO webhook_messages" in statement for statement in after_create) == 1
    if engine.dialect.name == "postgresql":  # in the check-in's one statement, with its audit record
        assert len([s for s in after_check_in if "webhook_messages" in s]) == 2  # the check-in and its undo
        assert all("UPDATE attendees" in s for s in after_check_in if "webhook_messages" in s)
    assert len(messages(app)) == 2 * 3  # three writes, two endpoints each


def test_the_delivery_log_keeps_thirty_days(app, client, orgs, write_token, receiver):
    endpoint = add_endpoint(client, write_token, receiver.url)
    client.post(check_in_path(orgs["acme"]), headers=bearer(write_token))
    client.delete(check_in_path(orgs["acme"]), headers=bearer(write_token))
    client.patch(f"/admin/webhooks/{endpoint['id']}", json={"events": ["attendee.check_in_undone"]},
                 headers={**bearer(write_token), **MERGE})
    client.post(check_in_path(orgs["acme"]), headers=bearer(write_token))
    client.delete(check_in_path(orgs["acme"]), headers=bearer(write_token))
    run_due(app)
    with app.app_context(), db.engine.begin() as connection:  # the first attempt and message, 31 days old
        first = connection.scalar(sa.select(sa.func.min(WebhookAttempt.id)))
        old = utcnow() - timedelta(days=31)
        connection.execute(sa.update(WebhookAttempt.__table__).where(WebhookAttempt.id == first)
                           .values(attempted_at=old))
        connection.execute(sa.update(WebhookMessage.__table__).where(WebhookMessage.id == 1).values(finished_at=old))
    with app.app_context():
        assert delivery.purge_old_attempts() == 1
    log = client.get(f"/admin/webhooks/{endpoint['id']}/deliveries", headers=bearer(write_token)).json
    assert len(log["data"]) == 1 and log["data"][0]["id"] != first
    assert len(messages(app)) == 1


def check_ins_and_undos(client, token, org) -> int:
    """A check-in and its undoing per attendee of the org: two messages each; how many."""
    for n, attendee_id in enumerate(org.attendee_ids):  # two attendees per event, in event order
        path = f"/admin/events/{org.event_ids[n // 2]}/attendees/{attendee_id}/check_in"
        assert client.post(path, headers=bearer(token)).status_code == 201
        assert client.delete(path, headers=bearer(token)).status_code == 204
    return 2 * len(org.attendee_ids)


def test_one_task_delivers_a_batch_with_four_statements_over_one_connection(app, client, orgs, write_token,
                                                                             receiver):
    """A worker's task claims every due message (up to WEBHOOKS_BATCH_SIZE) with one UPDATE,
    reads their endpoint with one SELECT, logs the attempts with one INSERT and marks them
    delivered with one UPDATE, whatever their number; those to one target share one kept-alive
    connection. The tasks of the messages it took find nothing left to send."""
    from usetix.webhooks.queue import queue_for

    endpoint = add_endpoint(client, write_token, receiver.url, ["attendee.checked_in", "attendee.check_in_undone"])
    expected = check_ins_and_undos(client, write_token, orgs["acme"])  # 12: fewer than a batch (32)
    task = queue_for(app).usetix_deliver
    with app.app_context():
        engine = db.engine
    sent: list[str] = []

    def record(conn, cursor, statement, *args):
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            sent.append(statement)

    first, *others = [message.id for message in messages(app)]
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        task.call_local(first)  # as a worker runs it: no app context of its own
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert receiver.count() == expected
    assert len(sent) == 4, sent
    assert len({got.peer for got in receiver.received}) == 1
    assert {got.message_id for got in receiver.received} == {message.message_id for message in messages(app)}
    for got in receiver.received:
        got.verified(endpoint["secret"])
    assert {(message.status, message.attempts) for message in messages(app)} == {("delivered", 1)}
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookAttempt)) == expected
    with app.app_context():
        for row_id in others:  # their tasks come later: nothing is sent twice
            task.call_local(row_id)
    assert receiver.count() == expected


def test_a_batch_takes_neither_a_retry_before_it_is_due_nor_another_workers_claim(app, client, orgs, write_token,
                                                                                  receiver):
    add_endpoint(client, write_token, receiver.url, ["attendee.checked_in", "attendee.check_in_undone"])
    expected = check_ins_and_undos(client, write_token, orgs["acme"])
    retry, held, *_ = messages(app)
    held_until = utcnow() + timedelta(seconds=30)
    with app.app_context(), db.engine.begin() as connection:
        table = WebhookMessage.__table__
        connection.execute(sa.update(table).where(table.c.id == retry.id)
                           .values(next_attempt_at=utcnow() + timedelta(hours=1), attempts=1))
        connection.execute(sa.update(table).where(table.c.id == held.id).values(lease_until=held_until))
    [held_before] = messages(app, id=held.id)
    with app.app_context():
        assert delivery.deliver_due(limit=4) == 4  # no more than asked, on PostgreSQL too
        assert delivery.deliver_due() == expected - 6
    assert receiver.count() == expected - 2
    assert {got.message_id for got in receiver.received}.isdisjoint({retry.message_id, held.message_id})
    after = {message.id: message for message in messages(app)}
    assert (after[retry.id].status, after[retry.id].attempts) == ("pending", 1)
    assert (after[held.id].status, after[held.id].lease_until) == ("pending", held_before.lease_until)


def test_a_batch_gives_back_what_its_claim_has_no_time_left_to_send(app, client, orgs, write_token, receiver,
                                                                      monkeypatch):
    """A later message of a batch is sent only with two delivery timeouts of the claim left
    (a send in flight never outlives its claim); the rest are given back, and queued again.
    A claim too short for that (the live tests' 3 s) takes one message."""
    from usetix.webhooks import queue

    add_endpoint(client, write_token, receiver.url, ["attendee.checked_in", "attendee.check_in_undone"])
    expected = check_ins_and_undos(client, write_token, orgs["acme"])
    queued: list[int] = []
    monkeypatch.setattr(queue, "enqueue_deliveries", lambda app, ids, delay=None: queued.extend(ids))

    class Clock:  # each reading 20 s later: a 60 s claim has room for two sends, not three
        now = 0.0

        def monotonic(self) -> float:
            self.now += 20
            return self.now

    monkeypatch.setattr(delivery, "time", Clock())
    app.config["WEBHOOKS_LEASE_SECONDS"] = 60
    with app.app_context():
        assert delivery.deliver_due() == expected
    assert receiver.count() == 2
    left = [message for message in messages(app) if message.status == "pending"]
    assert len(left) == expected - 2 and sorted(queued) == [message.id for message in left]
    assert all(message.lease_until is None and message.attempts == 0 for message in left)
    monkeypatch.undo()
    app.config["WEBHOOKS_LEASE_SECONDS"] = 3
    with app.app_context():
        assert delivery.deliver_due() == 1
    assert receiver.count() == 3


BOTH_WAYS = ["attendee.checked_in", "attendee.check_in_undone"]


def endpoint_of(app, endpoint_id):
    with app.app_context():
        endpoint = db.session.get(WebhookEndpoint, endpoint_id)
        db.session.expunge_all()
        return endpoint


def test_an_endpoint_deleted_mid_batch_loses_only_its_own_messages(app, client, orgs, write_token, receiver,
                                                                   other_receiver, monkeypatch):
    """Its messages went with it (their attempts would break a foreign key): the batch's
    log leaves them out, and keeps every other message's attempt and its delivery."""
    kept = add_endpoint(client, write_token, receiver.url, BOTH_WAYS)
    deleted = add_endpoint(client, write_token, other_receiver.url, BOTH_WAYS)
    expected = check_ins_and_undos(client, write_token, orgs["acme"])
    real_send = delivery.send

    def send_then_delete(*args, **kwargs):
        if receiver.count() + other_receiver.count() == 1:  # the account deletes it while the batch is sent
            with db.engine.begin() as connection:
                delete_endpoint(connection, orgs["acme"].account_id, deleted["id"])
        return real_send(*args, **kwargs)

    monkeypatch.setattr(delivery, "send", send_then_delete)
    with app.app_context():
        assert delivery.deliver_due() == 2 * expected
    of_kept = messages(app, endpoint_id=kept["id"])
    assert receiver.count() == len(of_kept) == expected and messages(app, endpoint_id=deleted["id"]) == []
    assert {(message.status, message.attempts, message.lease_until) for message in of_kept} == {("delivered", 1, None)}
    with app.app_context():
        assert db.session.scalars(sa.select(WebhookAttempt.endpoint_id)).all() == [kept["id"]] * expected
        assert delivery.deliver_due() == 0  # nothing left claimed, nothing sent again


def test_a_send_that_raises_is_one_failed_attempt_and_the_batch_goes_on(app, client, orgs, write_token, receiver,
                                                                        other_receiver, monkeypatch, caplog):
    """Anything a send raises is its message's failed attempt, retried on the schedule; the
    batch's other messages are sent and logged, and none stays claimed."""
    good = add_endpoint(client, write_token, receiver.url, BOTH_WAYS)
    broken = add_endpoint(client, write_token, other_receiver.url, BOTH_WAYS)
    expected = check_ins_and_undos(client, write_token, orgs["acme"])
    real_send = delivery.send

    def send_or_raise(url, *args, **kwargs):
        if url == other_receiver.url:
            raise UnicodeEncodeError("ascii", url, 0, 1, "ordinal not in range(128)")
        return real_send(url, *args, **kwargs)

    monkeypatch.setattr(delivery, "send", send_or_raise)
    caplog.set_level(logging.ERROR, logger="usetix.webhooks")
    with app.app_context():
        assert delivery.deliver_due() == 2 * expected
    assert receiver.count() == expected
    assert {message.status for message in messages(app, endpoint_id=good["id"])} == {"delivered"}
    of_broken = messages(app, endpoint_id=broken["id"])
    assert {(message.status, message.attempts, message.lease_until) for message in of_broken} == {("pending", 1, None)}
    log = client.get(f"/admin/webhooks/{broken['id']}/deliveries", headers=bearer(write_token)).json["data"]
    assert [row["error"] for row in log] == ["internal error: UnicodeEncodeError"] * expected
    assert len([r for r in caplog.records if r.name == "usetix.webhooks" and r.exc_info]) == expected
    assert broken["secret"] not in caplog.text


def test_a_non_ascii_url_is_saved_idna_and_percent_encoded(app, client, orgs, write_token, receiver):
    """An IRI as a browser would send it: the host IDNA-encoded, the path and query
    percent-encoded as UTF-8; one saved before is sent so too."""
    named = add_endpoint(client, write_token, "https://b\u00fccher.example/caf\u00e9?q=\u00fc", ["event.created"])
    assert named["url"] == "https://xn--bcher-kva.example/caf%C3%A9?q=%C3%BC"
    endpoint = add_endpoint(client, write_token, receiver.url + "/caf\u00e9")
    assert endpoint["url"] == receiver.url + "/caf%C3%A9"
    answer = client.post("/admin/webhooks", json={"url": "https://a..\u00e9/x", "events": ["event.created"]},
                         headers=bearer(write_token))
    assert answer.status_code == 422 and [error["field"] for error in answer.json["errors"]] == ["url"]
    with app.app_context(), db.engine.begin() as connection:  # saved as typed, before
        connection.execute(sa.update(WebhookEndpoint.__table__).where(WebhookEndpoint.id == endpoint["id"])
                           .values(url=receiver.url + "/caf\u00e9"))
    client.post(check_in_path(orgs["acme"]), headers=bearer(write_token))
    run_due(app)
    [got] = receiver.received
    assert got.verified(endpoint["secret"])["type"] == "attendee.checked_in"
    assert messages(app, endpoint_id=endpoint["id"])[0].status == "delivered"


def test_a_410_stops_the_rest_of_the_batch_to_its_endpoint(app, client, orgs, write_token, receiver, other_receiver):
    """As when each message was claimed on its own and found its endpoint disabled: the
    later ones are not sent, and fail; the batch's other endpoints are not affected."""
    gone = add_endpoint(client, write_token, receiver.url, BOTH_WAYS)
    other = add_endpoint(client, write_token, other_receiver.url, BOTH_WAYS)
    receiver.script[:] = [410]
    expected = check_ins_and_undos(client, write_token, orgs["acme"])
    with app.app_context():
        assert delivery.deliver_due() == 2 * expected
    assert receiver.count() == 1 and other_receiver.count() == expected
    assert endpoint_of(app, gone["id"]).disabled_reason == "gone"
    log = client.get(f"/admin/webhooks/{gone['id']}/deliveries", headers=bearer(write_token)).json["data"]
    assert sorted(row["error"] for row in log) == ["HTTP 410"] + ["endpoint disabled: not sent"] * (expected - 1)
    assert {message.status for message in messages(app, endpoint_id=gone["id"])} == {"failed"}
    assert {message.status for message in messages(app, endpoint_id=other["id"])} == {"delivered"}


def test_three_days_of_failures_stop_the_rest_of_the_batch_to_its_endpoint(app, client, orgs, write_token,
                                                                          receiver):
    receiver.script[:] = [500]
    endpoint = add_endpoint(client, write_token, receiver.url, BOTH_WAYS)
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(sa.update(WebhookEndpoint.__table__).values(failing_since=utcnow() - timedelta(hours=73)))
    check_ins_and_undos(client, write_token, orgs["acme"])
    with app.app_context():
        delivery.deliver_due()
    assert receiver.count() == 1 and endpoint_of(app, endpoint["id"]).disabled_reason == "failing"
    assert {message.status for message in messages(app)} == {"failed"}


def test_an_endpoint_is_left_failing_or_not_by_its_last_attempt_of_the_batch(app, client, orgs, write_token,
                                                                             receiver):
    endpoint = add_endpoint(client, write_token, receiver.url, BOTH_WAYS)
    receiver.script[:] = [500]  # then successes
    expected = check_ins_and_undos(client, write_token, orgs["acme"])
    with app.app_context():
        delivery.deliver_due()
    assert receiver.count() == expected and endpoint_of(app, endpoint["id"]).failing_since is None
    # Failing for two and a half days; a success, then a failure: failing from that failure.
    failing_before = utcnow() - timedelta(hours=60)
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(sa.update(WebhookEndpoint.__table__).values(failing_since=failing_before))
        # The first batch's 500 is retried 5 s on: a slow run must not find it due here.
        connection.execute(sa.update(WebhookMessage.__table__).where(WebhookMessage.status == "pending")
                           .values(next_attempt_at=utcnow() + timedelta(days=1)))
    receiver.script[:] = [200, 500]
    client.post(check_in_path(orgs["acme"]), headers=bearer(write_token))
    client.delete(check_in_path(orgs["acme"]), headers=bearer(write_token))
    with app.app_context():
        assert delivery.deliver_due() == 2
    failing_since = endpoint_of(app, endpoint["id"]).failing_since
    assert failing_since is not None and failing_since > failing_before + timedelta(hours=1)


def test_a_send_ends_at_its_deadline_however_its_answer_drips(app):
    """The timeout bounds the whole send, not each read: an answer a byte at a time, each
    within the timeout, is cut off at the deadline."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip():
        connection, _ = server.accept()
        with connection:
            connection.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                if stop.wait(0.08):
                    break
                try:
                    connection.sendall(bytes([byte]))
                except OSError:  # the sender gave up
                    break

    dripping = threading.Thread(target=drip, daemon=True)
    dripping.start()
    try:
        outcome = send(f"http://127.0.0.1:{server.getsockname()[1]}/hooks", "msg_drip", "{}",
                       ["whsec_" + "A" * 32], allow_private=True, timeout=0.5)
    finally:
        stop.set()
        dripping.join()
        server.close()
    assert (outcome.succeeded, outcome.status_code, outcome.error) == (False, None, "timed out after 0.5 s")


def test_a_kept_alive_connection_closed_by_the_server_is_retried_once_on_a_fresh_one(app):
    """The server closes its idle connection as the next request arrives, before any
    answer: the request goes again on a new connection, and succeeds."""
    server = socket.create_server(("127.0.0.1", 0))
    requests: list[tuple[int, bytes]] = []  # (connection, request)
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    def read_request(connection: socket.socket) -> bytes:
        got = b""
        while not got.endswith(b"\r\n\r\n{}"):
            got += connection.recv(65536)
        return got

    def serve():
        with server.accept()[0] as first:
            requests.append((1, read_request(first)))
            first.sendall(answer)
            requests.append((1, read_request(first)))  # closed with no answer
        with server.accept()[0] as second:
            requests.append((2, read_request(second)))
            second.sendall(answer)

    serving = threading.Thread(target=serve, daemon=True)
    serving.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/hooks"
    try:
        with Connections() as connections:
            outcomes = [send(url, f"msg_{n}", "{}", ["whsec_" + "A" * 32], allow_private=True, timeout=5,
                             connections=connections) for n in range(2)]
    finally:
        serving.join(5)
        server.close()
    assert [(outcome.succeeded, outcome.status_code) for outcome in outcomes] == [(True, 200), (True, 200)]
    assert [(n, b"webhook-id: msg_1" in request) for n, request in requests] == [(1, False), (1, True), (2, True)]
