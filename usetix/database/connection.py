"""The request's own database connection, for the API's Core queries.

One per request, opened on first use and closed (rolled back if nothing committed) when
the request ends; like flaskr's ``get_db``. The ORM's ``db.session`` serves the pages.

On a database server a GET's or HEAD's connection is in autocommit: a read is its
statements and nothing else, no ``BEGIN`` and ``ROLLBACK`` round trips around them. On
PostgreSQL so is the connection of a write view marked :func:`autocommit_write` (the API's
``write_view``) when the view writes one statement (a check-in: its change and its audit
record, atomic on their own) or when the request carries an Idempotency-Key (its claim
commits on its own anyway, and the write then gets a transaction,
:func:`transaction_from_now`, so that its stored answer commits with it). Any other write
may be several statements that commit together, so its connection keeps the engine's
transactions, from its first statement (the token's lookup) on. SQLite starts no
transaction for a SELECT anyway, and its writes keep theirs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Flask, current_app, g, request

from .engine import connect_without_ping, db

_KEY = "db_connection"
# Requests that only read (RFC 9110's safe methods the API serves): their statements run alone.
READS_ALONE = frozenset({"GET", "HEAD"})
# The mark of a write view function (autocommit_write): whether its write is one statement.
_AUTOCOMMIT_WRITE = "usetix_autocommit_write"
logger = logging.getLogger("usetix.database")
T = TypeVar("T")
F = TypeVar("F", bound=Callable)
P = TypeVar("P")


def autocommit_write(view: F, one_statement: bool) -> F:
    """Mark ``view`` (the function the route calls) as a write whose request's connection is
    in autocommit on PostgreSQL: always if it writes ``one_statement`` there, else when the
    request carries an Idempotency-Key (the view calls :func:`transaction_from_now` after
    claiming it)."""
    setattr(view, _AUTOCOMMIT_WRITE, one_statement)
    return view


def _in_autocommit(connection: sa.Connection) -> bool:
    dialect = connection.dialect.name
    if dialect == "sqlite":
        return False
    req = request._get_current_object()
    if req.method in READS_ALONE:
        return True
    if dialect != "postgresql":
        return False
    one_statement = getattr(current_app.view_functions.get(req.endpoint), _AUTOCOMMIT_WRITE, None)
    return one_statement is not None and (one_statement or "Idempotency-Key" in req.headers)


def transaction_from_now(connection: sa.Connection) -> None:
    """The engine's transactions for ``connection``'s next statements, if it was in
    autocommit (no round trip: psycopg sends ``BEGIN`` with the next statement). Call it
    with no transaction open (after a commit)."""
    if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        # The server's default, which the engine keeps (it sets none; the pool resets to it).
        connection.execution_options(isolation_level=connection.default_isolation_level)


def request_connection() -> sa.Connection:
    """This request's connection, opened on first use (for a read or a one-statement write,
    in autocommit on a server)."""
    request_globals = g._get_current_object()  # one proxy read: every API request passes here
    connection = request_globals.get(_KEY)
    if connection is None:
        connection = _keep(request_globals, db.engine.connect())
    return connection


def _keep(request_globals: Any, connection: sa.Connection) -> sa.Connection:
    """``connection`` as this request's (for a read, in autocommit on a server)."""
    if _in_autocommit(connection):  # the dialect first: on SQLite the request proxy is not read at all
        connection.execution_options(isolation_level="AUTOCOMMIT")
    setattr(request_globals, _KEY, connection)
    return connection


def first_read(read: Callable[[sa.Connection, P], T], params: P) -> T:
    """``read(connection, params)`` on this request's connection. As the request's first
    statement (the bearer token's lookup) it is the connection's liveness check: the
    connection is checked out without a ping, and a read that finds it lost (the server
    dropped it while it sat in the pool) runs once more on a new one, checked out with a
    ping, which replaces the pool's other lost connections too. What ``pool_pre_ping``
    does, without its round trip on every request."""
    request_globals = g._get_current_object()
    connection = request_globals.get(_KEY)
    if connection is not None:
        return read(connection, params)  # not the first statement: nothing to retry
    connection = _keep(request_globals, connect_without_ping(db.engine))
    try:
        return read(connection, params)
    except sa.exc.DBAPIError as error:
        if not error.connection_invalidated:
            raise
    close_request_connection()
    return read(request_connection(), params)


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
