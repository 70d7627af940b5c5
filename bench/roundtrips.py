"""Round trips to PostgreSQL per request of each API path, counted with libpq's own trace.

    export USETIX_DATABASE_URL=postgresql+psycopg://USER@HOST/DB USETIX_SECRET_KEY=... (as bench/inprocess.py)
    .venv/bin/python bench/seed.py > /tmp/usetix-bench/tokens-pg.json    # a fresh database, once
    .venv/bin/python bench/roundtrips.py --tokens /tmp/usetix-bench/tokens-pg.json   # JSON: path -> count

A round trip is one exchange with the server: the client sends and waits for the server's
``ReadyForQuery`` (a simple query, or an extended-protocol exchange ending in ``Sync``), so
``BEGIN``, ``ROLLBACK`` and the pool's liveness check count like any statement. Every
connection the app opens is traced (``PGconn.trace``) while one steady-state request of the
path runs (after WARM_UP others: the pool warm, ``last_used_at`` written, the statements
prepared on the server); the count is the
``ReadyForQuery`` messages the server sent, on every connection, during that request and its
``call_on_close`` callbacks. bench/run.py puts the counts in its report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Callable

from inprocess import environ

# Requests before the counted one: the pool's connection made, last_used_at written, and
# every statement past psycopg's prepare_threshold (5): it is then prepared on the server,
# and its first prepared use costs one more round trip (a Parse of its own), once per connection.
WARM_UP = 6
# The paths counted, in the report's order (their requests: _paths)
ROUND_TRIP_PATHS = ("auth", "single", "unknown", "check_in", "undo", "idempotent_check_in")


def _paths(tokens: dict) -> dict[str, tuple[str, str, str, Callable[[], dict]]]:
    attendee = f"{tokens['checkin_base']}{tokens['checkin_first'] + 1}/check_in"
    event = tokens["checkin_base"].removesuffix("/attendees/")
    return {
        "auth": ("GET", "/admin/events", tokens["read_token"], dict),
        "single": ("GET", event, tokens["read_token"], dict),
        "unknown": ("GET", "/admin/events", tokens["unknown_token"], dict),
        "check_in": ("POST", attendee, tokens["write_token"], dict),
        "undo": ("DELETE", attendee, tokens["write_token"], dict),
        # A new key each time: the claim, the write and the stored answer (not a replay).
        "idempotent_check_in": ("POST", attendee, tokens["write_token"],
                                lambda: {"HTTP_IDEMPOTENCY_KEY": uuid.uuid4().hex}),
    }


def _call(app, method: str, path: str, token: str, extra: dict | None = None) -> tuple[int, bytes]:
    """One request, closed as a WSGI server closes it (its ``call_on_close`` callbacks run)."""
    status = []
    env = environ(method, path, token)
    env.update(extra or {})
    response = app(env, lambda s, headers, exc_info=None: status.append(int(s.split()[0])))
    try:
        body = b"".join(response)
    finally:
        response.close()
    return status[0], body


def _steady_state(app, engine, method: str, path: str, token: str, extra: Callable[[], dict],
                  undo: bool) -> tuple[int, list[int]]:
    """The round trips of a request after WARM_UP others, and all their statuses. A write's attendee
    is set before each as the request needs it (checked in for an undo, out for a
    check-in), and left checked out, as the write path's pool starts."""
    statuses = []

    def send():
        statuses.append(_call(app, method, path, token, extra())[0])

    def prepare():
        if method != "GET":
            _call(app, "POST" if undo else "DELETE", path, token)

    for _ in range(WARM_UP):
        prepare()
        send()
    prepare()
    from usetix.database.round_trips import count_round_trips

    count, _ = count_round_trips(engine, send)
    if method != "GET":
        _call(app, "DELETE", path, token)
    return count, statuses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", required=True, help="JSON written by bench/seed.py")
    options = parser.parse_args()
    if not os.environ.get("USETIX_DATABASE_URL", "").startswith("postgresql"):
        print("bench/roundtrips.py counts PostgreSQL's round trips: USETIX_DATABASE_URL must be postgresql+psycopg://",
              file=sys.stderr)
        return 2
    with open(options.tokens) as f:
        paths = _paths(json.load(f))
    from twin import create_bench_app

    from usetix.database.engine import db

    app = create_bench_app()
    with app.app_context():
        engine = db.engine
    counts = {}
    for name in ROUND_TRIP_PATHS:
        counts[name], statuses = _steady_state(app, engine, *paths[name], name == "undo")
        if len(set(statuses)) != 1 or statuses[0] not in (200, 201, 204, 401):
            print(f"{name}: unexpected statuses {statuses}", file=sys.stderr)
            return 1
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
