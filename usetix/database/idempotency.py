"""Idempotency keys: a retried write gets the first answer again instead of running twice.

Stripe's semantics. A key belongs to one token and lives 24 hours in the database, so it
holds across workers and hosts. The first request with a key *claims* it (a row with no
status, committed at once, so a concurrent twin finds it), runs, and *completes* it in the
same transaction as its own writes: either both are kept or neither. An answer of a write
that did not happen (4xx, 5xx) *releases* the key instead, and so does a failure.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .models import IdempotencyKey

KEEP_FOR = timedelta(hours=24)
# A claim this old without an answer belongs to a request that died (its worker was killed):
# the key may be claimed again. Far above any request's run time (gunicorn's timeout is 30 s).
ABANDONED_AFTER = timedelta(minutes=2)
# Each new claim sweeps expired keys with this probability (usetix purge-idempotency-keys too).
SWEEP_PROBABILITY = 0.01
# Visible ASCII, as a header carries it: room for a UUID, a hash or a client's own scheme.
MAX_KEY_LENGTH = 255

_keys = IdempotencyKey.__table__


class Refusal(Enum):
    REUSED = "reused"  # the key was used for another request
    IN_FLIGHT = "in_flight"  # the first request with the key is still running


@dataclass(frozen=True)
class Claim:
    """A claimed key's row. SQLite may give a deleted row's id again (this table is not
    AUTOINCREMENT), so the row is named by its id and its claim time together: a request
    whose claim was taken from it as abandoned never completes or releases the next one's."""

    id: int
    created_at: datetime

    def row(self) -> sa.ColumnElement[bool]:
        return sa.and_(_keys.c.id == self.id, _keys.c.created_at == self.created_at)


@dataclass(frozen=True)
class Replay:
    status: int
    headers: dict[str, str]
    body: bytes


def valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_LENGTH and key.isascii() and key.isprintable() and " " not in key


def fingerprint(method: str, path: str, body: bytes, if_match: str | None = None,
                if_none_match: str | None = None) -> str:
    """What makes two requests "the same": method, path with query string, body bytes, and
    the conditions they set (If-Match, If-None-Match), which can change their outcome."""
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), body, _condition(if_match), _condition(if_none_match)):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _condition(header: str | None) -> bytes:
    # An absent header is told apart from an empty one.
    return b"" if header is None else b"=" + header.encode("latin-1")


def storable(status: int) -> bool:
    """Only a write that happened (2xx) is kept: its retry must get its answer, not run it
    twice. Every other answer changed nothing, and its retry may rightly go otherwise (an
    object edited since a 412, a conflict resolved, a 5xx), so the retry runs again."""
    return 200 <= status < 300


def claim(connection: sa.Connection, token_id: int, key: str, request_fingerprint: str,
          now: datetime) -> Claim | Replay | Refusal:
    """Claim ``key`` for this request (committed at once), or say why not: the stored answer
    to replay, or a refusal. Ends any transaction open on ``connection`` first."""
    connection.commit()
    for _ in range(3):  # a claim that expires or is released between our two statements: try again
        try:
            claim_id = connection.execute(
                sa.insert(_keys).values(token_id=token_id, key=key, fingerprint=request_fingerprint,
                                        created_at=now, expires_at=now + KEEP_FOR).returning(_keys.c.id)
            ).scalar_one()
            if random.random() < SWEEP_PROBABILITY:
                purge(connection, now)
            connection.commit()
            return Claim(claim_id, now)
        except IntegrityError:  # the unique (token_id, key): someone has it
            connection.rollback()
        row = connection.execute(
            sa.select(_keys.c.id, _keys.c.fingerprint, _keys.c.status, _keys.c.response_headers,
                      _keys.c.response_body, _keys.c.created_at, _keys.c.expires_at)
            .where(_keys.c.token_id == token_id, _keys.c.key == key)
        ).first()
        connection.commit()
        if row is None:
            continue
        if row.expires_at <= now or (row.status is None and row.created_at <= now - ABANDONED_AFTER):
            connection.execute(sa.delete(_keys).where(_keys.c.id == row.id, _keys.c.created_at == row.created_at))
            connection.commit()
            continue
        if row.fingerprint != request_fingerprint:
            return Refusal.REUSED
        if row.status is None:
            return Refusal.IN_FLIGHT
        return Replay(row.status, orjson.loads(row.response_headers), row.response_body)
    return Refusal.IN_FLIGHT


def complete(connection: sa.Connection, claimed: Claim, status: int, headers: dict[str, str], body: bytes) -> None:
    """Store the answer, in the caller's transaction (which then commits it with its writes)."""
    connection.execute(
        sa.update(_keys).where(claimed.row())
        .values(status=status, response_headers=orjson.dumps(headers).decode(), response_body=body)
    )


def release(connection: sa.Connection, claimed: Claim) -> None:
    """Give the key up (the answer is not to be replayed), in a transaction of its own."""
    connection.rollback()
    connection.execute(sa.delete(_keys).where(claimed.row(), _keys.c.status.is_(None)))
    connection.commit()


def purge(connection: sa.Connection, now: datetime) -> int:
    """Delete the expired keys; returns how many. The caller commits."""
    return connection.execute(sa.delete(_keys).where(_keys.c.expires_at <= now)).rowcount
