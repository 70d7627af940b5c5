"""Telling a lock held too long apart from other database failures."""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa

_LOCK_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


class WriterQueueTimedOut(sa.exc.SQLAlchemyError):
    """The host's other API writers held SQLite's writer lock (usetix/database/writer_queue.py)
    past the busy timeout: as SQLite's "database is locked", without waiting it out again."""


def lock_timed_out(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite refusing a statement because another connection held a
    lock for longer than the busy timeout ("database is locked"), or the writer queue in
    front of it timing out: the database works, and the same request may well succeed a
    moment later."""
    if isinstance(exc, WriterQueueTimedOut):
        return True
    if not isinstance(exc, sa.exc.OperationalError):
        return False
    code = getattr(exc.orig, "sqlite_errorcode", None)  # extended codes keep the primary in the low byte
    return code is not None and code & 0xFF in _LOCK_CODES
