"""Telling a database that cannot be reached, or a connection lost before anything was
committed, apart from a COMMIT whose outcome nobody knows.

SQLAlchemy reports each failure of the driver to ``handle_error`` listeners with where it
happened; this module's listener marks the exception it raises with what the failure
means for the request:

- ``UNREACHABLE``: no connection could be had (the server refuses or is down, a SQLite
  file cannot be opened). Nothing ran.
- ``LOST``: the connection was lost while a statement ran. The server rolls back a
  transaction whose connection ends before its COMMIT, so nothing of this transaction was
  kept (an API write commits once, at its end: ``usetix/blueprints/api/transaction.py``).
- ``INTERRUPTED``: the connection was lost with no statement running, that is during a
  COMMIT (or a ROLLBACK, told apart only by what ran before). The server may have
  committed before the connection went: the outcome is unknown, and the request must
  not say that nothing was written.

The web layer answers the first two with a 503 and ``Retry-After`` and the third with a
500 that says so (``usetix/web/database_failures.py``).
"""

from __future__ import annotations

from enum import Enum

import sqlalchemy as sa
from sqlalchemy.engine import Engine, ExceptionContext

# The attribute of an exception that carries its Fault (set here, read by fault_of).
_MARK = "usetix_database_fault"
# How far down a chain of exceptions to look (a chain can loop through __context__).
_CHAIN_LIMIT = 16


class Fault(Enum):
    UNREACHABLE = "unreachable"
    LOST = "lost"
    INTERRUPTED = "interrupted"


def classify(context: ExceptionContext) -> Fault | None:
    """What a failure reported to ``handle_error`` means for the request, or None for a
    failure of a statement on a live connection (a constraint, a lock, a bug)."""
    if context.connection is None:
        # Connecting (or the pool's own ping) failed: no Connection exists yet.
        return Fault.UNREACHABLE
    if not context.is_disconnect:
        return None
    return Fault.LOST if context.statement is not None else Fault.INTERRUPTED


def mark_faults(engine: Engine) -> None:
    """Mark each exception ``engine``'s connections raise with its :class:`Fault`."""

    @sa.event.listens_for(engine, "handle_error")
    def mark_failure(context: ExceptionContext) -> None:
        fault = classify(context)
        if fault is not None and context.sqlalchemy_exception is not None:
            mark(context.sqlalchemy_exception, fault)


def mark(exc: BaseException, fault: Fault) -> None:
    """Say what ``exc`` means for the request: for failures raised past SQLAlchemy's own
    reporting (the prepared SELECTs on the driver's cursor, usetix/database/prepared.py)."""
    setattr(exc, _MARK, fault)


def fault_of(exc: BaseException) -> Fault | None:
    """The fault behind ``exc``: its own mark, or that of an exception raised while it was
    handled. A COMMIT interrupted anywhere in the chain wins: a rollback or a release that
    fails next (the server still down) must not turn "unknown" into "nothing was written"."""
    first = None
    current: BaseException | None = exc
    for _ in range(_CHAIN_LIMIT):
        if current is None:
            break
        fault = getattr(current, _MARK, None)
        if fault is Fault.INTERRUPTED:
            return fault
        first = first or fault
        current = current.__cause__ or current.__context__
    return first


def check_reachable(engine: Engine) -> None:
    """One ``SELECT 1`` on a connection of ``engine``: raises the (marked) failure when the
    database cannot be reached."""
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1").close()
