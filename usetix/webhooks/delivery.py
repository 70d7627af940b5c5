"""What a worker does with messages: claim them, send them, log the attempts, decide what next.

A worker claims messages with one conditional ``UPDATE`` (due, pending, and no other
worker's claim still running; up to ``WEBHOOKS_BATCH_SIZE`` of them), and each message is
won by exactly one worker, on PostgreSQL and SQLite alike; only the winner sends, so two
workers never send one attempt. The claim lasts ``WEBHOOKS_LEASE_SECONDS``: a worker
killed mid-delivery holds the messages until then, and the sweeper then hands them to the
queue again; a batch's later messages are only sent while the claim has time to spare
(:data:`LEASE_MARGIN_TIMEOUTS`). After the attempts, one transaction logs those of the
messages still claimed (one deleted meanwhile, with its endpoint, is left out) and moves
each message on: delivered (one statement for all of them); retried after the schedule's
next delay (a task scheduled on the queue); failed when the schedule is spent; or, with
its endpoint disabled, on a ``410 Gone`` or after three days of failures (the batch's
later messages to it are then not sent). A send that raises is its message's failed
attempt; whatever the batch did not send is given back.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from flask import current_app

from ..core.webhooks import DELIVERY_TIMEOUT_SECONDS, DISABLE_AFTER_HOURS, retry_delay
from ..database.engine import db
from ..database.models import UTCDateTime, WebhookAttempt, WebhookEndpoint, WebhookMessage, utcnow
from .sender import Connections, Outcome, send

logger = logging.getLogger("usetix.webhooks")
_messages = WebhookMessage.__table__
_endpoints = WebhookEndpoint.__table__
_attempts = WebhookAttempt.__table__


def _claimable(now: Any) -> tuple:
    # Due by this host's clock: a retry's task run early (another host's clock ahead) or a
    # second task for a message that has just failed finds nothing; the sweeper hands the
    # message out once it is due.
    return (_messages.c.status == "pending", _messages.c.next_attempt_at <= now,
            sa.or_(_messages.c.lease_until.is_(None), _messages.c.lease_until < now))


_CLAIMED = (_messages.c.id, _messages.c.endpoint_id, _messages.c.message_id, _messages.c.event_type,
            _messages.c.payload, _messages.c.attempts, _messages.c.account_id)
_now = sa.bindparam("claim_now", type_=UTCDateTime)
# Built once (docs/performance.md): a worker runs them for every task.
CLAIM_ONE = (sa.update(_messages).where(_messages.c.id == sa.bindparam("claim_first"), *_claimable(_now))
             .values(lease_until=sa.bindparam("claim_lease", type_=UTCDateTime)).returning(*_CLAIMED))
# The longest due first (the pending index's order), chosen once: a MATERIALIZED CTE, as
# PostgreSQL may run an IN (subquery) again for each row it updates, and a LIMIT would
# then not bound the claim. SKIP LOCKED (PostgreSQL; SQLite writes one at a time): two
# claims at once take different rows instead of waiting for each other; the outer
# conditions are checked again on the row the UPDATE gets, so one claim only wins a message.
_DUE = (sa.select(_messages.c.id).where(*_claimable(_now))
        .order_by(_messages.c.next_attempt_at, _messages.c.id)
        .limit(sa.bindparam("claim_limit", type_=sa.Integer)).with_for_update(skip_locked=True)
        .cte("due").prefix_with("MATERIALIZED", dialect="postgresql"))
CLAIM_DUE = (sa.update(_messages).where(_messages.c.id.in_(sa.select(_DUE.c.id)), *_claimable(_now))
             .values(lease_until=sa.bindparam("claim_lease", type_=UTCDateTime)).returning(*_CLAIMED))


# A claim's later messages are sent only while at least this many delivery timeouts of its
# lease are left, so none is still in flight when the claim runs out and another worker
# may take it; the rest are given back. A send ends within one timeout (the sender's
# deadline); the other is for resolving the target's name, which that deadline cannot
# interrupt, and for logging the batch.
LEASE_MARGIN_TIMEOUTS = 2


def deliver(message_row_id: int) -> None:
    """Send one message if it is still due and no other worker has it."""
    _deliver_claimed(CLAIM_ONE, {"claim_first": message_row_id})


def deliver_due(limit: int | None = None) -> int:
    """Claim the due messages no worker has, the longest due first, up to ``limit``
    (``WEBHOOKS_BATCH_SIZE``), with one statement; send them, over one connection per
    target; log them with one transaction. How many were claimed."""
    config = current_app.config
    limit = int(limit or config["WEBHOOKS_BATCH_SIZE"])
    if float(config["WEBHOOKS_LEASE_SECONDS"]) <= LEASE_MARGIN_TIMEOUTS * DELIVERY_TIMEOUT_SECONDS:
        limit = 1  # a claim too short for a second send (tests' 3 s): one message a claim
    return _deliver_claimed(CLAIM_DUE, {"claim_limit": limit})


class _Sent(NamedTuple):
    claimed: sa.Row
    outcome: Outcome
    sent: bool  # False: its endpoint is disabled, nothing went out
    was_failing: bool  # its endpoint, as the claim read it


_NOT_SENT = Outcome(False, None, "endpoint disabled: not sent", 0, None)


def _deliver_claimed(claim: sa.Update, params: dict) -> int:
    config = current_app.config
    lease_seconds = float(config["WEBHOOKS_LEASE_SECONDS"])
    now = utcnow()
    lease = now + timedelta(seconds=lease_seconds)
    claimed_at = time.monotonic()
    with db.engine.begin() as connection:
        claimed = sorted(connection.execute(claim, {**params, "claim_now": now, "claim_lease": lease}),
                         key=lambda row: row.id)
        if not claimed:
            return 0
        endpoints = {row.id: row for row in connection.execute(
            sa.select(_endpoints.c.id, _endpoints.c.url, _endpoints.c.enabled, _endpoints.c.secret,
                      _endpoints.c.previous_secret, _endpoints.c.previous_secret_expires_at,
                      _endpoints.c.failing_since)
            .where(_endpoints.c.id.in_({row.endpoint_id for row in claimed})))}
    allow_private = bool(config["WEBHOOKS_ALLOW_PRIVATE_TARGETS"])
    budget = lease_seconds - LEASE_MARGIN_TIMEOUTS * DELIVERY_TIMEOUT_SECONDS
    # Each endpoint's failing_since as this batch's answers leave it, and the endpoints they
    # disable (a 410, or three days of failures): the rest of their messages are not sent,
    # as each message, when it was claimed on its own, found its endpoint disabled.
    failing = {endpoint.id: endpoint.failing_since for endpoint in endpoints.values()}
    disabled: set[int] = set()
    done: list[_Sent] = []
    try:
        with Connections() as connections:
            for position, message in enumerate(claimed):
                if position and time.monotonic() - claimed_at > budget:
                    break  # the rest are given back
                endpoint = endpoints.get(message.endpoint_id)
                if endpoint is None:  # deleted since: its messages went with it
                    continue
                was_failing = endpoint.failing_since is not None
                if not endpoint.enabled or endpoint.id in disabled:
                    done.append(_Sent(message, _NOT_SENT, False, was_failing))
                    continue
                outcome = _send(message, endpoint, now, allow_private, connections)
                done.append(_Sent(message, outcome, True, was_failing))
                if outcome.succeeded:
                    failing[endpoint.id] = None
                    continue
                since = failing[endpoint.id] or now
                failing[endpoint.id] = since
                if outcome.status_code == 410 or since <= now - timedelta(hours=DISABLE_AFTER_HOURS):
                    disabled.add(endpoint.id)
    finally:  # what went out is logged, and the rest given back, even if the loop raised
        recorded = {item.claimed.id for item in done}
        retries, given_back = _record(done, lease, [row.id for row in claimed if row.id not in recorded])
    from .queue import enqueue_deliveries

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    for row_id, retry_in in retries:
        enqueue_deliveries(app, [row_id], delay=retry_in)
    if given_back:  # their claim given back: tasks take them now, not the sweeper later
        enqueue_deliveries(app, given_back)
    return len(claimed)


def _send(message: sa.Row, endpoint: sa.Row, now: datetime, allow_private: bool,
          connections: Connections) -> Outcome:
    secrets = [endpoint.secret]
    rotated_until = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and rotated_until is not None and rotated_until > now:
        secrets.append(endpoint.previous_secret)
    try:
        return send(endpoint.url, message.message_id, message.payload, secrets, allow_private=allow_private,
                    connections=connections)
    except Exception as error:  # a bug, or a URL the sender cannot send to: this attempt failed, not the batch
        logger.exception("webhooks: sending message %s to endpoint %s raised", message.message_id, endpoint.id)
        return Outcome(False, None, f"internal error: {type(error).__name__}", 0, None)


def _record(done: list[_Sent], lease: datetime, unsent: list[int]) -> tuple[list[tuple[int, float]], list[int]]:
    """Log the attempts and move the messages on, in one transaction: one INSERT for the
    attempts and one UPDATE for the delivered messages, whatever their number; a failure
    costs its own statements. Only the messages still claimed by this batch: one deleted
    since (with its endpoint) is left out. The (message, seconds until its next attempt)
    to schedule, and the ``unsent`` messages given back."""
    now = utcnow()
    retries: list[tuple[int, float]] = []
    if not done and not unsent:
        return retries, []
    ours = _messages.c.lease_until == lease
    delivered = [item for item in done if item.outcome.succeeded]
    failed = [item.claimed.id for item in done if not item.outcome.succeeded]
    with db.engine.begin() as connection:
        # Each statement takes the rows still ours and locks them (on PostgreSQL; SQLite's
        # transaction writes from its first statement, so no other waits in between): an
        # endpoint deleted now waits for this transaction, one deleted before is left out.
        kept = set()
        if delivered:
            kept.update(connection.scalars(sa.update(_messages).where(
                _messages.c.id.in_([item.claimed.id for item in delivered]), ours).values(
                status="delivered", attempts=_messages.c.attempts + 1, lease_until=None, finished_at=now)
                .returning(_messages.c.id)))
        if failed:  # a no-op UPDATE rather than SELECT … FOR UPDATE: a write on SQLite too
            kept.update(connection.scalars(sa.update(_messages).where(_messages.c.id.in_(failed), ours)
                                           .values(lease_until=lease).returning(_messages.c.id)))
        given_back = []
        if unsent:
            given_back = list(connection.scalars(sa.update(_messages).where(_messages.c.id.in_(unsent), ours)
                                                 .values(lease_until=None).returning(_messages.c.id)))
        done = [item for item in done if item.claimed.id in kept]
        if done:
            connection.execute(_attempts.insert(), [{
                "account_id": item.claimed.account_id, "endpoint_id": item.claimed.endpoint_id,
                "message_row_id": item.claimed.id, "message_id": item.claimed.message_id,
                "event_type": item.claimed.event_type, "attempted_at": now, "succeeded": item.outcome.succeeded,
                "status_code": item.outcome.status_code, "error": item.outcome.error,
                "latency_ms": item.outcome.latency_ms, "response_body": item.outcome.response_body,
            } for item in done])
        # An endpoint's failing_since follows its last attempt of the batch, in send order.
        recovered, failing_again = _recoveries(done)
        if failing_again:  # a success, then failures: failing from those, not from before
            connection.execute(sa.update(_endpoints).where(_endpoints.c.id.in_(failing_again))
                               .values(failing_since=None))
        for item in done:
            if not item.outcome.succeeded:
                retry_in = _record_failure(connection, item, lease, now)
                if retry_in is not None:
                    retries.append((item.claimed.id, retry_in))
        if recovered:  # most deliveries skip this statement
            connection.execute(sa.update(_endpoints).where(_endpoints.c.id.in_(recovered))
                               .values(failing_since=None))
    return retries, given_back


def _recoveries(done: list[_Sent]) -> tuple[set[int], set[int]]:
    """The endpoints whose last attempt succeeded after a failure (of this batch or from
    before it), and those failing from before whose failures resumed after a success."""
    attempts: dict[int, list[_Sent]] = {}
    for item in done:
        if item.sent:
            attempts.setdefault(item.claimed.endpoint_id, []).append(item)
    recovered, failing_again = set(), set()
    for endpoint_id, items in attempts.items():
        succeeded = [item.outcome.succeeded for item in items]
        if succeeded[-1] and (items[0].was_failing or not all(succeeded)):
            recovered.add(endpoint_id)
        elif not succeeded[-1] and items[0].was_failing and any(succeeded):
            failing_again.add(endpoint_id)
    return recovered, failing_again


def _record_failure(connection: sa.Connection, item: _Sent, lease: datetime, now: datetime) -> float | None:
    claimed, outcome = item.claimed, item.outcome
    attempts = claimed.attempts + (1 if item.sent else 0)
    ours = (_messages.c.id == claimed.id, _messages.c.lease_until == lease)
    if not item.sent:  # its endpoint is disabled: failed, until a recover after it is enabled again
        connection.execute(sa.update(_messages).where(*ours).values(status="failed", lease_until=None,
                                                                     finished_at=now))
        return None
    endpoint_row = _endpoints.c.id == claimed.endpoint_id
    # None: no endpoint (its messages, locked by _record, cannot lose it; if they did, not
    # a reason to lose the batch's log)
    failing_since = connection.execute(
        sa.update(_endpoints).where(endpoint_row)
        .values(failing_since=sa.func.coalesce(_endpoints.c.failing_since, now))
        .returning(_endpoints.c.failing_since)).scalar() or now
    disable = None
    retry_in = None
    if outcome.status_code == 410:
        disable = "gone"
    elif failing_since <= now - timedelta(hours=DISABLE_AFTER_HOURS):
        disable = "failing"
    if disable is not None:
        connection.execute(sa.update(_endpoints).where(endpoint_row, _endpoints.c.enabled.is_(True)).values(
            enabled=False, disabled_reason=disable, disabled_at=now))
        logger.warning("webhooks: endpoint %s disabled (%s)", claimed.endpoint_id, disable)
    else:
        retry_in = retry_delay(attempts, current_app.config["WEBHOOKS_RETRY_SCHEDULE"])
    if retry_in is None:
        connection.execute(sa.update(_messages).where(*ours).values(
            status="failed", attempts=attempts, lease_until=None, finished_at=now))
    else:
        connection.execute(sa.update(_messages).where(*ours).values(
            attempts=attempts, lease_until=None, next_attempt_at=now + timedelta(seconds=retry_in)))
    return retry_in


def due_messages(limit: int = 500) -> list[int]:
    """Messages due for a while and claimed by no worker: lost between a commit and its
    enqueue, their task lost with a worker, or held by a worker that died (its claim has
    run out). The sweeper queues them again."""
    config = current_app.config
    now = utcnow()
    grace = now - timedelta(seconds=float(config["WEBHOOKS_SWEEP_GRACE_SECONDS"]))
    with db.engine.connect() as connection:
        return list(connection.scalars(
            sa.select(_messages.c.id).where(
                _messages.c.status == "pending", _messages.c.next_attempt_at <= grace,
                sa.or_(_messages.c.lease_until.is_(None), _messages.c.lease_until < now))
            .order_by(_messages.c.next_attempt_at).limit(limit)))


def purge_old_attempts() -> int:
    """Delete the delivery log's attempts older than ``WEBHOOKS_LOG_RETENTION_DAYS``, and the
    finished messages left without any."""
    cutoff = utcnow() - timedelta(days=float(current_app.config["WEBHOOKS_LOG_RETENTION_DAYS"]))
    with db.engine.begin() as connection:
        deleted = connection.execute(sa.delete(_attempts).where(_attempts.c.attempted_at < cutoff)).rowcount
        connection.execute(sa.delete(_messages).where(
            _messages.c.status != "pending", _messages.c.finished_at < cutoff,
            ~sa.exists().where(_attempts.c.message_row_id == _messages.c.id)))
    return deleted
