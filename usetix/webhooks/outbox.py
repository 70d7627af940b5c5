"""The outbox: a write that emits a webhook event adds its messages in its own transaction.

:func:`emit_webhook_event` is the one call a write path makes: one ``INSERT … SELECT``
over the account's enabled endpoints subscribed to the type, one message row each (none
when there are none), in the write's transaction, so a rolled-back write sends nothing and
a committed one is never lost (:func:`emit_webhook_events`: the messages of many events of
one type, in one statement too). After the request (its commit), the new messages are handed
to the task queue; a crash before that only delays them until the sweeper finds them
(usetix/webhooks/delivery.py). A write that is one statement on PostgreSQL (a check-in)
carries its messages in that statement instead: :func:`emission_cte`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import after_this_request, current_app, g, has_request_context
from sqlalchemy.dialects import postgresql

from ..core.webhooks import TEST_EVENT, new_message_id
from ..database.models import UTCDateTime, WebhookEndpoint, WebhookMessage, WebhookSubscription, utcnow
from ..web.responses import json_body

_endpoints = WebhookEndpoint.__table__
_subscriptions = WebhookSubscription.__table__
_messages = WebhookMessage.__table__
_MESSAGE_COLUMNS = ["account_id", "endpoint_id", "message_id", "event_type", "payload", "status", "attempts",
                    "next_attempt_at", "created_at"]
_at = sa.bindparam("webhook_at", type_=UTCDateTime)
# The endpoints a message of this type goes to: the account's, enabled, subscribed to it.
_SUBSCRIBED = (_endpoints.c.account_id == sa.bindparam("webhook_account_id"), _endpoints.c.enabled.is_(True),
               _subscriptions.c.event_type == sa.bindparam("webhook_type", type_=sa.String))


def _fan_out(payload: Any, message_id: Any = None) -> sa.Select:
    if message_id is None:
        message_id = sa.bindparam("webhook_message_id", type_=sa.String)
    return (sa.select(_endpoints.c.account_id, _endpoints.c.id, message_id,
                      sa.bindparam("webhook_type", type_=sa.String), payload, sa.literal("pending", sa.String),
                      sa.literal(0, sa.Integer), _at, _at)
            .join_from(_endpoints, _subscriptions, _subscriptions.c.endpoint_id == _endpoints.c.id)
            .where(*_SUBSCRIBED))


# Built once (docs/performance.md): one statement, whatever the number of endpoints.
EMIT = (_messages.insert()
        .from_select(_MESSAGE_COLUMNS, _fan_out(sa.bindparam("webhook_payload", type_=sa.Text)))
        .returning(_messages.c.id))
_QUEUED_KEY = "usetix_webhook_messages"


def _emit_many(dialect: str) -> sa.Insert:
    """EMIT for many events: their [message id, payload] pairs bound as one JSON array, so
    that the statement is the same whatever their number (built once per dialect)."""
    pairs = sa.bindparam("webhook_events", type_=sa.Text)
    if dialect == "postgresql":
        each = sa.func.json_array_elements(sa.cast(pairs, postgresql.JSON)).table_valued(
            "value", with_ordinality="position").render_derived("each_event")
        message_id, payload = (each.c.value.op("->>")(sa.literal_column(str(n))) for n in (0, 1))
        position = each.c.position
    else:
        each = sa.func.json_each(pairs).table_valued("value", "key").alias("each_event")
        message_id, payload = (sa.func.json_extract(each.c.value, f"$[{n}]") for n in (0, 1))
        position = each.c.key
    fan_out = _fan_out(sa.type_coerce(payload, sa.Text), sa.type_coerce(message_id, sa.String)).join(each, sa.true())
    return (_messages.insert()
            .from_select(_MESSAGE_COLUMNS, fan_out.order_by(position, _endpoints.c.id))
            .returning(_messages.c.id))


EMIT_MANY = {dialect: _emit_many(dialect) for dialect in ("postgresql", "sqlite")}


def payload_body(event_type: str, at: datetime, data: dict) -> str:
    """The body every endpoint gets: ``{"type", "timestamp", "data"}``, in the API's JSON."""
    return json_body({"type": event_type, "timestamp": at, "data": data}).decode()


def emit_webhook_event(connection: sa.Connection, account_id: int, event_type: str, data: dict) -> None:
    """Write the messages of ``event_type`` with ``data`` (the object as the API answers
    it, or ``{"id", "deleted": true}``) in ``connection``'s transaction: one statement."""
    at = utcnow()
    ids = connection.execute(EMIT, {
        "webhook_account_id": account_id, "webhook_type": event_type, "webhook_message_id": new_message_id(),
        "webhook_payload": payload_body(event_type, at, data), "webhook_at": at,
    }).scalars().all()
    queue_after_commit(ids)


def emit_webhook_events(connection: sa.Connection, account_id: int, event_type: str, data: list[dict]) -> None:
    """:func:`emit_webhook_event` for each of ``data`` (the same type): one statement for all."""
    if not data:
        return
    at = utcnow()
    pairs = [[new_message_id(), payload_body(event_type, at, each)] for each in data]
    ids = connection.execute(EMIT_MANY[connection.dialect.name], {
        "webhook_account_id": account_id, "webhook_type": event_type, "webhook_events": json.dumps(pairs),
        "webhook_at": at,
    }).scalars().all()
    queue_after_commit(ids)


def emit_test_message(connection: sa.Connection, endpoint_id: int, account_id: int) -> str:
    """A ``webhook.test`` message for one endpoint (whatever it subscribes to); its id."""
    at = utcnow()
    message_id = new_message_id()
    row_id = connection.execute(_messages.insert().values(
        account_id=account_id, endpoint_id=endpoint_id, message_id=message_id, event_type=TEST_EVENT,
        payload=payload_body(TEST_EVENT, at, {"endpoint_id": endpoint_id}), status="pending", attempts=0,
        next_attempt_at=at, created_at=at).returning(_messages.c.id)).scalar_one()
    queue_after_commit([row_id])
    return message_id


def queue_after_commit(message_row_ids: list[int]) -> None:
    """Hand these messages to the task queue once the request is over (its write committed;
    if it rolled back, the ids name no row and the worker finds nothing to send). Outside a
    request the sweeper finds them."""
    if not message_row_ids or not has_request_context():
        return
    pending = g.get(_QUEUED_KEY)
    if pending is None:
        pending = []
        setattr(g, _QUEUED_KEY, pending)

        @after_this_request
        def hand_over(response: Any) -> Any:
            from .queue import enqueue_deliveries  # the queue is built from the app's settings

            enqueue_deliveries(current_app._get_current_object(), pending)  # the task keeps the app, not the proxy
            return response
    pending.extend(message_row_ids)


# -- one statement on PostgreSQL ---------------------------------------------------------------

_TIMESTAMP = 'YYYY-MM-DD"T"HH24:MI:SS"Z"'  # the API's form: UTC, to the second, with a Z


def emission_cte(event_type: str, changed: Any, fields: tuple[str, ...]) -> Any:
    """The messages of ``event_type`` as a data-modifying CTE over ``changed`` (a CTE of the
    changed row with ``fields``): PostgreSQL builds the body (json_build_object, timestamps
    as the API writes them). Needs the bound values of :func:`statement_params`."""
    members: list[Any] = []
    for name in fields:
        column = changed.c[name]
        value = sa.func.to_char(column, _TIMESTAMP) if isinstance(column.type, UTCDateTime) else column
        members += [sa.literal(name, sa.String), value]
    body = sa.func.json_build_object(
        sa.literal("type", sa.String), sa.bindparam("webhook_type", type_=sa.String),
        sa.literal("timestamp", sa.String), sa.bindparam("webhook_timestamp", type_=sa.String),
        sa.literal("data", sa.String), sa.func.json_build_object(*members))
    fan_out = _fan_out(sa.cast(body, sa.Text)).join(changed, sa.true())
    return _messages.insert().from_select(_MESSAGE_COLUMNS, fan_out).returning(_messages.c.id).cte(
        f"emitted_{event_type.replace('.', '_')}")


def statement_params(account_id: int, event_type: str, at: datetime) -> dict:
    """The bound values :func:`emission_cte` needs."""
    return {"webhook_account_id": account_id, "webhook_type": event_type, "webhook_message_id": new_message_id(),
            "webhook_at": at, "webhook_timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ")}
