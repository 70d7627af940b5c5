"""Count the SQL statements an app sends, with SQLAlchemy's ``before_cursor_execute`` event."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from usetix.database.engine import db


@contextmanager
def recorded_queries(app) -> Iterator[list[str]]:
    """Yields a list that fills with every statement ``app``'s engine executes meanwhile."""
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
