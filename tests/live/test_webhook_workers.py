"""Real ``usetix worker`` processes delivering webhooks to a local receiver, on the
embedded queue (Huey's SQLite storage) and on Redis: a delivery after a commit, retries on
the schedule (shortened by the setting), a worker killed mid-delivery and another started
(the message still arrives), and two workers on one queue (no attempt sent twice)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections import Counter
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from usetix.database.engine import db
from usetix.database.models import WebhookAttempt, WebhookMessage
from usetix.webhooks.queue import enqueue_deliveries, queue_for

from ..databases import REDIS_URL, redis_client_or_skip
from ..helpers import bearer, wait_until
from ..servers import USETIX, server_env, stop_process_group
from ..webhook_receiver import HOLD, Receiver

SCHEDULE = [1, 3, 6]
pytestmark = pytest.mark.app_config(WEBHOOKS_ALLOW_PRIVATE_TARGETS=True)
QUEUES = [pytest.param({}, id="sqlite-queue"), pytest.param({"WEBHOOKS_QUEUE_URL": REDIS_URL}, id="redis-queue")]


@pytest.fixture
def queue_app(request, app):
    """The test's app, its queue emptied (on Redis, whatever an earlier run left)."""
    if app.config["WEBHOOKS_QUEUE_URL"].startswith("redis"):
        redis_client_or_skip().close()
    queue_for(app).flush()
    return app


@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    made.close()


@contextmanager
def worker(app, tmp_path, name: str, lease: str = "3"):
    """A worker; its 3 s claim (a killed worker's messages go out soon) takes one message a
    claim, a claim of more than two delivery timeouts a batch."""
    env = server_env(app.config["DATABASE_URL"], WEBHOOKS_QUEUE_URL=app.config["WEBHOOKS_QUEUE_URL"],
                     WEBHOOKS_ALLOW_PRIVATE_TARGETS="true", WEBHOOKS_RETRY_SCHEDULE=json.dumps(SCHEDULE),
                     WEBHOOKS_LEASE_SECONDS=lease, WEBHOOKS_SWEEP_SECONDS="0.5", WEBHOOKS_SWEEP_GRACE_SECONDS="1")
    log = (tmp_path / f"{name}.log").open("wb")
    process = subprocess.Popen([USETIX, "worker", "--threads", "4"], env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            stop_process_group(process, timeout=10)
        log.close()


def add_endpoint(client, token, url):
    answer = client.post("/admin/webhooks", json={"url": url, "events": ["attendee.checked_in",
                                                                         "attendee.check_in_undone"]},
                         headers=bearer(token))
    assert answer.status_code == 201
    return answer.json["data"]


def check_in(client, token, org, n=0, undo=False):
    # The seeded org has two attendees per event, in event order.
    path = f"/admin/events/{org.event_ids[n // 2]}/attendees/{org.attendee_ids[n]}/check_in"
    answer = (client.delete if undo else client.post)(path, headers=bearer(token))
    assert answer.status_code == (204 if undo else 201)


def statuses(app):
    with app.app_context():
        return Counter(db.session.scalars(sa.select(WebhookMessage.status)))


@pytest.mark.parametrize("app", QUEUES, indirect=True)
def test_a_worker_delivers_and_retries_on_the_schedule(queue_app, client, orgs, write_token, receiver, tmp_path):
    app = queue_app
    receiver.script[:] = [500, 500, 500, 200]
    endpoint = add_endpoint(client, write_token, receiver.url)
    with worker(app, tmp_path, "worker"):
        check_in(client, write_token, orgs["acme"])
        wait_until(lambda: receiver.count() == 4, timeout=60, message="four attempts")
        wait_until(lambda: statuses(app) == {"delivered": 1}, timeout=10, message="the message delivered")
    ids = {got.message_id for got in receiver.received}
    assert len(ids) == 1
    for got in receiver.received:
        assert got.verified(endpoint["secret"])["type"] == "attendee.checked_in"
    gaps = [later.at - earlier.at for earlier, later in zip(receiver.received, receiver.received[1:], strict=False)]
    # Each retry waits at least its step of the schedule (less its jitter); the steps rise.
    assert all(gap >= planned * 0.9 for gap, planned in zip(gaps, SCHEDULE, strict=True)), gaps
    assert gaps == sorted(gaps), gaps


@pytest.mark.parametrize("app", QUEUES, indirect=True)
def test_a_worker_killed_mid_delivery_leaves_the_message_to_the_next(queue_app, client, orgs, write_token, receiver,
                                                                     tmp_path):
    app = queue_app
    receiver.script[:] = [HOLD]  # the first attempt is taken in and never answered
    endpoint = add_endpoint(client, write_token, receiver.url)
    with worker(app, tmp_path, "first") as first:
        check_in(client, write_token, orgs["acme"])
        wait_until(lambda: receiver.count() == 1, timeout=20, message="the first attempt in flight")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    receiver.release()
    assert statuses(app) == {"pending": 1}  # claimed by a worker that is gone: not lost
    with worker(app, tmp_path, "second"):
        wait_until(lambda: receiver.count() == 2, timeout=30, message="the message sent again by another worker")
        wait_until(lambda: statuses(app) == {"delivered": 1}, timeout=10, message="the message delivered")
    first_try, second_try = receiver.received
    assert first_try.message_id == second_try.message_id
    assert second_try.verified(endpoint["secret"])["type"] == "attendee.checked_in"


@pytest.mark.parametrize("app", QUEUES, indirect=True)
def test_two_workers_never_send_one_attempt_twice(queue_app, client, orgs, write_token, receiver, tmp_path):
    app = queue_app
    acme = orgs["acme"]
    add_endpoint(client, write_token, receiver.url)
    with worker(app, tmp_path, "one"), worker(app, tmp_path, "two"):
        for _ in range(2):
            for n in range(len(acme.attendee_ids)):
                check_in(client, write_token, acme, n)
                check_in(client, write_token, acme, n, undo=True)
        expected = 4 * len(acme.attendee_ids)
        with app.app_context():  # every message queued twice more: both workers race for each
            ids = list(db.session.scalars(sa.select(WebhookMessage.id)))
        assert len(ids) == expected
        enqueue_deliveries(app, ids)
        enqueue_deliveries(app, ids)
        wait_until(lambda: statuses(app) == {"delivered": expected}, timeout=60, message="every message delivered")
    sent = Counter(got.message_id for got in receiver.received)
    assert len(sent) == expected and set(sent.values()) == {1}
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookAttempt)) == expected


@pytest.mark.parametrize("app", QUEUES, indirect=True)
def test_two_workers_claiming_batches_of_a_backlog_never_send_one_attempt_twice(queue_app, client, orgs, write_token,
                                                                                receiver, tmp_path):
    """A backlog written before any worker runs, every message queued three times, then two
    workers whose claims take batches race for it."""
    app = queue_app
    acme = orgs["acme"]
    add_endpoint(client, write_token, receiver.url)
    for _ in range(4):
        for n in range(len(acme.attendee_ids)):
            check_in(client, write_token, acme, n)
            check_in(client, write_token, acme, n, undo=True)
    expected = 8 * len(acme.attendee_ids)
    with app.app_context():
        ids = list(db.session.scalars(sa.select(WebhookMessage.id)))
    assert len(ids) == expected
    enqueue_deliveries(app, ids)
    enqueue_deliveries(app, ids)
    with worker(app, tmp_path, "one", lease="40"), worker(app, tmp_path, "two", lease="40"):
        wait_until(lambda: statuses(app) == {"delivered": expected}, timeout=60, message="every message delivered")
    sent = Counter(got.message_id for got in receiver.received)
    assert len(sent) == expected and set(sent.values()) == {1}
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookAttempt)) == expected
        assert set(db.session.scalars(sa.select(WebhookMessage.attempts))) == {1}


@pytest.mark.parametrize("app", QUEUES[:1], indirect=True)
def test_a_message_never_enqueued_is_found_by_the_sweeper(queue_app, client, orgs, write_token, receiver, tmp_path,
                                                          monkeypatch):
    """The web process dies between its commit and the enqueue (here: the enqueue is lost):
    the worker's sweeper finds the message in the outbox and delivers it."""
    from usetix.webhooks import queue

    app = queue_app
    endpoint = add_endpoint(client, write_token, receiver.url)
    monkeypatch.setattr(queue, "enqueue_deliveries", lambda *args, **kwargs: None)
    check_in(client, write_token, orgs["acme"])
    assert statuses(app) == {"pending": 1}
    with worker(app, tmp_path, "sweeping"):
        wait_until(lambda: receiver.count() == 1, timeout=30, message="the swept message delivered")
    assert receiver.received[0].verified(endpoint["secret"])["type"] == "attendee.checked_in"
