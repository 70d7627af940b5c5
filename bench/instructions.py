"""Instructions per request for each API path, counted by valgrind's callgrind.

Wall-clock figures move with whatever else the machine runs; instruction counts do not.
For each path this runs the app in-process (``bench/inprocess.py``'s WSGI calls) under
callgrind twice, with ``LOW`` and ``HIGH`` requests after a warm-up, and reports
``(count(HIGH) - count(LOW)) / (HIGH - LOW)``: the cost of one steady-state request, free of
start-up. The garbage collector is off (``--gc`` leaves it on, as a server does: on the
read paths the counts agree within 0.1 %), and every token's ``last_used_at`` is pinned in
the future, so no run writes but the write path (``--only write``: a check-in and its undo,
counted as one "request"; not in the default list).

    export USETIX_DATABASE_URL=sqlite:////tmp/usetix-bench/bench.sqlite3 USETIX_SECRET_KEY=...
    export USETIX_API_RATE_LIMIT="1000000000 per minute" USETIX_API_FAILED_AUTH_LIMIT="1000000000 per minute"
    export USETIX_REQUEST_LOG=false BENCH_TWIN_ROUTE=true
    .venv/bin/python bench/instructions.py --tokens /tmp/usetix-bench/tokens.json
    # an older checkout, with its own app factory:
    PYTHONPATH=OLD_TREE .venv/bin/python bench/instructions.py --tokens ... --factory usetix:create_app
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from inprocess import call, path_table, undo_left_check_in  # noqa: E402


def _run(factory: str, tokens_file: str, name: str, count: int, warmup: int, keep_gc: bool) -> None:
    """The measured program: build the app, pin last_used_at, warm up, send ``count`` requests."""
    module, _, attr = factory.partition(":")
    app = getattr(importlib.import_module(module), attr)()
    with open(tokens_file) as f:
        method, path, token, expect = path_table(json.load(f))[name]
    import sqlalchemy as sa

    from usetix.database.engine import db

    with app.app_context():
        db.session.execute(sa.text("UPDATE api_tokens SET last_used_at = :t"),
                           {"t": (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None)})
        db.session.commit()
    undo_left_check_in(app, method, path, token)
    for _ in range(warmup):
        status, _ = call(app, method, path, token)
        assert status == expect, (name, status)
    if not keep_gc:
        gc.disable()
    for _ in range(count):
        call(app, method, path, token)


def _instructions(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv],
                       check=True, capture_output=True)
        match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
        return int(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", required=True, help="JSON written by bench/seed.py")
    parser.add_argument("--factory", default="twin:create_bench_app", help="module:callable that builds the app")
    parser.add_argument("--only", help="comma-separated paths (auth,twin,unknown,malformed,post,write)")
    parser.add_argument("--low", type=int, default=100)
    parser.add_argument("--high", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--gc", action="store_true",
                        help="leave the garbage collector on, as in a server (its collections then count)")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # internal: the measured program
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.run:
        _run(options.factory, options.tokens, options.run, options.count, options.warmup, options.gc)
        return 0
    names = (options.only.split(",") if options.only
             else ["auth", "twin", "unknown", "malformed", "post", "restricted", "denied"])
    results = {}
    for name in names:
        base = [sys.executable, __file__, "--tokens", options.tokens, "--factory", options.factory, "--run", name,
                "--warmup", str(options.warmup), *(["--gc"] if options.gc else []), "--count"]
        low, high = _instructions([*base, str(options.low)]), _instructions([*base, str(options.high)])
        results[name] = round((high - low) / (options.high - options.low))
        print(f"{name:>10}: {results[name]:>10,} instructions/request", file=sys.stderr)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
