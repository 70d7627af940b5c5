"""SELECTs for the API's hot path: built with SQLAlchemy, run on the driver's cursor.

SQLAlchemy builds the statement and compiles it, once per dialect. Only the execution skips
its layer (execution context, result metadata, ``Row`` objects); why: docs/performance.md.

Bound values and result columns go through their types' processors for the dialect, as
with SQLAlchemy (on SQLite, datetimes and booleans are text and integers). A
``TypeDecorator``'s own Python step per value is skipped if the statement selects the
column coerced to its implementation type (``type_coerce``). Driver errors are raised as
SQLAlchemy's, and a lost connection is invalidated, as SQLAlchemy would.

SQLAlchemy runs the statement itself (``Connection.execute``: the same SQL, the same rows)
whenever its execution layer is wanted: while a statement-level listener is registered
(``before_cursor_execute``, ``after_cursor_execute``: query counters, Flask-SQLAlchemy's
``SQLALCHEMY_RECORD_QUERIES``, APM hooks, which expect SQLAlchemy's execution context), and
while the engine echoes its SQL (``echo``). :func:`driver_connection` decides, the way
SQLAlchemy decides before each of its events: the ``_has_events`` flags first (a plain
attribute each), the listener lists (dearer) only when either is set. Those flags and
``_echo`` are SQLAlchemy's private attributes: that function is the only place that reads
them, it names the release they were checked against, and tests/app/test_prepared.py fails
when SQLAlchemy changes them. A driver error hides its bound values when the engine's
``hide_parameters`` says so, as SQLAlchemy's own would.
"""

from __future__ import annotations

import operator
import weakref
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import sqlalchemy as sa

from .faults import Fault, mark


class _Compiled(NamedTuple):
    sql: str
    positional: Callable[[Mapping[str, Any]], tuple] | None  # the values in bind order, for a positional paramstyle
    bind_processors: dict[str, Callable[[Any], Any]]
    result_processors: tuple[tuple[int, Callable[[Any], Any]], ...]


# The SQLAlchemy release whose private attributes driver_connection() was checked against
# (setup.cfg pins sqlalchemy<2.1); tests/app/test_prepared.py holds them to what it reads.
SQLALCHEMY_CHECKED = "2.0.58"


def driver_connection(connection: sa.Connection) -> Any | None:
    """The DBAPI connection to run a statement on directly, or None when SQLAlchemy must
    run it: the engine echoes SQL, or a statement-level listener is registered on the
    connection or its engine.

    The one place PreparedSelect reads SQLAlchemy's private attributes, as SQLAlchemy
    2.0 reads them itself (``Connection._echo`` in ``_exec_single_context``,
    ``_has_events`` before dispatching each event); checked against SQLALCHEMY_CHECKED.
    """
    if connection._echo:
        return None
    if connection._has_events or connection.engine._has_events:
        dispatch = connection.dispatch
        if dispatch.before_cursor_execute or dispatch.after_cursor_execute:
            return None
    return connection.connection.dbapi_connection


def _failure(connection: sa.Connection, dbapi_connection: Any, cursor: Any, sql: str, parameters: Any,
             exc: Exception) -> sa.exc.DBAPIError:
    """The driver's ``exc`` as SQLAlchemy would raise it: wrapped, and the connection
    invalidated (and the failure marked LOST, usetix/database/faults.py) when it was lost."""
    dialect = connection.dialect
    lost = dialect.is_disconnect(exc, dbapi_connection, cursor)
    if lost:
        connection.invalidate(exc)
    error = sa.exc.DBAPIError.instance(sql, parameters, exc, dialect.loaded_dbapi.Error,
                                       hide_parameters=connection.engine.hide_parameters,
                                       connection_invalidated=lost, dialect=dialect)
    if lost:
        mark(error, Fault.LOST)
    return error


def _in_order(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple]:
    """The bound values in ``names``' order, as a positional paramstyle takes them."""
    if len(names) == 1:  # itemgetter of one name gives the value itself, not a 1-tuple
        [name] = names
        return lambda params: (params[name],)
    return operator.itemgetter(*names) if names else lambda params: ()


class PreparedSelect:
    """One SELECT, compiled on first use for each dialect, run on a connection's cursor."""

    def __init__(self, statement: sa.Select) -> None:
        self.statement = statement
        # Per dialect instance (each engine has its own): gone with its engine, but for the
        # last one used, kept in _last to spare the weak lookup on every statement.
        self._by_dialect: weakref.WeakKeyDictionary[sa.Dialect, _Compiled] = weakref.WeakKeyDictionary()
        self._last: tuple[sa.Dialect, _Compiled] | None = None

    def _compiled(self, dialect: sa.Dialect) -> _Compiled:
        last = self._last
        if last is not None and last[0] is dialect:
            return last[1]
        entry = self._by_dialect.get(dialect) or self._compile(dialect)
        self._last = (dialect, entry)
        return entry

    def _compile(self, dialect: sa.Dialect) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect)
        binds = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                binds[name] = processor
        results = []
        for index, column in enumerate(self.statement.selected_columns):
            # No driver type code: right for the integers, strings, booleans and datetimes
            # selected here (PostgreSQL's Numeric and Float processors would need one).
            processor = column.type.dialect_impl(dialect).result_processor(dialect, None)
            if processor is not None:
                results.append((index, processor))
        positional = _in_order(tuple(compiled.positiontup)) if compiled.positional else None
        entry = self._by_dialect[dialect] = _Compiled(compiled.string, positional, binds, tuple(results))
        return entry

    def rows(self, connection: sa.Connection, params: Mapping[str, Any]) -> list:
        """The rows, as tuples (lists where a column needed processing; ``Row`` objects
        when they came through SQLAlchemy)."""
        rows, results = self._fetch(connection, params)
        if results and rows:
            rows = [list(row) for row in rows]
            for index, processor in results:
                for row in rows:
                    row[index] = processor(row[index])
        return rows

    def first(self, connection: sa.Connection, params: Mapping[str, Any]) -> Any:
        """The first row, or None (as :meth:`rows`, one row processed: the token's lookup)."""
        rows, results = self._fetch(connection, params)
        if not rows:
            return None
        row = rows[0]
        if results:
            row = list(row)
            for index, processor in results:
                row[index] = processor(row[index])
        return row

    def _fetch(self, connection: sa.Connection, params: Mapping[str, Any]) -> tuple[list, tuple]:
        """The rows as the driver or SQLAlchemy gives them, and the result processors still to apply."""
        dbapi_connection = driver_connection(connection)
        if dbapi_connection is None:
            return connection.execute(self.statement, params).all(), ()
        dialect = connection.dialect
        last = self._last  # _compiled's first test, without its call (every statement of the API)
        compiled = last[1] if last is not None and last[0] is dialect else self._compiled(dialect)
        sql, positional, binds, results = compiled
        if binds:
            params = {name: binds[name](value) if name in binds else value for name, value in params.items()}
        parameters = positional(params) if positional is not None else params
        try:
            cursor = dbapi_connection.cursor()  # SQLite's fails here on a closed connection
        except dialect.loaded_dbapi.Error as exc:
            raise _failure(connection, dbapi_connection, None, sql, parameters, exc) from exc
        try:
            cursor.execute(sql, parameters)
            rows = cursor.fetchall()
        except dialect.loaded_dbapi.Error as exc:
            raise _failure(connection, dbapi_connection, cursor, sql, parameters, exc) from exc
        finally:
            cursor.close()
        return rows, results
