"""SELECTs for the API's hot path: built with SQLAlchemy, run on the driver's cursor.

SQLAlchemy builds the statement and compiles it, once per dialect. Only the execution skips
its layer (execution context, result metadata, ``Row`` objects). For the API's token
lookup and list pages that layer cost several times what SQLite takes to answer: 23 µs
against 4 µs for the token, 100 µs against 52 µs for a page of 25 (bench/RESULTS.md).

Bound values and result columns go through their types' processors for the dialect, as
with SQLAlchemy; only SQLite has any here (datetimes and booleans are text and integers
there). A ``TypeDecorator``'s own Python step per value is skipped if the statement selects
the column coerced to its implementation type (``type_coerce``). Listeners on
``before_cursor_execute`` and ``after_cursor_execute`` still see every statement: the tests
and the benchmark count queries with them.
"""

from __future__ import annotations

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
        self._by_dialect: dict[sa.Dialect, _Compiled] = {}

    def _compiled(self, dialect: sa.Dialect) -> _Compiled:
        try:
            return self._by_dialect[dialect]
        except KeyError:
            compiled = self.statement.compile(dialect=dialect)
            processors = {}
            for name, bind in compiled.binds.items():
                processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if processor is not None:
                    processors[name] = processor
            order = tuple(compiled.positiontup) if compiled.positional else None
            results = []
            for index, column in enumerate(self.statement.selected_columns):
                processor = column.type.dialect_impl(dialect).result_processor(dialect, None)
                if processor is not None:
                    results.append((index, processor))
            entry = self._by_dialect[dialect] = _Compiled(compiled.string, order, processors, tuple(results))
            return entry

    def rows(self, connection: sa.Connection, params: Mapping[str, Any]) -> list:
        """The rows, as tuples (lists where a column needed processing)."""
        sql, order, processors, results = self._compiled(connection.dialect)
        if processors:
            params = {name: processors[name](value) if name in processors else value
                      for name, value in params.items()}
        parameters = tuple(params[name] for name in order) if order is not None else params
        cursor = connection.connection.cursor()
        try:
            dispatch = connection.dispatch
            for listener in dispatch.before_cursor_execute:
                sql, parameters = listener(connection, cursor, sql, parameters, None, False)
            cursor.execute(sql, parameters)
            for listener in dispatch.after_cursor_execute:
                listener(connection, cursor, sql, parameters, None, False)
            rows = cursor.fetchall()
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
