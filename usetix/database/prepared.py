"""SELECTs for the API's hot path: built with SQLAlchemy, run on the driver's cursor.

SQLAlchemy builds the statement and compiles it, once per dialect. Only the execution skips
its layer (execution context, result metadata, ``Row`` objects). For the API's token
lookup and list pages that layer cost several times what SQLite takes to answer: in-process,
23 µs against 4 µs for the token, 100 µs against 52 µs for a page of 25 (bench/RESULTS.md).

Bound values and result columns go through their types' processors for the dialect, as
with SQLAlchemy (on SQLite, datetimes and booleans are text and integers). A
``TypeDecorator``'s own Python step per value is skipped if the statement selects the
column coerced to its implementation type (``type_coerce``). Driver errors are raised as
SQLAlchemy's, and a lost connection is invalidated, as SQLAlchemy would.

Statement-level listeners (``before_cursor_execute``, ``after_cursor_execute``: the tests'
and the benchmark's query counters, Flask-SQLAlchemy's ``SQLALCHEMY_RECORD_QUERIES``, APM
hooks) expect SQLAlchemy's execution context. While any is registered, the statement runs
through ``Connection.execute`` instead: the same SQL, the same rows. That is checked the
way SQLAlchemy checks before each of its events: the connection's and the engine's
``_has_events`` flags first (a plain attribute each), the listener lists (about 2 µs) only
when either is set.
"""

from __future__ import annotations

import operator
import weakref
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import sqlalchemy as sa


class _Compiled(NamedTuple):
    sql: str
    positional: Callable[[Mapping[str, Any]], tuple] | None  # the values in bind order, for a positional paramstyle
    bind_processors: dict[str, Callable[[Any], Any]]
    result_processors: tuple[tuple[int, Callable[[Any], Any]], ...]


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
        # last one used, kept in _last to spare the weak lookup (0.9 µs) on every statement.
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
        if connection._has_events or connection.engine._has_events:  # as SQLAlchemy checks, cheap
            dispatch = connection.dispatch
            if dispatch.before_cursor_execute or dispatch.after_cursor_execute:
                return connection.execute(self.statement, params).all()
        dialect = connection.dialect
        sql, positional, binds, results = self._compiled(dialect)
        if binds:
            params = {name: binds[name](value) if name in binds else value for name, value in params.items()}
        parameters = positional(params) if positional is not None else params
        cursor = connection.connection.dbapi_connection.cursor()
        try:
            cursor.execute(sql, parameters)
            rows = cursor.fetchall()
        except dialect.loaded_dbapi.Error as exc:
            lost = dialect.is_disconnect(exc, connection.connection.dbapi_connection, cursor)
            if lost:
                connection.invalidate(exc)
            raise sa.exc.DBAPIError.instance(sql, parameters, exc, dialect.loaded_dbapi.Error,
                                             connection_invalidated=lost, dialect=dialect) from exc
        finally:
            cursor.close()
        if results and rows:
            rows = [list(row) for row in rows]
            for index, processor in results:
                for row in rows:
                    row[index] = processor(row[index])
        return rows

    def first(self, connection: sa.Connection, params: Mapping[str, Any]) -> Any:
        rows = self.rows(connection, params)
        return rows[0] if rows else None
