"""What a worker does with a message: claim it, send it, log the attempt, decide what next.

A worker claims a message with one conditional ``UPDATE`` (due, pending, and no other
worker's claim still running), which exactly one worker wins, on PostgreSQL and SQLite
alike; only the winner sends, so two workers never send one attempt. The claim lasts
``WEBHOOKS_LEASE_SECONDS``: a worker killed mid-delivery holds the message until then, and
the sweeper then hands it to the queue again. After the attempt, one transaction logs it
and moves the message on: delivered; retried after the schedule's next delay (a task
scheduled on the queue); failed when the schedule is spent; or, with its endpoint
disabled, on a ``410 Gone`` or after three days of failures.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from ..core.webhooks import DISABLE_AFTER_HOURS, retry_delay
from ..database.engine import db
from ..database.models import WebhookAttempt, WebhookEndpoint, WebhookMessage, utcnow
from .sender import Outcome, send

logger = logging.getLogger("usetix.webhooks")
_messages = WebhookMessage.__table__
_endpoints = WebhookEndpoint.__table__
_attempts = WebhookAttempt.__table__


def _claimable(now: datetime) -> tuple:
    # Due by this host's clock: a retry's task run early (another host's clock ahead) or a
    # second task for a message that has just failed finds nothing; the sweeper hands the
    # message out once it is due.
    return (_messages.c.status == "pending", _messages.c.next_attempt_at <= now,
            sa.or_(_messages.c.lease_until.is_(None), _messages.c.lease_until < now))


def deliver(message_row_id: int) -> None:
    """Send one message if it is still due and no other worker has it."""
    config = current_app.config
    now = utcnow()
    lease = now + timedelta(seconds=float(config["WEBHOOKS_LEASE_SECONDS"]))
    with db.engine.begin() as connection:
        claimed = connection.execute(
            sa.update(_messages).where(_messages.c.id == message_row_id, *_claimable(now))
            .values(lease_until=lease)
            .returning(_messages.c.endpoint_id, _messages.c.message_id, _messages.c.event_type, _messages.c.payload,
                       _messages.c.attempts, _messages.c.account_id)
        ).first()
        endpoint = None if claimed is None else connection.execute(
            sa.select(_endpoints.c.url, _endpoints.c.enabled, _endpoints.c.secret, _endpoints.c.previous_secret,
                      _endpoints.c.previous_secret_expires_at, _endpoints.c.failing_since)
            .where(_endpoints.c.id == claimed.endpoint_id)
        ).first()
    if claimed is None or endpoint is None:
        return
    if not endpoint.enabled:
        outcome = Outcome(False, None, "endpoint disabled: not sent", 0, None)
    else:
        secrets = [endpoint.secret]
        rotated_until = endpoint.previous_secret_expires_at
        if endpoint.previous_secret and rotated_until is not None and rotated_until > now:
            secrets.append(endpoint.previous_secret)
        outcome = send(endpoint.url, claimed.message_id, claimed.payload, secrets,
                       allow_private=bool(config["WEBHOOKS_ALLOW_PRIVATE_TARGETS"]))
    retry_in = _record(message_row_id, claimed, lease, outcome, sent=endpoint.enabled,
                       was_failing=endpoint.failing_since is not None)
    if retry_in is not None:
        from .queue import enqueue_deliveries

        enqueue_deliveries(current_app._get_current_object(), [message_row_id], delay=retry_in)


def _record(message_row_id: int, claimed: sa.Row, lease: datetime, outcome: Outcome, sent: bool,
            was_failing: bool) -> float | None:
    """Log the attempt and move the message on, in one transaction; the seconds until the
    next attempt, or None."""
    now = utcnow()
    attempts = claimed.attempts + (1 if sent else 0)
    ours = (_messages.c.id == message_row_id, _messages.c.lease_until == lease)
    retry_in = None
    with db.engine.begin() as connection:
        connection.execute(_attempts.insert().values(
            account_id=claimed.account_id, endpoint_id=claimed.endpoint_id, message_row_id=message_row_id,
            message_id=claimed.message_id, event_type=claimed.event_type, attempted_at=now,
            succeeded=outcome.succeeded, status_code=outcome.status_code, error=outcome.error,
            latency_ms=outcome.latency_ms, response_body=outcome.response_body))
        endpoint_row = _endpoints.c.id == claimed.endpoint_id
        if outcome.succeeded:
            connection.execute(sa.update(_messages).where(*ours).values(
                status="delivered", attempts=attempts, lease_until=None, finished_at=now))
            if was_failing:  # as the claim read it: most deliveries skip this statement
                connection.execute(sa.update(_endpoints).where(endpoint_row).values(failing_since=None))
            return None
        if not sent:  # its endpoint is disabled: failed, until a recover after it is enabled again
            connection.execute(sa.update(_messages).where(*ours).values(status="failed", lease_until=None,
                                                                         finished_at=now))
            return None
        failing_since = connection.execute(
            sa.update(_endpoints).where(endpoint_row)
            .values(failing_since=sa.func.coalesce(_endpoints.c.failing_since, now))
            .returning(_endpoints.c.failing_since)).scalar_one()
        disable = None
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
