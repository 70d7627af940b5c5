#!/usr/bin/env python3
"""`make bench`: load-test the JSON API's hot path under gunicorn, beside the shared peer apps.

    .venv/bin/python bench/run.py                  # full run with the peers
    .venv/bin/python bench/run.py --rounds 3       # more rounds, better medians on a shared machine
    .venv/bin/python bench/run.py --quick          # smoke run: no peers, short windows, small memory check
    .venv/bin/python bench/run.py --scale --postgres URL   # the scale bench only (bench/scale.py)

Three modules do the work:

- bench/harness.py: the glue to the shared load harness (``../shared/bench-peers``, or
  ``BENCH_PEERS_DIR``): wrk, the peers' venv and data, server start and stop, the
  quiet-machine wait, wrk runs with per-status tally and CPU accounting, alternating rounds;
- bench/paths.py: what our app is measured on: authenticated ``GET /admin/events``
  (``usetix``), the unknown, malformed-token and read token's POST 401s, the
  unauthenticated twin, the write path (check-in and undo), the same read, unknown token
  and write on PostgreSQL with ``--postgres`` (beside the harness's PostgreSQL peers), the
  request log on (``usetix_logged``) and an older tree (``--before``); the SQL statements
  per path and, on PostgreSQL, the round trips; worker memory and ``last_used_at`` writes
  under a last stretch of authenticated load;
- bench/report.py: the report: the targets with their ratios, the harness's tables, the checks;
- bench/scale.py (``--scale``, instead of the load rounds): lists, syncs and the audit log on
  an event of up to a million attendees and an account of a million audit records.
- bench/soak.py (``--soak-minutes N``, off by default; ``--soak-only`` for the soak alone):
  minutes of mixed load on a throwaway PostgreSQL as shipped, then a worker killed and
  PostgreSQL restarted under load, with its own section in the report.

Our database is seeded fresh under /tmp by ``bench/seed.py`` and deleted afterwards (a
``--postgres`` scratch database is dropped). Every process the run starts is stopped at
the end, also on Ctrl-C, SIGTERM or error; every step has a time bound.
bench/RESULTS.md holds the latest committed run; docs/performance.md says why the paths are fast.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import functools
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import sqlalchemy as sa
from harness import HOST, LoadRunner, load_harness
from paths import (
    DEFAULT_PORT,
    PATHS,
    PG_PATHS,
    ROOT,
    Database,
    OurApp,
    app_environment,
    round_trips_per_path,
    scratch_postgres,
    seed,
    statements_per_path,
)
from report import Report, render_scale, render_soak, run_metadata
from scale import run_scale
from soak import SOAK_PORT, soak


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="rounds, order alternating between them (2)")
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per app and path (10)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds before each measurement (2)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers, ours and the peers' (2)")
    parser.add_argument("--max-busy", type=float, default=10.0, help="quiet check: wait while the machine is busier")
    parser.add_argument("--quiet-wait", type=float, default=30.0, help="quiet check: wait at most this long (s)")
    parser.add_argument("--no-peers", action="store_true", help="our app only (no ratios to the peers)")
    parser.add_argument("--rss-requests", type=int, default=100_000, help="requests for the memory check (100000)")
    parser.add_argument("--soak-seconds", type=int, default=150,
                        help="the memory check lasts at least this long, for the last_used_at writes (150)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: no peers, 1 round, 3 s windows, 1 s warm-up, 20k-request memory check "
                             "of at least 65 s")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"our app's port on {HOST} ({DEFAULT_PORT})")
    parser.add_argument("--peers-dir", type=Path,
                        default=Path(os.environ.get("BENCH_PEERS_DIR", ROOT.parent / "shared" / "bench-peers")),
                        help="the shared load harness (BENCH_PEERS_DIR; ../shared/bench-peers)")
    parser.add_argument("--venv", default=os.environ.get("BENCH_VENV", "/tmp/benchvenv"), help="the peers' venv")
    parser.add_argument("--data-dir", default="/tmp/bench-data", help="the peers' data")
    parser.add_argument("--log-dir", default="/tmp/bench-logs", help="server logs")
    parser.add_argument("--no-install", action="store_true", help="never apt-get install wrk")
    parser.add_argument("--md-out", default="/tmp/usetix-bench.md", help="also write the report here")
    parser.add_argument("--json-out", default="/tmp/usetix-bench.json", help="raw measurements as JSON")
    parser.add_argument("--keep-data", action="store_true", help="keep the seeded database (and its tokens)")
    parser.add_argument("--sqlite-synchronous", metavar="LEVEL", type=str.upper, choices=("NORMAL", "FULL", "EXTRA"),
                        help="our app with USETIX_SQLITE_SYNCHRONOUS=LEVEL "
                             "(NORMAL by default; FULL syncs every commit)")
    parser.add_argument("--postgres", metavar="URL", default=os.environ.get("BENCH_POSTGRES_URL"),
                        help="also measure the read, unknown-token and write paths on this PostgreSQL server "
                             "(postgresql+psycopg://USER@HOST:PORT/DB; BENCH_POSTGRES_URL), beside the harness's "
                             "PostgreSQL peers (its --db both: ceiling_pg, drf_pg, flask_baseline_pg) in the same "
                             "rounds; scratch databases are created there and dropped at the end")
    parser.add_argument("--before", type=Path, metavar="TREE",
                        help="also measure an older checkout of this repository (e.g. `git archive REV | tar -x`) "
                             "on the authenticated and unknown-token paths, as `usetix_before`")
    scale = parser.add_argument_group("the scale bench (bench/scale.py)")
    scale.add_argument("--scale", action="store_true",
                       help="run the scale bench instead of the load rounds: SQLite, and PostgreSQL with --postgres")
    scale.add_argument("--scale-sizes", type=sizes, default=[1_000, 100_000, 1_000_000], metavar="N,N,...",
                       help="PostgreSQL: attendees of each event, the first the reference (1000,100000,1000000)")
    scale.add_argument("--scale-sqlite-sizes", type=sizes, default=[1_000, 100_000], metavar="N,N,...",
                       help="SQLite: the same (1000,100000)")
    scale.add_argument("--scale-audit", type=int, default=1_000_000,
                       help="PostgreSQL: audit records of the account, for the audit log page (1000000; 0: none)")
    scale.add_argument("--scale-sqlite-audit", type=int, default=100_000, help="SQLite: the same (100000)")
    scale.add_argument("--scale-requests", type=int, default=15, help="requests per median (15)")
    scale.add_argument("--scale-walk-seconds", type=float, default=900.0,
                       help="stop a whole walk by rel=next after this long; its deepest page stands for 'deep' (900)")
    parser.add_argument("--soak-minutes", type=int, default=0,
                        help="then a soak of this many load phases on a throwaway PostgreSQL, and the faults "
                             "(bench/soak.py); off (0) by default")
    parser.add_argument("--soak-phase-seconds", type=int, default=60, help="seconds per soak phase (60)")
    parser.add_argument("--soak-fault-seconds", type=int, default=40,
                        help="the soak's fault phase under load: a worker SIGKILLed at a quarter, PostgreSQL "
                             "restarted at half (40; 0 skips it)")
    parser.add_argument("--soak-only", action="store_true", help="the soak alone: no rounds, no peers")
    parser.add_argument("--soak-port", type=int, default=SOAK_PORT, help=f"the soak's port on {HOST} ({SOAK_PORT})")
    options = parser.parse_args(argv)
    if options.soak_only and options.soak_minutes < 1:
        parser.error("--soak-only needs --soak-minutes N (N >= 1)")
    if options.quick:
        options.no_peers, options.rounds, options.duration, options.warmup = True, 1, 3, 1
        options.rss_requests, options.soak_seconds = min(options.rss_requests, 20_000), min(options.soak_seconds, 65)
    if options.rounds < 1 or options.duration < 1 or options.warmup < 0 or options.rss_requests < 2000:
        parser.error("--rounds and --duration must be >= 1, --warmup >= 0, --rss-requests >= 2000")
    return options


def sizes(raw: str) -> list[int]:
    values = [int(x) for x in raw.split(",") if x.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("sizes: whole numbers of at least 1, comma-separated")
    return values


def raise_interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def estimated_seconds(options, peer_count: int) -> float:
    """The rounds' length, without the quiet waits and the memory check."""
    per_app = (options.warmup + options.duration + 2) * 2
    our_paths = len(PATHS) + (len(PG_PATHS) if options.postgres else 0)
    return options.rounds * (peer_count * (per_app + 3) + our_paths * per_app / 2 + 5)


def measure_everything(runner: LoadRunner, options, work: Path, sqlite: Database, postgres: Database | None,
                       peers_python: str | None, cleanup: contextlib.ExitStack) -> tuple[dict, dict | None, str, list]:
    """Seed, count statements, run the rounds and the memory check: the run's meta, memory
    check and report."""
    harness = runner.harness
    harness.log(f"seeding {work / 'bench.sqlite3'}")
    seed(sqlite, work / "tokens.json")
    if postgres:
        harness.log("seeding a scratch database on the PostgreSQL server (--postgres)")
        seed(postgres, work / "tokens-pg.json")
    statements = statements_per_path(sqlite.env, work / "tokens.json")
    round_trips = round_trips_per_path(postgres.env, work / "tokens-pg.json") if postgres else {}
    peers = [] if options.no_peers else runner.peer_targets(peers_python, options.postgres, cleanup)
    for target in peers:
        if harness.port_open(target.host, target.port):
            raise harness.BenchError(f"port {target.port} is already in use")
    if harness.port_open(HOST, options.port):
        raise harness.BenchError(f"port {options.port} is already in use (--port)")
    harness.log(f"{options.rounds} round(s), ~{estimated_seconds(options, len(peers)) / 60:.0f} min "
                "plus the memory check and quiet waits")
    app = OurApp(runner, options, sqlite, postgres)
    meta = run_metadata(harness, options, runner.wrk_path, peers_python, app.argv)
    if runner.postgres_peers_info:  # as the harness's --db both reports them
        meta["versions"].update(psycopg=runner.postgres_peers_info["psycopg"],
                                postgresql=runner.postgres_peers_info["server_version"])
    order = [(peer.name, lambda round_number, slot, peer=peer: runner.run_peer(peer, round_number, slot))
             for peer in peers]
    statement_log = work / "writes.log"
    memory = None
    try:
        runner.run_rounds(order + app.servers_in_order())
        memory = app.memory_check(statement_log)
    except KeyboardInterrupt as exc:
        harness.log(f"interrupted ({exc or 'Ctrl-C'}): stopping servers, reporting what was measured")
        runner.failures.append("run interrupted; the tables hold what was measured before")
    writes = [line.split(" ", 3) for line in statement_log.read_text().splitlines()] \
        if statement_log.exists() else []
    report = Report(harness, runner.results, runner.failures, app.twin_pairs, options)
    return meta, memory, report.render(meta, statements, round_trips, memory, writes), app.twin_pairs


def run_scale_bench(options, harness) -> int:
    """``--scale``: bench/scale.py on SQLite, and on a scratch PostgreSQL database with --postgres."""
    runner = LoadRunner(options, harness)
    atexit.register(runner.servers.stop_all)
    os.makedirs(options.log_dir, exist_ok=True)
    if harness.port_open(HOST, options.port):
        raise harness.BenchError(f"port {options.port} is already in use (--port)")
    work = Path(tempfile.mkdtemp(prefix="usetix-scale-"))
    results = []
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(remove_work, harness, work, options.keep_data)
        cleanup.callback(runner.servers.stop_all)
        kinds = [("sqlite", f"sqlite:///{work / 'scale.sqlite3'}", options.scale_sqlite_sizes,
                  options.scale_sqlite_audit)]
        if options.postgres:
            kinds.append(("postgresql", None, options.scale_sizes, options.scale_audit))
        try:
            for kind, url, kind_sizes, audit in kinds:
                with contextlib.ExitStack() as scratch:
                    if url is None:
                        url = scratch.enter_context(scratch_postgres(options.postgres))
                    database = Database(url, app_environment(url))
                    tokens_file = work / f"tokens-{kind}.json"
                    harness.log(f"scale: seeding {kind}")
                    seed(database, tokens_file)
                    results.append(run_scale(runner, options, kind, database, tokens_file, kind_sizes, audit))
        except KeyboardInterrupt as exc:
            harness.log(f"interrupted ({exc or 'Ctrl-C'}): reporting what was measured")
            runner.failures.append("scale run interrupted")
        except (RuntimeError, OSError, sa.exc.SQLAlchemyError) as exc:
            harness.log(f"FAILED scale: {exc}")
            runner.failures.append(f"scale: {exc}")
    report = render_scale(results, runner.failures, options)
    print(report)
    Path(options.md_out).write_text(report + "\n")
    Path(options.json_out).write_text(json.dumps({"scale": results, "failures": runner.failures}, indent=1,
                                                 default=str))
    harness.log(f"report: {options.md_out}, raw numbers: {options.json_out}")
    return 1 if runner.failures else 0


def run_soak_only(options, harness) -> int:
    """``--soak-only``: the soak and its report section, nothing else."""
    runner = LoadRunner(options, harness)
    atexit.register(runner.servers.stop_all)
    runner.ensure_wrk()
    os.makedirs(options.log_dir, exist_ok=True)
    try:
        result = soak(runner, options)
    finally:
        runner.servers.stop_all()
    report = render_soak(result)
    print(report)
    Path(options.md_out).write_text(report + "\n")
    Path(options.json_out).write_text(json.dumps({"soak": result}, indent=1, default=str))
    harness.log(f"report: {options.md_out}, raw numbers: {options.json_out}")
    faults = result.get("faults")
    return 0 if not faults or (faults["creations"]["ok"] and not faults["503_without_retry_after"]) else 1


def run(options, harness) -> int:
    if options.scale:
        return run_scale_bench(options, harness)
    if options.soak_only:
        return run_soak_only(options, harness)
    runner = LoadRunner(options, harness)
    atexit.register(runner.servers.stop_all)
    runner.ensure_wrk()
    peers_python = None if options.no_peers else harness.ensure_venv(options.venv, "python3")
    os.makedirs(options.log_dir, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="usetix-bench-"))
    sqlite_url = f"sqlite:///{work / 'bench.sqlite3'}"
    sqlite = Database(sqlite_url, app_environment(sqlite_url, options.sqlite_synchronous))
    postgres = None
    os.environ["BENCH_WRK_THREADS"] = str(options.threads)  # for bench/checkin.lua
    with contextlib.ExitStack() as cleanup:  # undone in reverse: servers, PostgreSQL database, files
        cleanup.callback(remove_work, harness, work, options.keep_data)
        if options.postgres:
            postgres_url = cleanup.enter_context(scratch_postgres(options.postgres))
            # The harness's own count of a database's backends, as for its _pg peers.
            backend_ticks = functools.partial(harness.pg_backend_ticks,
                                              sa.engine.make_url(postgres_url).database)
            postgres = Database(postgres_url, app_environment(postgres_url), backend_ticks=backend_ticks)
        cleanup.callback(runner.servers.stop_all)
        meta, memory, report, twin_pairs = measure_everything(runner, options, work, sqlite, postgres, peers_python,
                                                              cleanup)
        soaked = None
        if options.soak_minutes:
            soaked = soak(runner, options)
            report += "\n\n" + render_soak(soaked)
            faults = soaked.get("faults")
            if faults and (not faults["creations"]["ok"] or faults["503_without_retry_after"]):
                runner.failures.append("soak: a 201 without its row, a row behind an answer that denied it, "
                                       "or a 503 without Retry-After")
    print(report)
    Path(options.md_out).write_text(report + "\n")
    Path(options.json_out).write_text(json.dumps({"meta": meta, "results": runner.results,
                                                  "failures": runner.failures, "twin_pairs": twin_pairs,
                                                  "memory": memory, "soak": soaked}, indent=1, default=str))
    harness.log(f"report: {options.md_out}, raw numbers: {options.json_out}")
    return 1 if runner.failures else 0


def remove_work(harness, work: Path, keep: bool) -> None:
    if keep:
        harness.log(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    harness = load_harness(options.peers_dir)
    # bench/post.lua and bench/checkin.lua run the harness's report script after their own.
    os.environ["BENCH_REPORT_LUA"] = harness.LUA_SCRIPT
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, raise_interrupt)
    try:
        return run(options, harness)
    except harness.BenchError as exc:
        harness.log(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
