"""The dashboard audit log's page position: a signed cursor naming one record of the list
(its ``created_at`` and id) and the way to go from it (older or newer records).

The log is read newest first, ordered by (created_at, id): a page is the records just
before or after a position, which an index finds at any depth, where a page number would
have the database count and skip every record before it. The cursor is signed with a key
derived from the app's secret and bound to the account and the filters it was made for, so
an edited, truncated or foreign cursor is refused (:class:`BadCursor`) rather than read.
No Flask, no database: the caller gives the key and the list it is on.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta

OLDER = "o"  # the records after this one, newest first (rel="next")
NEWER = "n"  # the records before this one (rel="prev")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# direction, created_at in microseconds since the epoch, id, the signature (base64url, 22 characters)
_SHAPE = re.compile(r"([on])([0-9]{1,18})\.([0-9]{1,18})\.([A-Za-z0-9_-]{22})")
_PURPOSE = b"usetix dashboard audit log cursor"


class BadCursor(ValueError):
    """A cursor this list did not make: edited, truncated, another account's or another filter's."""


@dataclasses.dataclass(frozen=True)
class Position:
    direction: str  # OLDER or NEWER
    created_at: datetime  # aware UTC
    id: int


def _key(secret: str | bytes) -> bytes:
    secret = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(secret, _PURPOSE, hashlib.sha256).digest()


def _signature(key: bytes, body: str, scope: str) -> str:
    mac = hmac.new(key, f"{scope}\n{body}".encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def encode(secret: str | bytes, scope: str, position: Position) -> str:
    """The cursor of ``position`` on the list named by ``scope`` (its account and filters)."""
    micros = (position.created_at - _EPOCH) // timedelta(microseconds=1)
    body = f"{position.direction}{micros}.{position.id}"
    return f"{body}.{_signature(_key(secret), body, scope)}"


def decode(secret: str | bytes, scope: str, cursor: str) -> Position:
    """The position in ``cursor``, if this list (``scope``) made it; else :class:`BadCursor`."""
    match = _SHAPE.fullmatch(cursor)
    if match is None:
        raise BadCursor("not a cursor")
    direction, micros, row_id, signature = match.groups()
    body = f"{direction}{micros}.{row_id}"
    if not hmac.compare_digest(signature, _signature(_key(secret), body, scope)):
        raise BadCursor("not this list's cursor")
    try:
        created_at = _EPOCH + timedelta(microseconds=int(micros))
    except OverflowError:  # only a cursor we signed gets here, and we sign real timestamps
        raise BadCursor("not a timestamp") from None
    return Position(direction, created_at, int(row_id))


def scope(account_id: int, filters: dict[str, object]) -> str:
    """What a cursor is bound to: the account and the filters, in a fixed order."""
    shown = ",".join(f"{name}={'' if value is None else value}" for name, value in sorted(filters.items()))
    return f"account={account_id};{shown}"
