"""The benchmark's app: Usetix plus what exists only for measuring it, never in production.

gunicorn serves ``twin:app`` (``--pythonpath bench``), and ``bench/inprocess.py`` calls
:func:`create_bench_app`. On top of ``usetix.create_app()``, from environment variables:

- ``BENCH_TWIN_ROUTE``: ``GET /admin/bench-twin/events``, the very work of the API's
  ``GET /admin/events`` for account ``BENCH_TWIN_ACCOUNT_ID``, with no authentication at
  all; the benchmark compares the two to see what authentication costs.
- ``BENCH_STATEMENT_LOG``: a file that gets one line per UPDATE, INSERT or DELETE the app
  sends (process, time, rows it changed, statement, and for a ``last_used_at`` update a tab
  and its parameters as JSON), so the benchmark can count those writes and read the times
  written. Reads are not logged. Any engine listener makes the API's prepared SELECTs
  ask SQLAlchemy's listener lists (usetix/database/prepared.py), so ``bench/run.py`` turns
  this on only for its memory check, not for the timed rounds.
"""

from __future__ import annotations

import json
import logging
import os
import time

import sqlalchemy as sa
from flask import Flask, Response, current_app

from usetix import create_app
from usetix.auth.policy import public
from usetix.blueprints.api.events import EVENTS
from usetix.database.engine import db

# Under "api.", so the app's JSON URL map holds it beside the endpoint it mirrors.
TWIN_ENDPOINT = "api.bench_twin_events"

_WRITES = ("UPDATE", "INSERT", "DELETE")
LAST_USED_UPDATE = "UPDATE api_tokens SET last_used_at"


def create_bench_app() -> Flask:
    app = create_app()
    if os.environ.get("BENCH_TWIN_ROUTE"):
        app.config["BENCH_TWIN_ACCOUNT_ID"] = int(os.environ.get("BENCH_TWIN_ACCOUNT_ID", "1"))
        app.add_url_rule("/admin/bench-twin/events", endpoint=TWIN_ENDPOINT, view_func=public(twin_events),
                         methods=["GET"])
        # Not app.logger: creating it adds Flask's handler, which would print every request's log line twice.
        logging.getLogger(__name__).warning(
            "BENCH_TWIN_ROUTE is on: /admin/bench-twin/events serves account %s's events "
            "without authentication (benchmarks only)", app.config["BENCH_TWIN_ACCOUNT_ID"])
    path = os.environ.get("BENCH_STATEMENT_LOG")
    if path:
        with app.app_context():
            # after_execute, not a cursor-level event: those would send the API's hot SELECTs
            # through SQLAlchemy's execution path (usetix/database/prepared.py).
            sa.event.listen(db.engine, "after_execute", _statement_logger(path))
    return app


def twin_events() -> Response:
    """``GET /admin/events`` minus authentication: the same list, for a configured account."""
    return EVENTS.response(current_app.config["BENCH_TWIN_ACCOUNT_ID"])


def _statement_logger(path: str):
    def log_writes(conn, clauseelement, multiparams, params, execution_options, result):
        context = result.context
        statement = " ".join(context.statement.split())
        if statement[:6].upper() not in _WRITES:
            return
        written = ""
        if statement.startswith(LAST_USED_UPDATE):  # only this one's values: others may hold secrets
            first = context.parameters[0]
            written = json.dumps(list(first.values() if isinstance(first, dict) else first), default=str)
        line = f"{os.getpid()} {time.time():.3f} {result.rowcount} {statement}\t{written}\n"
        with open(path, "a", encoding="utf-8") as log:  # rare: last_used_at is written once a minute
            log.write(line)

    return log_writes


if __name__ != "__main__":  # gunicorn's twin:app
    app = create_bench_app()
