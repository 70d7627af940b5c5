"""The audit record of an API write, written in the write's own transaction (or its own
statement), and only while the request's token is still valid."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import request

from ...database.id_lists import in_id_list
from ...database.models import ApiToken, AuditEvent, UTCDateTime, utcnow
from ...webhooks.outbox import (
    emission_cte,
    emit_webhook_event,
    emit_webhook_events,
    queue_after_commit,
    statement_params,
)
from .authentication import token_ids

_tokens = ApiToken.__table__
_at = sa.bindparam("at", type_=UTCDateTime)
AUDIT_COLUMNS = ["account_id", "actor", "action", "token_id", "token_description", "token_tier", "client_address",
                 "created_at", "object_type", "object_id", "object_label"]
# The request's token, if it is still valid at the write's time ("at"). Read FOR SHARE on
# PostgreSQL: a revocation not yet committed is waited for, and then seen (the write is
# refused); one that comes later waits for the write's commit, so in the audit log no write
# of a token ever follows its revocation. SQLite's writers take turns anyway.
TOKEN_STILL_VALID = (_tokens.c.id == sa.bindparam("by_token_id"), _tokens.c.account_id == sa.bindparam("by_account_id"),
                     _tokens.c.revoked_at.is_(None), sa.or_(_tokens.c.expires_at.is_(None), _tokens.c.expires_at > _at))
# The token, read as AUDIT reads it, for a write that has no audit record to check it with.
TOKEN_CHECK = sa.select(_tokens.c.id).where(*TOKEN_STILL_VALID).with_for_update(read=True)
LABEL_LENGTH = 200  # AuditEvent.object_label
def _audit_values(token: Any, action: Any, object_type: Any, object_id: Any, label: Any) -> tuple:
    """An audit record's values in AUDIT_COLUMNS' order: the token's account, description and
    tier (``token``: its table, or a CTE of it), the client's address and the write's time
    (bound), and what was done to which object."""
    return (token.c.account_id, token.c.description + " (API token)", action, token.c.id, token.c.description,
            token.c.tier, sa.bindparam("address", type_=sa.String), _at, object_type, object_id, label)


# The token's description and tier as they are now, copied in, if the token is still valid
# now: the write's own transaction checks the token again, at no extra statement. A write
# whose token was revoked or expired while it ran (a slow body) inserts no audit record,
# and is rolled back and refused (TokenNoLongerValid). Built once (docs/performance.md).
AUDIT = AuditEvent.__table__.insert().from_select(
    AUDIT_COLUMNS,
    sa.select(*_audit_values(_tokens, sa.bindparam("action_name", type_=sa.String),
                             sa.bindparam("kind", type_=sa.String), sa.bindparam("target_id", type_=sa.Integer),
                             sa.bindparam("label", type_=sa.String)))
    .where(*TOKEN_STILL_VALID).with_for_update(read=True),  # see TOKEN_STILL_VALID; nothing on SQLite
).execution_options(preserve_rowcount=True)  # else SQLAlchemy keeps no rowcount of an INSERT


class TokenNoLongerValid(Exception):
    """The request's token was revoked or expired after it was authenticated."""


def check_token(connection: sa.Connection, now: datetime) -> None:
    """Raise TokenNoLongerValid unless the request's token is still valid, for a write that
    has no audit record to check it with (what it wrote stands only if the token does)."""
    account_id, token_id = token_ids()
    if connection.execute(TOKEN_CHECK, {"by_account_id": account_id, "by_token_id": token_id,
                                        "at": now}).first() is None:
        raise TokenNoLongerValid


def audit(connection: sa.Connection, action: str, object_type: str, object_id: int, label: str) -> None:
    """Record this write with its token (as it is now), object, time and client address;
    raises TokenNoLongerValid when the token is no longer valid."""
    account_id, token_id = token_ids()
    recorded = connection.execute(AUDIT, {
        "by_account_id": account_id, "by_token_id": token_id, "action_name": action, "address": request.remote_addr,
        "at": utcnow(), "kind": object_type, "target_id": object_id, "label": label[:LABEL_LENGTH],
    }).rowcount
    if not recorded:
        raise TokenNoLongerValid


class AuditedUpdate:
    """An ``UPDATE … RETURNING`` of at most one row, and its audit record, written only while
    the request's token is still valid.

    On PostgreSQL it is one statement, which needs no transaction around it: the token's row
    read ``FOR SHARE`` (a revocation not yet committed is waited for, and then seen; one
    that comes later waits for this write), the UPDATE only if the token was found valid,
    the audit INSERT of what it changed. Elsewhere (SQLite, which has no data-modifying
    ``WITH``): the UPDATE, then :func:`audit`, in the write's transaction. Built once per
    statement, at import (docs/performance.md).

    ``webhook`` names the webhook event the change emits, with the changed row's
    ``webhook_fields`` as its data: on PostgreSQL its outbox messages are one more CTE of
    the same statement (usetix/webhooks/outbox.py), elsewhere ``emit_webhook_event``.

    ``also_insert`` (PostgreSQL only) builds, from the CTE of the changed row, one more
    ``INSERT … SELECT … RETURNING id`` of the same statement: a row that exists only if the
    UPDATE changed one (the door's scan of an admission); its id is the result's ``also_id``.
    """

    def __init__(self, update: sa.Update, action: str, object_type: str, label: str, webhook: str | None = None,
                 webhook_fields: tuple[str, ...] = (), also_insert: Callable[[Any], sa.Insert] | None = None) -> None:
        self.update = update
        self.action, self.object_type, self.label = action, object_type, label
        self.webhook, self.webhook_fields = webhook, webhook_fields
        token = (sa.select(_tokens.c.id, _tokens.c.account_id, _tokens.c.description, _tokens.c.tier)
                 .where(*TOKEN_STILL_VALID).with_for_update(read=True).cte("valid_token"))
        changed = update.where(sa.exists(token.select())).cte("changed")
        recorded = AuditEvent.__table__.insert().from_select(AUDIT_COLUMNS, sa.select(*_audit_values(
            token, sa.literal(action, sa.String), sa.literal(object_type, sa.String), changed.c.id,
            sa.func.substr(changed.c[label], 1, LABEL_LENGTH),
        )).join_from(token, changed, sa.true())).cte("recorded")
        emitted = []
        if webhook is not None:
            messages = emission_cte(webhook, changed, webhook_fields)
            emitted = [sa.select(sa.func.array_agg(messages.c.id)).scalar_subquery().label("webhook_message_ids")]
        if also_insert is not None:
            also = also_insert(changed).cte("also_inserted")
            emitted.append(sa.select(also.c.id).scalar_subquery().label("also_id"))
        # One row while the token is valid, with the changed row's columns (NULL if none changed).
        self.one_statement = (sa.select(token.c.id.label("valid_token_id"), *changed.c, *emitted)
                              .select_from(token.outerjoin(changed, sa.true())).add_cte(recorded))

    def run(self, connection: sa.Connection, params: dict, now: datetime) -> sa.Row | None:
        """The changed row, or None if no row matched the UPDATE; raises TokenNoLongerValid
        when the token is no longer valid (on PostgreSQL nothing is changed then)."""
        if connection.dialect.name != "postgresql":
            row = connection.execute(self.update, params).first()
            if row is not None:
                audit(connection, self.action, self.object_type, row.id, row._mapping[self.label])
                if self.webhook is not None:
                    emit_webhook_event(connection, token_ids()[0], self.webhook,
                                       {name: row._mapping[name] for name in self.webhook_fields})
            return row
        account_id, token_id = token_ids()
        if self.webhook is not None:
            params = {**params, **statement_params(account_id, self.webhook, now)}
        row = connection.execute(self.one_statement, {**params, "by_token_id": token_id,
                                                      "address": request.remote_addr, "at": now}).first()
        if row is None:
            raise TokenNoLongerValid
        if self.webhook is not None and row.webhook_message_ids:
            queue_after_commit(list(row.webhook_message_ids))
        return row if row.id is not None else None


class AuditedBulkUpdate:
    """An ``UPDATE … RETURNING`` of any number of rows of ``table``, an audit record for each
    row it changed and their webhook messages, written only while the request's token is
    still valid: three statements whatever the number of rows, on either database (the
    UPDATE; one ``INSERT … SELECT`` of the audit records, which reads the token as
    :data:`AUDIT` does and raises TokenNoLongerValid when it finds it no longer valid; one
    outbox INSERT, :func:`emit_webhook_events`). When it changed no row, the token is read
    instead (:data:`TOKEN_CHECK`). Run it in the write's transaction.
    """

    def __init__(self, update: sa.Update, table: sa.Table, action: str, object_type: str, label: str,
                 webhook: str | None = None, webhook_fields: tuple[str, ...] = ()) -> None:
        self.update = update
        self.webhook, self.webhook_fields = webhook, webhook_fields
        self.audit = AuditEvent.__table__.insert().from_select(AUDIT_COLUMNS, (
            sa.select(*_audit_values(_tokens, sa.literal(action, sa.String), sa.literal(object_type, sa.String),
                                     table.c.id, sa.func.substr(table.c[label], 1, LABEL_LENGTH)))
            # The rows by id, in the token's account; not by an equality of the accounts: from
            # it PostgreSQL derives table.account_id = :by_account_id and may read all of the
            # account's rows by the prefix of an index.
            .join_from(_tokens, table, sa.and_(in_id_list(table.c.id, sa.bindparam("audited_ids", type_=sa.Text)),
                                               table.c.account_id.is_not_distinct_from(_tokens.c.account_id)))
            .where(*TOKEN_STILL_VALID).order_by(table.c.id)
            .with_for_update(read=True, of=_tokens)  # see TOKEN_STILL_VALID
        )).execution_options(preserve_rowcount=True)

    def run(self, connection: sa.Connection, params: dict, now: datetime) -> list[sa.Row]:
        """The changed rows; raises TokenNoLongerValid when the token is no longer valid
        (the caller rolls the write back)."""
        rows = connection.execute(self.update, params).all()
        if not rows:
            check_token(connection, now)  # no audit INSERT to check it with
            return rows
        account_id, token_id = token_ids()
        recorded = connection.execute(self.audit, {
            "by_account_id": account_id, "by_token_id": token_id, "address": request.remote_addr, "at": now,
            "audited_ids": json.dumps([row.id for row in rows])}).rowcount
        if recorded != len(rows):
            raise TokenNoLongerValid
        if self.webhook is not None:
            fields, mappings = self.webhook_fields, (row._mapping for row in rows)
            emit_webhook_events(connection, account_id, self.webhook,
                                [{name: mapping[name] for name in fields} for mapping in mappings])
        return rows
