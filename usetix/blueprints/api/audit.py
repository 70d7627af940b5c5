"""The audit record of an API write, written in the write's own transaction, and only
while the request's token is still valid."""

from __future__ import annotations

import sqlalchemy as sa
from flask import request

from ...database.models import ApiToken, AuditEvent, UTCDateTime, utcnow
from .authentication import token_ids

_tokens = ApiToken.__table__
_at = sa.bindparam("at", type_=UTCDateTime)
# The token's description and tier as they are now, copied in, if the token is still valid
# now: the write's own transaction checks the token again, at no extra statement. A write
# whose token was revoked or expired while it ran (a slow body) inserts no audit record,
# and is rolled back and refused (TokenNoLongerValid). Built once (docs/performance.md).
AUDIT = AuditEvent.__table__.insert().from_select(
    ["account_id", "actor", "action", "token_id", "token_description", "token_tier", "client_address",
     "created_at", "object_type", "object_id", "object_label"],
    sa.select(_tokens.c.account_id, _tokens.c.description + " (API token)",
              sa.bindparam("action_name", type_=sa.String), _tokens.c.id, _tokens.c.description, _tokens.c.tier,
              sa.bindparam("address", type_=sa.String), _at,
              sa.bindparam("kind", type_=sa.String), sa.bindparam("target_id", type_=sa.Integer),
              sa.bindparam("label", type_=sa.String))
    .where(_tokens.c.id == sa.bindparam("by_token_id"), _tokens.c.account_id == sa.bindparam("by_account_id"),
           _tokens.c.revoked_at.is_(None), sa.or_(_tokens.c.expires_at.is_(None), _tokens.c.expires_at > _at)),
).execution_options(preserve_rowcount=True)  # else SQLAlchemy keeps no rowcount of an INSERT


class TokenNoLongerValid(Exception):
    """The request's token was revoked or expired after it was authenticated."""


def audit(connection: sa.Connection, action: str, object_type: str, object_id: int, label: str) -> None:
    """Record this write with its token (as it is now), object, time and client address;
    raises TokenNoLongerValid when the token is no longer valid."""
    account_id, token_id = token_ids()
    recorded = connection.execute(AUDIT, {
        "by_account_id": account_id, "by_token_id": token_id, "action_name": action, "address": request.remote_addr,
        "at": utcnow(), "kind": object_type, "target_id": object_id, "label": label[:200],
    }).rowcount
    if not recorded:
        raise TokenNoLongerValid
