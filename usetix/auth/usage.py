"""Recording when and how each API token is used, best-effort (as indico's protector does).

Every authenticated API request counts one use in this worker's memory: a dict lookup and
an addition. At most once a minute per token the count goes to the database together with
the request's time, client address and User-Agent (``last_used_at``, ``last_used_address``,
``last_used_agent``, ``use_count``), and that write happens after the response has been
sent (``Response.call_on_close``), on a connection of its own with a short lock timeout.
Whatever goes wrong there (a held SQLite write lock, a PostgreSQL row lock, a lost
database) is logged and dropped: recording use never fails or delays the request it records.

The UPDATE is conditional on ``last_used_at`` being a minute old, so several workers
write once a minute between them. A worker that finds the row already written keeps its
count and adds it on a later turn; counts not yet written when a worker stops are lost.
The count is therefore approximate (it can lag, and it never counts a use twice).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

import sqlalchemy as sa

from ..database.models import ApiToken

logger = logging.getLogger("usetix.usage")

# last_used_at is for auditing, not accounting: one write per token per minute is plenty.
RESOLUTION = timedelta(minutes=1)
_RESOLUTION_SECONDS = RESOLUTION.total_seconds()
# How long the write may wait for a lock before it gives up (the request is already answered,
# but a sync worker takes its next request only after this).
LOCK_TIMEOUT_MS = 250
# Longest User-Agent kept (the column's size).
MAX_AGENT = 255

_table = ApiToken.__table__
_WRITE = (
    sa.update(_table)
    .where(_table.c.id == sa.bindparam("token_id"),
           sa.or_(_table.c.last_used_at.is_(None), _table.c.last_used_at <= sa.bindparam("cutoff")))
    .values(last_used_at=sa.bindparam("now"), last_used_address=sa.bindparam("address"),
            last_used_agent=sa.bindparam("agent"), use_count=_table.c.use_count + sa.bindparam("uses"))
)


class UsageRecorder:
    """One per app in each worker process: uses counted in memory, written after responses."""

    def __init__(self, engine_getter) -> None:
        self._engine_getter = engine_getter
        # token id -> [uses not yet written, monotonic time before which this worker does not write]
        self._pending: dict[int, list] = {}
        self._lock = threading.Lock()

    def count(self, token_id: int, stored_last_used: datetime | None, now: datetime) -> bool:
        """Count one use of ``token_id``; True when this request should write the usage.

        ``stored_last_used`` is the naive UTC ``last_used_at`` the token lookup just read
        (so a write by another worker counts too), ``now`` the naive UTC time. The caller
        then hands :meth:`writer`'s callable, made with the request's details, to ``call_on_close``.
        """
        entry = self._pending.get(token_id)
        if entry is None:
            entry = self._pending.setdefault(token_id, [0, 0.0])
        entry[0] += 1  # approximate under threads: += is not atomic, and that is fine here
        if stored_last_used is not None and now - stored_last_used < RESOLUTION:
            return False
        clock = time.monotonic()
        with self._lock:
            if clock < entry[1]:
                return False  # this worker wrote, or tried to, less than a minute ago
            entry[1] = clock + _RESOLUTION_SECONDS
        return True

    def pending(self, token_id: int) -> int:
        """Uses of ``token_id`` counted in this worker and not yet written."""
        entry = self._pending.get(token_id)
        return entry[0] if entry is not None else 0

    def writer(self, token_id: int, now: datetime, address: str | None, agent: str | None):
        """A callable for ``Response.call_on_close`` that writes this token's usage."""
        engine = self._engine_getter()  # needs the app context, which is gone by then
        address = (address or "")[:64] or None
        agent = (agent or "")[:MAX_AGENT] or None
        return lambda: self.write(engine, token_id, now, address, agent)

    def write(self, engine: sa.Engine, token_id: int, now: datetime, address: str | None,
              agent: str | None) -> None:
        """Write the pending uses of ``token_id``; log and keep them on any failure."""
        entry = self._pending.get(token_id)
        with self._lock:
            uses = entry[0] if entry is not None else 0
            if entry is not None:
                entry[0] = 0
        written = False
        try:
            with engine.connect() as connection:
                written = _write(connection, {
                    "token_id": token_id, "now": now, "cutoff": now - RESOLUTION, "address": address,
                    "agent": agent, "uses": uses,
                })
        except Exception as exc:  # best-effort: never let it reach the server
            logger.warning("Usage of token %s not recorded: %s", token_id,
                           type(exc).__name__ + ": " + str(getattr(exc, "orig", None) or exc).splitlines()[0])
        if not written and uses and entry is not None:
            with self._lock:
                entry[0] += uses  # another worker wrote this minute, or the write failed: later


def _write(connection: sa.Connection, params: dict) -> bool:
    previous = None
    if connection.dialect.name == "sqlite":
        # The pooled connection waits 10 s by default (usetix/database/engine.py); not here.
        previous = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {LOCK_TIMEOUT_MS}")
    try:
        if connection.dialect.name == "postgresql":
            # Both end with the transaction.
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'")
            connection.exec_driver_sql(f"SET LOCAL statement_timeout = '{4 * LOCK_TIMEOUT_MS}ms'")
        written = connection.execute(_WRITE, params).rowcount == 1
        connection.commit()
        return written
    finally:
        if previous is not None:  # the connection goes back to the pool as it came
            connection.rollback()
            connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(previous)}")
