"""Database failures that say what happened to the request, instead of a bare 500.

- A lock held past the wait (SQLite): on SQLite one connection writes at a time; a write
  that waits longer than the busy timeout (``SQLITE_BUSY_TIMEOUT_MS``) for another's lock
  fails with "database is locked". Nothing is wrong with the request or the data: 503.
- The database cannot be reached, or the connection was lost before the request's
  transaction committed (``usetix/database/faults.py``): nothing was written, so 503.
- The connection was lost during a COMMIT: the server may or may not have kept the
  write, and nobody can tell the client which. A 503 would say "retry", and a client that
  retries a POST without an ``Idempotency-Key`` could then create its attendee twice; so
  this is a 500 (``outcome_unknown`` in the API) that says the outcome is unknown: look
  before retrying, or retry with the same ``Idempotency-Key``, which replays the first
  answer if the write was kept.

Each is answered as any error is (JSON or our page, with our headers); the 503s carry
``Retry-After``. SECURITY.md's table says what a client sees.
"""

from __future__ import annotations

import contextlib
import logging

import sqlalchemy as sa
from flask import Flask, request
from werkzeug.exceptions import InternalServerError, ServiceUnavailable

from ..database.engine import db
from ..database.faults import Fault, fault_of
from ..database.locks import lock_timed_out
from .errors import handle_http_error
from .responses import error_response

RETRY_AFTER_SECONDS = 5
BUSY = "The database is busy with another write; nothing was changed. Retry in a few seconds."
UNREACHABLE = "The database cannot be reached for a moment; nothing was changed. Retry in a few seconds."
OUTCOME_UNKNOWN = ("The connection to the database was lost while this change was being saved: it may or may not "
                   "have been saved. Check before retrying, or retry with the same Idempotency-Key.")


class DatabaseUnavailable(ServiceUnavailable):
    name = "Unavailable"  # the API's code for a moment's outage: "unavailable", as the leak report's 503


class OutcomeUnknown(InternalServerError):
    description = OUTCOME_UNKNOWN


logger = logging.getLogger("usetix.database")


def answer_database_failure(exc: sa.exc.SQLAlchemyError):
    if lock_timed_out(exc):
        logger.warning("a write found the database locked past the busy timeout; answered 503")
        _roll_back_session()
        return handle_http_error(DatabaseUnavailable(BUSY, retry_after=RETRY_AFTER_SECONDS))
    fault = fault_of(exc)
    if fault is None:
        raise exc  # any other failure stays what it was: logged, and our 500
    _roll_back_session()
    cause = getattr(exc, "orig", None) or exc  # the driver's words, not SQLAlchemy's (they hold parameters)
    reason = type(cause).__name__ + ": " + str(cause).strip().partition("\n")[0]
    if fault is Fault.INTERRUPTED:
        logger.error("the database connection was lost during a COMMIT (%s); %s %s answered 500, outcome unknown",
                     reason, request.method, request.path)
        if request.wants_json:
            return error_response(500, "outcome_unknown", OUTCOME_UNKNOWN)
        return handle_http_error(OutcomeUnknown())
    logger.error("the database %s (%s); answered 503",
                 "cannot be reached" if fault is Fault.UNREACHABLE else "connection was lost before a commit", reason)
    return handle_http_error(DatabaseUnavailable(UNREACHABLE, retry_after=RETRY_AFTER_SECONDS))


def _roll_back_session() -> None:
    """End the dashboard's failed transaction before the page reads anything; on a lost
    connection the request's teardown discards it (usetix/database/connection.py)."""
    if db.session.registry.has():
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            db.session.rollback()


def register_errorhandler(app: Flask) -> None:
    # SQLAlchemyError, not only OperationalError: a lost connection may surface as an
    # InterfaceError, or as an error of the next use of the connection it invalidated.
    app.register_error_handler(sa.exc.SQLAlchemyError, answer_database_failure)
