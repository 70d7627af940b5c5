"""Time (and optionally profile) the API paths in-process, without HTTP or gunicorn.

    export USETIX_DATABASE_URL=sqlite:////tmp/usetix-bench/bench.sqlite3 USETIX_SECRET_KEY=$(openssl rand -hex 32)
    export USETIX_API_RATE_LIMIT="1000000000 per minute" USETIX_API_FAILED_AUTH_LIMIT="1000000000 per minute"
    export USETIX_REQUEST_LOG=false BENCH_TWIN_ROUTE=true
    .venv/bin/python bench/seed.py > /tmp/usetix-bench/tokens.json    # a fresh database, once
    .venv/bin/python bench/inprocess.py --tokens /tmp/usetix-bench/tokens.json [--only auth,twin] [--n 5000]
    .venv/bin/python bench/inprocess.py --tokens ... --profile auth [--pyinstrument]
    .venv/bin/python bench/inprocess.py --tokens ... --queries    # SQL statements per path (bench/run.py uses it)

Calls the WSGI app directly, so what it reports is the app's own CPU cost per request
(µs), free of the TCP and load-generator noise of the HTTP benchmark; good for comparing
two versions of the hot path side by side on this shared machine (``PYTHONPATH=OLD_TREE``
runs an older checkout). Under gunicorn the same code costs more per request (colder
caches): use it for differences, and ``bench/run.py`` for the figures.
pyinstrument is not a dependency: install it into a scratch venv to use ``--pyinstrument``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import json
import pstats
import sys
import time
from datetime import UTC, datetime, timedelta

from paths import BATCH_SCANS, PATHS


def environ(method: str, path: str, token: str | None) -> dict:
    env = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000", "HTTP_ACCEPT": "application/json",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }
    if token is not None:
        env["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return env


# The write path's "method": a check-in and then its undo (201, 204), so that each call
# leaves the attendee as it found it. Its figures are for the pair.
CHECK_IN_AND_UNDO = "POST,DELETE"
# The door's: a redeem of the pool's first ticket and its undo (201, 204); a batch of
# BATCH_SCANS scans of the batch pool, each call dated earlier than the last (every scan admitted).
REDEEM_AND_UNDO = "REDEEM"
BATCH = "BATCH"
_door: dict = {}
_batches = itertools.count(1)


def path_table(tokens: dict) -> dict[str, tuple[str, str, str | None, int | tuple[int, int]]]:
    """bench/paths.py's paths with bench/seed.py's ``tokens``: (method, path, token, expected status)."""
    table = {name: (path.method, path.url_path, tokens[path.token_key], path.expected_status)
             for name, path in PATHS.items()}
    table["write"] = (CHECK_IN_AND_UNDO, f"{tokens['checkin_base']}{tokens['checkin_first']}/check_in",
                      tokens["write_token"], (201, 204))
    _door.update(redeem=tokens["redeem_pool"][0], batch=[code for _, code in tokens["batch_pool"][:BATCH_SCANS]])
    table["redeem"] = (REDEEM_AND_UNDO, tokens["redeem_base"], tokens["door_token"], (201, 204))
    table["batch"] = (BATCH, tokens["batch_base"], tokens["door_token"], 200)
    return table


def call(app, method: str, path: str, token: str | None) -> tuple[int | tuple[int, int], bytes]:
    """One request (the write path: its two); the status (statuses) and the (last) body."""
    if method == CHECK_IN_AND_UNDO:
        (checked_in, _), (undone, body) = (_call(app, one, path, token) for one in method.split(","))
        return (checked_in, undone), body
    if method == REDEEM_AND_UNDO:
        attendee_id, code = _door["redeem"]
        admitted, _ = _call(app, "POST", f"{path}/check_ins", token, _json_body({"code": code}))
        undone, body = _call(app, "DELETE", f"{path}/attendees/{attendee_id}/check_in", token)
        return (admitted, undone), body
    if method == BATCH:
        n = next(_batches)
        moment = (datetime.now(UTC) - timedelta(days=1, seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ")
        scans = [{"nonce": f"inprocess-{time.time_ns()}-{i}", "code": code, "scanned_at": moment}
                 for i, code in enumerate(_door["batch"])]
        return _call(app, "POST", f"{path}/check_ins/batch", token, _json_body({"scans": scans}))
    return _call(app, method, path, token)


def _json_body(payload: dict) -> dict:
    body = json.dumps(payload).encode()
    return {"CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}


def undo_left_check_in(app, method: str, path: str, token: str | None) -> None:
    """The write path's attendee not checked in, whatever an interrupted run left (204 or 409)."""
    if method == CHECK_IN_AND_UNDO:
        _call(app, "DELETE", path, token)
    if method == REDEEM_AND_UNDO:
        _call(app, "DELETE", f"{path}/attendees/{_door['redeem'][0]}/check_in", token)


def _call(app, method: str, path: str, token: str | None, extra: dict | None = None) -> tuple[int, bytes]:
    status = []

    def start_response(s, headers, exc_info=None):
        status.append(int(s.split()[0]))

    env = environ(method, path, token)
    if extra:
        env.update(extra)
    body = b"".join(app(env, start_response))
    return status[0], body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", required=True, help="JSON written by bench/seed.py")
    parser.add_argument("--n", type=int, default=5000, help="requests per path and repetition (5000)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; the best is reported (3)")
    parser.add_argument("--only", help="comma-separated paths (auth,twin,unknown,malformed,post,write,redeem,batch)")
    parser.add_argument("--profile", metavar="PATH", help="profile this path with cProfile instead of timing")
    parser.add_argument("--pyinstrument", action="store_true", help="with --profile: use pyinstrument")
    parser.add_argument("--queries", action="store_true",
                        help="print, as JSON, the SQL statements one steady-state request of each path sends")
    options = parser.parse_args()
    with open(options.tokens) as f:
        table = path_table(json.load(f))
    from twin import create_bench_app

    app = create_bench_app()
    if "BENCH_TWIN_ACCOUNT_ID" not in app.config:
        table.pop("twin")
    for name, (method, path, token, expect) in table.items():
        undo_left_check_in(app, method, path, token)
        status, body = call(app, method, path, token)
        if status != expect:
            print(f"{name}: expected {expect}, got {status}: {body[:200]!r}", file=sys.stderr)
            return 1
    if options.queries:
        print(json.dumps({name: _statements(app, *spec[:3]) for name, spec in table.items()}))
        return 0
    if options.profile:
        method, path, token, _ = table[options.profile]
        if options.pyinstrument:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0001)
            profiler.start()
            for _ in range(options.n):
                call(app, method, path, token)
            profiler.stop()
            print(profiler.output_text(unicode=True, color=False, show_all=False))
        else:
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(options.n):
                call(app, method, path, token)
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
        return 0
    names = options.only.split(",") if options.only else list(table)
    for name in names:
        method, path, token, _ = table[name]
        best = min(_timed(app, method, path, token, options.n) for _ in range(options.repeat))
        unit = {CHECK_IN_AND_UNDO: "check-in + undo", REDEEM_AND_UNDO: "redeem + undo",
                BATCH: f"batch of {BATCH_SCANS}"}.get(method, "request")
        print(f"{name:>10}: {best * 1e6:7.1f} µs/{unit}  ({1 / best:7.0f} a second on one core, no HTTP)")
    return 0


def _statements(app, method: str, path: str, token: str | None) -> list[str]:
    import sqlalchemy as sa

    from usetix.database.engine import db

    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(" ".join(statement.split()))

    with app.app_context():
        engine = db.engine
    call(app, method, path, token)  # the steady state: last_used_at was just written
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        call(app, method, path, token)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    return seen


def _timed(app, method, path, token, n) -> float:
    t0 = time.process_time()
    for _ in range(n):
        call(app, method, path, token)
    return (time.process_time() - t0) / n


if __name__ == "__main__":
    sys.exit(main())
