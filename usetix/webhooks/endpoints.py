"""An account's webhook endpoints: what the API and the dashboard both do with them, on the
connection of the caller's transaction (they commit). Every function is limited to one
account: another account's endpoint is None, the same as a missing one."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ..core.webhooks import EVENT_TYPES, new_secret
from ..database.models import WebhookAttempt, WebhookEndpoint, WebhookMessage, WebhookSubscription, utcnow
from .outbox import emit_test_message, queue_after_commit
from .targets import check_url

_endpoints = WebhookEndpoint.__table__
_subscriptions = WebhookSubscription.__table__
_messages = WebhookMessage.__table__
_attempts = WebhookAttempt.__table__
ENDPOINT_FIELDS = ("id", "url", "description", "enabled", "disabled_reason", "failing_since", "created_at",
                   "updated_at")
ROTATION_OVERLAP = timedelta(hours=24)  # the previous secret signs too this long after a rotation


def _owned(account_id: int, endpoint_id: int) -> tuple:
    return (_endpoints.c.id == endpoint_id, _endpoints.c.account_id == account_id)


def _events_of(connection: sa.Connection, endpoint_ids: list[int]) -> dict[int, list[str]]:
    found: dict[int, set[str]] = {endpoint_id: set() for endpoint_id in endpoint_ids}
    if endpoint_ids:
        for endpoint_id, event_type in connection.execute(
                sa.select(_subscriptions.c.endpoint_id, _subscriptions.c.event_type)
                .where(_subscriptions.c.endpoint_id.in_(endpoint_ids))):
            found[endpoint_id].add(event_type)
    return {endpoint_id: [name for name in EVENT_TYPES if name in types] for endpoint_id, types in found.items()}


def _as_json(row: Any, events: list[str]) -> dict:
    return {**{name: row._mapping[name] for name in ENDPOINT_FIELDS}, "events": events}


def list_endpoints(connection: sa.Connection, account_id: int) -> list[dict]:
    rows = connection.execute(sa.select(*(_endpoints.c[name] for name in ENDPOINT_FIELDS))
                              .where(_endpoints.c.account_id == account_id).order_by(_endpoints.c.id)).all()
    events = _events_of(connection, [row.id for row in rows])
    return [_as_json(row, events[row.id]) for row in rows]


def get_endpoint(connection: sa.Connection, account_id: int, endpoint_id: int) -> dict | None:
    row = connection.execute(sa.select(*(_endpoints.c[name] for name in ENDPOINT_FIELDS))
                             .where(*_owned(account_id, endpoint_id))).first()
    return None if row is None else _as_json(row, _events_of(connection, [row.id])[row.id])


def _subscribe(connection: sa.Connection, endpoint_id: int, events: list[str]) -> None:
    connection.execute(sa.delete(_subscriptions).where(_subscriptions.c.endpoint_id == endpoint_id))
    connection.execute(sa.insert(_subscriptions), [{"endpoint_id": endpoint_id, "event_type": name}
                                                   for name in dict.fromkeys(events)])


def create_endpoint(connection: sa.Connection, account_id: int, url: str, events: list[str], description: str,
                    allow_private: bool) -> tuple[dict, str]:
    """The new endpoint and its secret; RefusedTarget for a URL webhooks may not go to."""
    url = check_url(url, allow_private)
    secret = new_secret()
    now = utcnow()
    endpoint_id = connection.execute(sa.insert(_endpoints).values(
        account_id=account_id, url=url, description=description, enabled=True, secret=secret, created_at=now,
        updated_at=now).returning(_endpoints.c.id)).scalar_one()
    _subscribe(connection, endpoint_id, events)
    return get_endpoint(connection, account_id, endpoint_id), secret  # type: ignore[return-value]


def update_endpoint(connection: sa.Connection, account_id: int, endpoint_id: int, changes: dict,
                    allow_private: bool) -> dict | None:
    """Apply ``changes`` (url, events, description, enabled); RefusedTarget for a refused URL."""
    if "url" in changes:
        changes = {**changes, "url": check_url(changes["url"], allow_private)}
    values: dict[str, Any] = {name: changes[name] for name in ("url", "description", "enabled") if name in changes}
    if changes.get("enabled") is True:  # enabled again by an admin: a fresh start
        values.update(disabled_reason=None, disabled_at=None, failing_since=None)
    elif changes.get("enabled") is False:
        values.update(disabled_reason=None, disabled_at=utcnow())
    found = connection.execute(sa.update(_endpoints).where(*_owned(account_id, endpoint_id))
                               .values(**values, updated_at=utcnow()).returning(_endpoints.c.id)).first()
    if found is None:
        return None
    if "events" in changes:
        _subscribe(connection, endpoint_id, changes["events"])
    return get_endpoint(connection, account_id, endpoint_id)


def delete_endpoint(connection: sa.Connection, account_id: int, endpoint_id: int) -> dict | None:
    """Delete the endpoint, its subscriptions, messages and log; what it was, or None."""
    endpoint = get_endpoint(connection, account_id, endpoint_id)
    if endpoint is None:
        return None
    connection.execute(sa.delete(_attempts).where(_attempts.c.endpoint_id == endpoint_id))
    connection.execute(sa.delete(_messages).where(_messages.c.endpoint_id == endpoint_id))
    connection.execute(sa.delete(_subscriptions).where(_subscriptions.c.endpoint_id == endpoint_id))
    connection.execute(sa.delete(_endpoints).where(*_owned(account_id, endpoint_id)))
    return endpoint


def rotate_secret(connection: sa.Connection, account_id: int, endpoint_id: int) -> tuple[str, datetime] | None:
    """A new secret; the current one becomes the previous, which signs too for 24 hours."""
    now = utcnow()
    secret = new_secret()
    expires = now + ROTATION_OVERLAP
    found = connection.execute(sa.update(_endpoints).where(*_owned(account_id, endpoint_id)).values(
        previous_secret=_endpoints.c.secret, previous_secret_expires_at=expires, secret=secret, updated_at=now,
    ).returning(_endpoints.c.id)).first()
    return None if found is None else (secret, expires)


def send_test(connection: sa.Connection, account_id: int, endpoint_id: int) -> str | None:
    """Queue a ``webhook.test`` message to the endpoint; its ``webhook-id``."""
    if get_endpoint(connection, account_id, endpoint_id) is None:
        return None
    return emit_test_message(connection, endpoint_id, account_id)


def _requeue(connection: sa.Connection, *criteria: Any) -> list[int]:
    """Make these messages due now, from the start of the schedule (each attempt gets a fresh
    timestamp and signature; the ``webhook-id`` stays)."""
    ids = connection.execute(sa.update(_messages).where(*criteria).values(
        status="pending", attempts=0, next_attempt_at=utcnow(), lease_until=None, finished_at=None,
    ).returning(_messages.c.id)).scalars().all()
    queue_after_commit(list(ids))
    return list(ids)


def replay(connection: sa.Connection, account_id: int, endpoint_id: int, message_id: str) -> bool:
    """Send the message with this ``webhook-id`` again; False if the endpoint has none."""
    return bool(_requeue(connection, _messages.c.account_id == account_id, _messages.c.endpoint_id == endpoint_id,
                         _messages.c.message_id == message_id,
                         # one a worker is sending right now is left to it
                         sa.or_(_messages.c.lease_until.is_(None), _messages.c.lease_until < utcnow()))) or \
        connection.scalar(sa.select(_messages.c.id).where(
            _messages.c.account_id == account_id, _messages.c.endpoint_id == endpoint_id,
            _messages.c.message_id == message_id)) is not None


def recover(connection: sa.Connection, account_id: int, endpoint_id: int, since: datetime) -> int:
    """Queue again every failed message of the endpoint created since ``since``; how many."""
    return len(_requeue(connection, _messages.c.account_id == account_id, _messages.c.endpoint_id == endpoint_id,
                        _messages.c.status == "failed", _messages.c.created_at >= since))
