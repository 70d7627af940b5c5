"""A database lock held past the wait: our 503, with Retry-After, instead of a 500.

On SQLite one connection writes at a time; a write that waits longer than the busy
timeout (``SQLITE_BUSY_TIMEOUT_MS``) for another's lock fails with "database is locked".
Nothing is wrong with the request or the data, so every write, the API's and the
dashboard's, answers 503 (JSON or our page, as any error) and may be retried.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Flask
from werkzeug.exceptions import ServiceUnavailable

from ..database.engine import db
from ..database.locks import lock_timed_out
from .errors import handle_http_error

RETRY_AFTER_SECONDS = 5
BUSY = "The database is busy with another write; nothing was changed. Retry in a few seconds."


class DatabaseBusy(ServiceUnavailable):
    name = "Unavailable"  # the API's code for a moment's outage: "unavailable", as the leak report's 503

logger = logging.getLogger("usetix.database")


def answer_database_busy(exc: sa.exc.OperationalError):
    if not lock_timed_out(exc):
        raise exc  # any other failure stays what it was: logged, and our 500
    logger.warning("a write found the database locked past the busy timeout; answered 503")
    if db.session.registry.has():  # the dashboard's failed transaction, before the page reads anything
        db.session.rollback()
    return handle_http_error(DatabaseBusy(BUSY, retry_after=RETRY_AFTER_SECONDS))


def register_errorhandler(app: Flask) -> None:
    app.register_error_handler(sa.exc.OperationalError, answer_database_busy)
