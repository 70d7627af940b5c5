"""The request's own database connection, for the API's Core queries.

One per request, opened on first use and closed (rolled back if nothing committed) when
the request ends; like flaskr's ``get_db``. The ORM's ``db.session`` serves the pages.

On a database server the connection starts in autocommit: a read is its statements and
nothing else, no ``BEGIN`` and ``ROLLBACK`` round trips around them. A write asks for its
transaction first (:func:`begin_writes`, which the API's ``write_view`` calls). SQLite
starts no transaction for a SELECT anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import sqlalchemy as sa
from flask import Flask, g

from .engine import db

_KEY = "db_connection"
logger = logging.getLogger("usetix.database")


def request_connection() -> sa.Connection:
    """This request's connection, opened on first use (in autocommit on a server)."""
    request_globals = g._get_current_object()  # one proxy read: every API request passes here
    connection = request_globals.get(_KEY)
    if connection is None:
        connection = db.engine.connect()
        if connection.dialect.name != "sqlite":
            connection.execution_options(isolation_level="AUTOCOMMIT")
        setattr(request_globals, _KEY, connection)
    return connection


def begin_writes(connection: sa.Connection) -> None:
    """From here on, ``connection``'s statements run in transactions of the engine's own
    isolation level, each ended by a commit or a rollback (the reads before ran alone)."""
    if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        return
    if connection.in_transaction():
        connection.rollback()  # SQLAlchemy's record of the reads' statements (the server had none)
    connection.execution_options(isolation_level=connection.default_isolation_level)


def close_request_connection(exc: BaseException | None = None) -> None:
    connection = g._get_current_object().pop(_KEY, None)
    if connection is not None:
        try:
            connection.close()  # rolls back whatever was not committed, returns it to the pool
        except sa.exc.SQLAlchemyError:
            _discard(connection.invalidate, connection.close)


def remove_session(exc: BaseException | None = None) -> None:
    """End the request's ORM session (Flask-SQLAlchemy's own teardown then has nothing
    left to do), without raising."""
    if not db.session.registry.has():
        return  # this request never used the ORM (the API): making a session just to end it costs
    session = db.session()
    connection = None
    try:
        if session.in_transaction():
            # Known before closing: a close that fails has already let go of its transaction.
            connection = session.connection()
        db.session.remove()
    except sa.exc.SQLAlchemyError:
        _discard(connection.invalidate if connection is not None else session.invalidate, db.session.remove)


def _discard(invalidate: Callable[[], None], close: Callable[[], None]) -> None:
    """Teardown runs after the answer was made and logged: a rollback that fails there (the
    server went away) must not turn that answer into the WSGI server's bare 500. Nothing
    was left to keep: the connection is dropped from the pool, and the error logged."""
    logger.exception("ending a request's database work failed (a rollback, or a lost connection); "
                     "its connection is discarded")
    try:
        invalidate()
        close()
    except sa.exc.SQLAlchemyError:
        logger.exception("discarding a failed connection failed too")


def init_app(app: Flask) -> None:
    """Call after ``db.init_app``: teardown functions run in reverse order, so
    :func:`remove_session` runs before Flask-SQLAlchemy's own."""
    app.teardown_request(close_request_connection)
    app.teardown_appcontext(remove_session)
