"""Rate-limit counters in the app's own database, shared by every worker and host.

The login throttle must hold exactly however many gunicorn workers and hosts serve the
app. With Redis configured (``USETIX_RATELIMIT_STORAGE_URL``) Redis counts it; without,
the counters the workers share are the database's: one row per window (key, count,
expiry) in ``rate_limit_counters``, incremented by one atomic upsert
(``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``, on SQLite and PostgreSQL alike), so
two workers counting at once can never both read the same count. Every call is a short
transaction of its own on the engine's pool, outside the request's session.

Times are Python's ``time.time()``, as the ``limits`` library reckons windows (and as
freezegun moves them in tests); hosts are expected to keep their clocks in sync (NTP).
Expired rows are deleted in bounded batches by the worker that counts next (a batch at
most once a minute per process while there is no backlog).

Registered with ``limits`` under its own scheme, ``usetix-database://``; the storage needs
the app's engine, which ``usetix.ratelimit`` passes as the ``engine`` option.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time

import sqlalchemy as sa
from limits.storage import Storage
from sqlalchemy.dialects import postgresql, sqlite

from ..database.models import RateLimitCounter

logger = logging.getLogger("usetix.ratelimit")

SCHEME = "usetix-database"
_table = RateLimitCounter.__table__
_MAX_KEY = _table.c.key.type.length


def _upsert(insert) -> sa.Insert:
    """Count ``amount`` against ``key``: a new window when none is live, else the live one."""
    statement = insert(_table).values(key=sa.bindparam("key"), count=sa.bindparam("amount"),
                                      expires_at=sa.bindparam("expires_at"))
    expired = _table.c.expires_at <= sa.bindparam("now")
    # Both databases evaluate every SET expression against the row as it was.
    return statement.on_conflict_do_update(index_elements=[_table.c.key], set_={
        "count": sa.case((expired, statement.excluded.count), else_=_table.c.count + statement.excluded.count),
        "expires_at": sa.case((expired, statement.excluded.expires_at), else_=_table.c.expires_at),
    }).returning(_table.c.count)


_UPSERTS = {"postgresql": _upsert(postgresql.insert), "sqlite": _upsert(sqlite.insert)}
_LIVE = sa.select(_table.c.count, _table.c.expires_at).where(_table.c.key == sa.bindparam("key"),
                                                             _table.c.expires_at > sa.bindparam("now"))
_EXPIRED_BATCH = sa.delete(_table).where(_table.c.key.in_(
    sa.select(_table.c.key).where(_table.c.expires_at <= sa.bindparam("now")).limit(sa.bindparam("batch"))
))


def _stored_key(key: str) -> str:
    """Keys are short (the login keys are digests); anything longer is stored as its digest."""
    if len(key) <= _MAX_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class DatabaseStorage(Storage):
    STORAGE_SCHEME = [SCHEME]  # limits registers the scheme when this class is defined
    SWEEP_SECONDS = 60.0
    SWEEP_BATCH = 1000

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, *, engine: sa.Engine | None = None,
                 **options: float | str | bool):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        if engine is None:
            raise ValueError(f"{SCHEME}:// counts in the app's database: pass its engine as the engine option")
        if engine.dialect.name not in _UPSERTS:
            raise ValueError(f"{SCHEME}:// supports SQLite and PostgreSQL, not {engine.dialect.name}")
        self.engine = engine
        self._upsert = _UPSERTS[engine.dialect.name]
        self._sweep_lock = threading.Lock()
        self._next_sweep = 0.0

    @property
    def base_exceptions(self) -> type[Exception]:
        return sa.exc.SQLAlchemyError

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        with self.engine.begin() as connection:
            count = connection.scalar(self._upsert, {"key": _stored_key(key), "amount": amount,
                                                     "expires_at": now + expiry, "now": now})
        if now >= self._next_sweep:
            try:
                self.sweep(now)
            except sa.exc.SQLAlchemyError:  # the count stands; the next sweep tries again
                logger.warning("rate-limit counters: sweeping expired rows failed", exc_info=True)
        return int(count)

    def get(self, key: str) -> int:
        row = self._live(key)
        return 0 if row is None else int(row.count)

    def get_expiry(self, key: str) -> float:
        now = time.time()
        row = self._live(key, now)
        return now if row is None else float(row.expires_at)

    def check(self) -> bool:
        try:
            with self.engine.connect() as connection:  # the table itself: the login throttle needs it
                connection.execute(sa.select(_table.c.key).where(_table.c.key == "").limit(1)).first()
        except sa.exc.SQLAlchemyError:
            return False
        return True

    def reset(self) -> int:
        with self.engine.begin() as connection:
            return connection.execute(sa.delete(_table)).rowcount

    def clear(self, key: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(sa.delete(_table).where(_table.c.key == _stored_key(key)))

    def sweep(self, now: float | None = None) -> int:
        """Delete one batch of expired counters; returns how many went. A full batch
        brings the next sweep forward to the next count, so a backlog drains a batch per
        request without holding up any one of them."""
        if not self._sweep_lock.acquire(blocking=False):
            return 0  # another thread of this process is at it
        try:
            now = time.time() if now is None else now
            with self.engine.begin() as connection:
                deleted = connection.execute(_EXPIRED_BATCH, {"now": now, "batch": self.SWEEP_BATCH}).rowcount
            self._next_sweep = now if deleted >= self.SWEEP_BATCH else now + self.SWEEP_SECONDS
            return deleted
        finally:
            self._sweep_lock.release()

    def _live(self, key: str, now: float | None = None):
        with self.engine.connect() as connection:
            return connection.execute(_LIVE, {"key": _stored_key(key),
                                              "now": time.time() if now is None else now}).first()
