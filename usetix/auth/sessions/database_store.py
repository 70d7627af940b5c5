"""Sessions in the app's own database (the ``server_sessions`` table)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from ...database.engine import db
from ...database.models import ServerSession
from .store import failures_as_unavailable


class DatabaseSessionStore:
    """Sessions in the app's own database, on their own short transactions (never mixed
    with the request's unit of work in ``db.session``). No request sweeps the table:
    ``usetix purge-sessions`` (cron) deletes expired rows in bounded batches."""

    table = ServerSession.__table__

    def load(self, key: str, now: datetime) -> tuple[str, datetime] | None:
        t = self.table
        with failures_as_unavailable(sa.exc.SQLAlchemyError), db.engine.connect() as conn:
            row = conn.execute(sa.select(t.c.data, t.c.expires_at).where(t.c.key == key, t.c.expires_at > now)).first()
        return (row.data, row.expires_at) if row else None

    def create(self, key: str, data: str, expires_at: datetime) -> None:
        with failures_as_unavailable(sa.exc.SQLAlchemyError), db.engine.begin() as conn:
            conn.execute(sa.insert(self.table).values(key=key, data=data, expires_at=expires_at))

    def update(self, key: str, data: str, expires_at: datetime, now: datetime) -> bool:
        """Rewrite a live record; False (and nothing written) when it is gone or expired."""
        t = self.table
        with failures_as_unavailable(sa.exc.SQLAlchemyError), db.engine.begin() as conn:
            return conn.execute(
                sa.update(t).where(t.c.key == key, t.c.expires_at > now).values(data=data, expires_at=expires_at)
            ).rowcount == 1

    def delete(self, key: str) -> None:
        with failures_as_unavailable(sa.exc.SQLAlchemyError), db.engine.begin() as conn:
            conn.execute(sa.delete(self.table).where(self.table.c.key == key))

    def check(self) -> bool:
        """Whether the table answers a read (for /healthz: every login needs it)."""
        try:
            with db.engine.connect() as conn:
                conn.execute(sa.select(self.table.c.key).where(self.table.c.key == "").limit(1)).first()
        except sa.exc.SQLAlchemyError:
            return False
        return True
    def still_stored(self, key: str, now: datetime) -> bool:
        """Whether the live record is still there, read in ``db.session``'s transaction (the
        one exception to the rule above) with its row locked: a logout (DELETE) cannot commit
        between this check and the caller's commit. On SQLite the caller has written first,
        so its transaction holds the database's write lock, which a logout waits for too."""
        t = self.table
        return db.session.execute(
            sa.select(t.c.key).where(t.c.key == key, t.c.expires_at > now).with_for_update()
        ).first() is not None

    def purge(self, now: datetime, batch_size: int) -> int:
        """Delete expired rows, ``batch_size`` per transaction, so no lock is held long."""
        t = self.table
        batch = sa.select(t.c.key).where(t.c.expires_at <= now).limit(batch_size)
        total = 0
        while True:
            with failures_as_unavailable(sa.exc.SQLAlchemyError), db.engine.begin() as conn:
                deleted = conn.execute(sa.delete(t).where(t.c.key.in_(batch))).rowcount
            total += deleted
            if deleted < batch_size:
                return total
