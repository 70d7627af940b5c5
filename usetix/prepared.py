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
through ``Connection.execute`` instead: the same SQL, the same rows.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import sqlalchemy as sa


class _Compiled(NamedTuple):
    sql: str
    order: tuple[str, ...] | None  # bind names in order, for a positional paramstyle
    bind_processors: dict[str, Callable[[Any], Any]]
    result_processors: tuple[tuple[int, Callable[[Any], Any]], ...]


class PreparedSelect:
    """One SELECT, compiled on first use for each dialect, run on a connection's cursor."""

    def __init__(self, statement: sa.Select) -> None:
        self.statement = statement
        # Per dialect instance (each engine has its own): gone with its engine.
        self._by_dialect: weakref.WeakKeyDictionary[sa.Dialect, _Compiled] = weakref.WeakKeyDictionary()

    def _compiled(self, dialect: sa.Dialect) -> _Compiled:
        try:
            return self._by_dialect[dialect]
        except KeyError:
            pass
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
        order = tuple(compiled.positiontup) if compiled.positional else None
        entry = self._by_dialect[dialect] = _Compiled(compiled.string, order, binds, tuple(results))
        return entry

    def rows(self, connection: sa.Connection, params: Mapping[str, Any]) -> list:
        """The rows, as tuples (lists where a column needed processing; ``Row`` objects
        when they came through SQLAlchemy)."""
        dispatch = connection.dispatch
        if dispatch.before_cursor_execute or dispatch.after_cursor_execute:
            return connection.execute(self.statement, params).all()
        dialect = connection.dialect
        sql, order, binds, results = self._compiled(dialect)
        if binds:
            params = {name: binds[name](value) if name in binds else value for name, value in params.items()}
        parameters = tuple(params[name] for name in order) if order is not None else params
        cursor = connection.connection.cursor()
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
