"""Round trips to PostgreSQL, counted with libpq's own trace: for the bench's report and the
test that holds the authenticated read to its count (docs/performance.md).

A round trip is one exchange with the server, so it is one ``ReadyForQuery`` message:
``BEGIN``, ``ROLLBACK`` and a liveness ping count like any statement.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

T = TypeVar("T")


def count_round_trips(engine: sa.Engine, request: Callable[[], T]) -> tuple[int, T]:
    """Round trips to ``engine``'s server while ``request()`` runs, and what it returned.

    Every connection checked out meanwhile is traced from its checkout on, ahead of the
    app's own checkout listeners (the liveness ping counts), through the pool's public events.
    """
    traced = []

    def trace(dbapi_connection, _record, _proxy) -> None:
        dbapi_connection.pgconn.trace(log.fileno())
        traced.append(dbapi_connection)

    with tempfile.TemporaryFile("w+") as log:
        sa.event.listen(engine, "checkout", trace, insert=True)
        try:
            result = request()
        finally:
            sa.event.remove(engine, "checkout", trace)
            for dbapi_connection in traced:
                if not dbapi_connection.closed:
                    dbapi_connection.pgconn.untrace()  # flushes libpq's stream
        log.seek(0)
        return sum(1 for line in log if "\tReadyForQuery\t" in line), result
