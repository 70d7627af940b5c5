"""Bearer tokens: screen the header, look the token up, decide what it may do.

:func:`screen_credentials` needs no query and no Flask: the credential gate calls it
before Flask runs, the bearer hook when the gate did not. :func:`authenticate` is the
whole policy for one request; the API's hook only turns its answer into a response.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from ..core import token_format
from ..core.authorization import parse_authorization
from ..database.models import ApiToken, utcnow
from ..database.prepared import PreparedSelect
from .principal import Principal, TokenGrant
from .refusals import (
    MISSING_TOKEN,
    REVOKED_TOKEN,
    UNKNOWN_TOKEN,
    Refusal,
    expired_token,
    insufficient_scope,
    malformed_header,
    malformed_token,
    missing_permission,
    other_scheme,
)

READ_METHODS = frozenset({"GET", "HEAD"})


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)


def naive_utc(now: datetime) -> datetime:
    """An aware time as the naive UTC the token query reads (its stored form).

    Arithmetic, not ``now.replace(tzinfo=None)`` (docs/performance.md).
    """
    return _NAIVE_EPOCH + (now - _EPOCH)


@lru_cache(maxsize=1024)  # per expiring token, on every one of its answers
def iso_utc(stored: datetime) -> str:
    """A stored (naive UTC) time as ISO 8601 with a Z, to the second."""
    return stored.replace(microsecond=0).isoformat() + "Z"


# Built once; everything that varies per request is a bind parameter (usetix/database/prepared.py).
_tokens = ApiToken.__table__.c
TOKEN_BY_DIGEST = PreparedSelect(
    sa.select(_tokens.id, _tokens.account_id, _tokens.tier, _tokens.revoked_at.is_not(None),
              sa.type_coerce(_tokens.last_used_at, sa.DateTime), sa.type_coerce(_tokens.expires_at, sa.DateTime),
              _tokens.events_permission, _tokens.attendees_permission, _tokens.check_in_permission,
              _tokens.webhooks_permission, _tokens.event_ids)
    .where(_tokens.digest == sa.bindparam("digest"))
)


def screen_credentials(authorization: str | None) -> str | Refusal:
    """The digest to look up for this ``Authorization`` header, or the refusal it earns
    without one: no bearer credentials, a broken header, a token of the wrong shape or
    checksum."""
    credential = parse_authorization(authorization)
    problem = credential.problem
    if problem is not None:
        if problem == "missing":
            return MISSING_TOKEN
        if problem == "scheme":
            return other_scheme(credential.detail)
        return malformed_header(credential.detail)
    try:
        return token_format.digest(token_format.parse(credential.token))
    except token_format.MalformedToken as exc:
        return malformed_token(str(exc))


def authenticate(screened: str | Refusal, method: str,
                 run: Callable[[Callable[[sa.Connection, dict], Any], dict], Any],
                 required: str | None = None) -> Principal | Refusal:
    """Who this request is (its account and token), or why it is refused. ``screened`` is
    :func:`screen_credentials`' answer; only a digest costs a query (``run(read, params)``
    runs ``read(connection, params)``), and that one query also brings the expiry (a token
    is refused from its ``expires_at`` second on; the clock is read only for a token that
    expires), the permissions and the event restriction. ``required`` is the scope the
    operation needs (None: any token may call it): checked after the tier, which keeps its 401."""
    if isinstance(screened, Refusal):
        return screened
    row = run(TOKEN_BY_DIGEST.first, {"digest": screened})
    if row is None:
        return UNKNOWN_TOKEN
    token = tuple.__new__(TokenGrant, row)  # TokenGrant._make(row) without its Python call (every API request)
    if token.revoked:
        return REVOKED_TOKEN
    if token.expires_at is not None and naive_utc(utcnow()) >= token.expires_at:
        return expired_token(iso_utc(token.expires_at))
    if token.tier == "read" and method not in READ_METHODS:
        return insufficient_scope(method)
    if required is not None and required not in token.scopes:
        return missing_permission(required)
    return Principal(token.account_id, token)

