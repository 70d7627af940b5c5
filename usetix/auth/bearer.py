"""Bearer tokens: screen the header, look the token up, decide what it may do.

:func:`screen_credentials` needs no query and no Flask: the credential gate calls it
before Flask runs, the bearer hook when the gate did not. :func:`authenticate` is the
whole policy for one request; the API's hook only turns its answer into a response.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import NamedTuple

import sqlalchemy as sa

from ..core import token_format
from ..core.authorization import parse_authorization
from ..database.prepared import PreparedSelect
from ..models import ApiToken
from .principal import Principal
from .refusals import (
    MISSING_TOKEN,
    REVOKED_TOKEN,
    UNKNOWN_TOKEN,
    Refusal,
    insufficient_scope,
    malformed_header,
    malformed_token,
    other_scheme,
)

READ_METHODS = frozenset({"GET", "HEAD"})
# last_used_at is for auditing, not accounting: one write per token per minute is plenty.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenGrant(NamedTuple):
    """What authentication learns of a presented token (``g.principal.token``)."""

    id: int
    account_id: int
    tier: str
    revoked: bool
    last_used_at: datetime | None  # naive UTC, as stored


# Built once; everything that varies per request is a bind parameter (usetix/database/prepared.py).
_tokens = ApiToken.__table__.c
TOKEN_BY_DIGEST = PreparedSelect(
    sa.select(_tokens.id, _tokens.account_id, _tokens.tier, _tokens.revoked_at.is_not(None),
              sa.type_coerce(_tokens.last_used_at, sa.DateTime))
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


def authenticate(screened: str | Refusal, method: str, connect: Callable[[], sa.Connection]) -> Principal | Refusal:
    """Who this request is (its account and token), or why it is refused. ``screened`` is
    :func:`screen_credentials`' answer; only a digest costs a query (on ``connect()``)."""
    if isinstance(screened, Refusal):
        return screened
    row = TOKEN_BY_DIGEST.first(connect(), {"digest": screened})
    if row is None:
        return UNKNOWN_TOKEN
    token = TokenGrant._make(row)
    if token.revoked:
        return REVOKED_TOKEN
    if token.tier == "read" and method not in READ_METHODS:
        return insufficient_scope(method)
    return Principal(token.account_id, token)


def use_is_stale(token: TokenGrant, now: datetime) -> bool:
    """Whether ``token``'s last use is old enough to be written again."""
    return token.last_used_at is None or now.replace(tzinfo=None) - token.last_used_at >= LAST_USED_RESOLUTION


def record_use(connection: sa.Connection, token: TokenGrant, now: datetime) -> None:
    """Write ``last_used_at``; conditional, so concurrent workers write once between them."""
    table = ApiToken.__table__
    connection.execute(
        sa.update(table)
        .where(table.c.id == token.id,
               sa.or_(table.c.last_used_at.is_(None), table.c.last_used_at <= now - LAST_USED_RESOLUTION))
        .values(last_used_at=now)
    )
    connection.commit()
