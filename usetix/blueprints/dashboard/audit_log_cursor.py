"""The dashboard audit log's page position: a signed cursor naming one record of the list
(its ``created_at`` and id) and the way to go from it (older or newer records).

The log is read newest first, ordered by (created_at, id): a page is the records just
before or after a position, which an index finds at any depth, where a page number would
have the database count and skip every record before it. The cursor is signed with
itsdangerous (Flask's signing library, as the API's list cursors) under the app's secret,
with the account and the filters it was made for in its salt, so an edited, truncated or
foreign cursor is refused (:class:`BadCursor`) rather than read. No Flask, no database:
the caller gives the key and the list it is on.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from itsdangerous import BadData, URLSafeSerializer

OLDER = "o"  # the records after this one, newest first (rel="next")
NEWER = "n"  # the records before this one (rel="prev")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SALT = "usetix.dashboard.audit-log-cursor:"
MAX_CURSOR_LENGTH = 200


class BadCursor(ValueError):
    """A cursor this list did not make: edited, truncated, another account's or another filter's."""


@dataclasses.dataclass(frozen=True)
class Position:
    direction: str  # OLDER or NEWER
    created_at: datetime  # aware UTC
    id: int


def _serializer(secret: str | bytes, scope: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=_SALT + scope)


def encode(secret: str | bytes, scope: str, position: Position) -> str:
    """The cursor of ``position`` on the list named by ``scope`` (its account and filters)."""
    micros = (position.created_at - _EPOCH) // timedelta(microseconds=1)
    return _serializer(secret, scope).dumps([position.direction, micros, position.id])


def decode(secret: str | bytes, scope: str, cursor: str) -> Position:
    """The position in ``cursor``, if this list (``scope``) made it; else :class:`BadCursor`."""
    serializer = _serializer(secret, scope)
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise BadCursor("not a cursor")
    try:
        direction, micros, row_id = serializer.loads(cursor)
    except (BadData, TypeError, ValueError):
        raise BadCursor("not this list's cursor") from None
    # Only the one spelling we make: base64 lets a last character vary in bits it ignores.
    if serializer.dumps([direction, micros, row_id]) != cursor:
        raise BadCursor("not this list's cursor")
    if direction not in (OLDER, NEWER) or not all(type(n) is int for n in (micros, row_id)):
        raise BadCursor("not a position")
    try:
        created_at = _EPOCH + timedelta(microseconds=micros)
    except OverflowError:  # only a cursor we signed gets here, and we sign real timestamps
        raise BadCursor("not a timestamp") from None
    return Position(direction, created_at, row_id)


def scope(account_id: int, filters: dict[str, object]) -> str:
    """What a cursor is bound to: the account and the filters, in a fixed order."""
    shown = ",".join(f"{name}={'' if value is None else value}" for name, value in sorted(filters.items()))
    return f"account={account_id};{shown}"
