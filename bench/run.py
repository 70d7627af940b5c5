#!/usr/bin/env python3
"""`make bench`: load-test the JSON API's hot path under gunicorn, beside the shared peer apps.

    .venv/bin/python bench/run.py                  # full run with the peers (~9 min with 2 rounds)
    .venv/bin/python bench/run.py --rounds 3       # more rounds, better medians on a shared machine
    .venv/bin/python bench/run.py --quick          # smoke run: no peers, short windows, small RSS check

It reuses the shared load harness (``../shared/bench-peers``, or ``BENCH_PEERS_DIR``): its
wrk setup (``apt-get install wrk`` when missing, as root), its pinned venv and data set for
the four peer apps, its server start/stop, quiet-machine wait, wrk runs with per-status
tally and CPU accounting, and its report tables. The harness's own command line measures
one path pair per server (a valid token that must answer 200, an invalid one that must
answer 401, GET only); this script drives the same functions to measure our app's five
paths in the same alternating rounds as the peers:

- ``usetix`` ok: authenticated ``GET /admin/events`` (read token, page of 25 events)
- ``usetix`` reject: a well-formed token that exists nowhere (401 after one query)
- ``usetix_twin`` ok: ``GET /admin/bench-twin/events``, the same endpoint work without
  authentication (``BENCH_TWIN_ROUTE``, benchmark configuration only)
- ``usetix_malformed`` reject: a token whose checksum fails (401 before any query)
- ``usetix_post`` reject: the read token's ``POST /admin/events`` (401, insufficient scope)
- ``usetix_write`` ok: a write token checking attendees in and out
  (``POST``/``DELETE …/attendees/<id>/check_in``, 201/204; ``bench/checkin.lua`` walks a
  pool of 400 attendees, reset before each measurement; a 409 is expected only when two
  requests for one attendee are in flight at once)
- with ``--postgres URL`` (or ``BENCH_POSTGRES_URL``): ``usetix_pg`` ok and
  ``usetix_pg_write`` ok, the authenticated read and the write path again, in the same
  rounds, on a scratch database that the run creates on that server and drops at the end

Our database is seeded fresh under /tmp by ``bench/seed.py`` (our migrations and models:
one account, 25 events, one read token, a write token and the attendee pool) and deleted
afterwards. The app runs with the
repository's ``gunicorn.conf.py``, overridden to the peers' settings (2 sync workers,
127.0.0.1 only, no access log, no control socket) and with both API rate limits raised
so far that no 401 turns into a 429. After the rounds it checks what the timings cannot
show: SQL statements per path, and under a last stretch of authenticated load (100k
requests, and at least 150 s so that several minutes turn) worker memory after 1k
requests and at the end, and the ``last_used_at`` writes (at most one per token per
minute). Only that stretch logs the app's writes (``BENCH_STATEMENT_LOG``): the log's
listener would also cost the timed requests a little, and they run as in production.
Every process it starts is stopped at the end, also on Ctrl-C, SIGTERM or error; every
step has a time bound.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as dt
import http.client
import importlib.util
import itertools
import json
import os
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "bench"
POST_LUA = HERE / "post.lua"
CHECKIN_LUA = HERE / "checkin.lua"
PORT = 18010
HOST = "127.0.0.1"
APP = "usetix"
# Both API limits raised far beyond what a run sends: otherwise the per-address
# failed-authentication limit turns the 401 paths into 429s within a second.
RAISED_LIMIT = "1000000000 per minute"

# name: (pseudo-app in the tables, its kind there, method, path, token, expected status)
PATHS = {
    "auth": (APP, "ok", "GET", "/admin/events", "read_token", 200),
    "twin": (APP + "_twin", "ok", "GET", "/admin/bench-twin/events", "read_token", 200),
    "unknown": (APP, "reject", "GET", "/admin/events", "unknown_token", 401),
    "malformed": (APP + "_malformed", "reject", "GET", "/admin/events", "malformed_token", 401),
    "post": (APP + "_post", "reject", "POST", "/admin/events", "read_token", 401),
    # The path is the Lua script's (check-in and undo, 201 and 204); this one is for the URL's host.
    "write": (APP + "_write", "ok", "POST", "/admin/events", "write_token", 201),
}
# The two of them measured again on PostgreSQL (--postgres), under these names.
PG_PATHS = {"auth": APP + "_pg", "write": APP + "_pg_write"}
PSEUDO_APPS = list(dict.fromkeys(spec[0] for spec in PATHS.values())) + list(PG_PATHS.values())


def load_harness(peers_dir: Path):
    """The shared harness's run.py as a module (stdlib only; its main() is not run)."""
    script = peers_dir / "run.py"
    if not script.is_file():
        sys.exit(f"bench: no load harness at {script}; set BENCH_PEERS_DIR to the bench-peers folder")
    spec = importlib.util.spec_from_file_location("bench_peers_run", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2, help="rounds, order alternating between them (2)")
    ap.add_argument("--duration", type=int, default=10, help="measured seconds per app and path (10)")
    ap.add_argument("--warmup", type=int, default=2, help="warm-up seconds before each measurement (2)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    ap.add_argument("--workers", type=int, default=2, help="gunicorn sync workers, ours and the peers' (2)")
    ap.add_argument("--max-busy", type=float, default=10.0, help="quiet check: wait while the machine is busier")
    ap.add_argument("--quiet-wait", type=float, default=30.0, help="quiet check: wait at most this long (s)")
    ap.add_argument("--no-peers", action="store_true", help="our app only (no ratios to the peers)")
    ap.add_argument("--rss-requests", type=int, default=100_000, help="requests for the memory check (100000)")
    ap.add_argument("--soak-seconds", type=int, default=150,
                    help="the memory check lasts at least this long, for the last_used_at writes (150)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: no peers, 1 round, 3 s windows, 1 s warm-up, 20k-request memory check "
                         "of at least 65 s")
    ap.add_argument("--port", type=int, default=PORT, help=f"our app's port on {HOST} ({PORT})")
    ap.add_argument("--peers-dir", type=Path,
                    default=Path(os.environ.get("BENCH_PEERS_DIR", ROOT.parent / "shared" / "bench-peers")))
    ap.add_argument("--venv", default=os.environ.get("BENCH_VENV", "/tmp/benchvenv"), help="the peers' venv")
    ap.add_argument("--data-dir", default="/tmp/bench-data", help="the peers' data")
    ap.add_argument("--log-dir", default="/tmp/bench-logs", help="server logs")
    ap.add_argument("--no-install", action="store_true", help="never apt-get install wrk")
    ap.add_argument("--md-out", default="/tmp/usetix-bench.md", help="also write the report here")
    ap.add_argument("--json-out", default="/tmp/usetix-bench.json", help="raw measurements as JSON")
    ap.add_argument("--keep-data", action="store_true", help="keep the seeded database (and its tokens)")
    ap.add_argument("--sqlite-synchronous", metavar="LEVEL", type=str.upper, choices=("NORMAL", "FULL", "EXTRA"),
                    help="our app with USETIX_SQLITE_SYNCHRONOUS=LEVEL (NORMAL by default; FULL syncs every commit)")
    ap.add_argument("--postgres", metavar="URL", default=os.environ.get("BENCH_POSTGRES_URL"),
                    help="also measure the read and write paths on this PostgreSQL server "
                         "(postgresql+psycopg://USER@HOST:PORT/DB; BENCH_POSTGRES_URL): a scratch database "
                         "is created there and dropped at the end")
    ap.add_argument("--before", type=Path, metavar="TREE",
                    help="also measure an older checkout of this repository (e.g. `git archive REV | tar -x`) "
                         "on the authenticated and unknown-token paths, as `usetix_before`")
    a = ap.parse_args(argv)
    if a.quick:
        a.no_peers, a.rounds, a.duration, a.warmup = True, 1, 3, 1
        a.rss_requests, a.soak_seconds = min(a.rss_requests, 20_000), min(a.soak_seconds, 65)
    if a.rounds < 1 or a.duration < 1 or a.warmup < 0 or a.rss_requests < 2000:
        ap.error("--rounds and --duration must be >= 1, --warmup >= 0, --rss-requests >= 2000")
    return a


# --------------------------------------------------------------------------- our app

def app_environment(database_url: str, sqlite_synchronous: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("USETIX_", "FLASK_"))}
    if sqlite_synchronous:
        env["USETIX_SQLITE_SYNCHRONOUS"] = sqlite_synchronous
    env.update({
        "USETIX_DATABASE_URL": database_url,
        "USETIX_SECRET_KEY": secrets.token_hex(32),
        "USETIX_API_RATE_LIMIT": RAISED_LIMIT,
        "USETIX_API_FAILED_AUTH_LIMIT": RAISED_LIMIT,
        "BENCH_TWIN_ROUTE": "true",
        # No per-request log line, as the peers write none: gunicorn's access log off
        # (gunicorn.conf.py) and the app's own request log off; the `usetix_logged` row
        # measures the authenticated path with the request log on, its default.
        "USETIX_ACCESS_LOG": "",
        "USETIX_REQUEST_LOG": "false",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


def seed(env: dict[str, str], tokens_file: Path) -> dict:
    cp = subprocess.run([sys.executable, str(HERE / "seed.py")], env=env, cwd=ROOT, capture_output=True,
                        text=True, timeout=300)
    if cp.returncode != 0:
        raise RuntimeError(f"bench/seed.py failed:\n{cp.stderr}")
    tokens = json.loads(cp.stdout)
    env["BENCH_TWIN_ACCOUNT_ID"] = str(tokens["account_id"])
    tokens_file.write_text(json.dumps(tokens))
    return tokens


@contextlib.contextmanager
def scratch_postgres(server_url: str):
    """A fresh database on the PostgreSQL server of ``server_url`` until the block ends: its URL."""
    import sqlalchemy as sa

    name = f"usetix_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            with admin.connect() as conn:  # WITH (FORCE): PostgreSQL 13 or later
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except sa.exc.SQLAlchemyError as exc:  # the run's own error, if any, is the one to see
            print(f"bench: could not drop the scratch database {name}: {exc}", file=sys.stderr)
        admin.dispose()


def statements_per_path(env: dict[str, str], work: Path) -> dict[str, list[str]]:
    cp = subprocess.run([sys.executable, str(HERE / "inprocess.py"), "--tokens", str(work / "tokens.json"),
                         "--queries"], env=dict(env, USETIX_REQUEST_LOG="false"), cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
    if cp.returncode != 0:
        raise RuntimeError(f"bench/inprocess.py --queries failed:\n{cp.stderr}")
    return json.loads(cp.stdout)


def gunicorn_argv(port: int, workers: int) -> list[str]:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    tmp = "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"
    # The repository's production settings, with the peers' worker, log and bind settings on top.
    return [str(gunicorn), "-c", "gunicorn.conf.py", "--workers", str(workers), "--worker-class", "sync",
            "--bind", f"{HOST}:{port}", "--log-level", "warning", "--graceful-timeout", "5",
            "--worker-tmp-dir", tmp, "--no-control-socket", "--pythonpath", str(HERE), "twin:app"]


def request(port: int, method: str, path: str, token: str, timeout: float = 20) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def without_passwords(argv: list[str]) -> list[str]:
    """The command line as the report shows it: a database URL's password masked."""
    import sqlalchemy as sa

    shown = []
    for arg in argv:
        name, eq, value = arg.partition("=")
        url = value if eq and name == "--postgres" else arg
        if "://" in url:
            masked = sa.engine.make_url(url).render_as_string(hide_password=True)
            arg = f"{name}={masked}" if url is value else masked
        shown.append(arg)
    return shown


def check_paths(port: int, tokens: dict, names=tuple(PATHS)) -> None:
    """Each path answers as it must before any load is sent (the 200s with the 25 events)."""
    for name in names:
        _, _, method, path, token_key, expected = PATHS[name]
        if name == "write":
            path = f"{tokens['checkin_base']}{tokens['checkin_first']}/check_in"
            # An earlier round may have left this attendee checked in: undo first (204 or 409).
            request(port, "DELETE", path, tokens[token_key])
            for method, expected in (("POST", 201), ("DELETE", 204)):
                status, body = request(port, method, path, tokens[token_key])
                if status != expected:
                    raise RuntimeError(f"write: {method} {path} answered {status}, expected {expected}: {body[:200]!r}")
            continue
        status, body = request(port, method, path, tokens[token_key])
        if status != expected:
            raise RuntimeError(f"{name}: {method} {path} answered {status}, expected {expected}: {body[:200]!r}")
        if expected == 200 and len(json.loads(body)["data"]) != 25:
            raise RuntimeError(f"{name}: expected a page of 25 events")


def reset_check_ins(database_url: str, tokens: dict) -> None:
    """Nobody in the write path's pool checked in, so its script's first visit is a check-in;
    and bench/checkin.lua, which wrk runs with this process's environment, walks this pool."""
    import sqlalchemy as sa

    time.sleep(2)  # the requests wrk left in flight are still being answered
    first, count = tokens["checkin_first"], tokens["checkin_count"]
    os.environ.update(BENCH_CHECKIN_BASE=tokens["checkin_base"], BENCH_CHECKIN_FIRST=str(first),
                      BENCH_CHECKIN_COUNT=str(count))
    # SQLite: wait as long as the app's own busy timeout would, should a worker still write.
    connect_args = {"timeout": 30} if database_url.startswith("sqlite") else {}
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool, connect_args=connect_args)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE attendees SET checked_in = :no, checked_in_at = NULL "
                                 "WHERE id BETWEEN :first AND :last"),
                         {"no": False, "first": first, "last": first + count - 1})
    finally:
        engine.dispose()


def worker_rss(master_pid: int) -> dict[int, int]:
    """RSS in KiB of each worker (child process) of the gunicorn master."""
    rss = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            if int(stat[stat.rfind(")") + 2:].split()[1]) != master_pid:
                continue
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss[int(entry)] = int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return rss


@contextlib.contextmanager
def wrk_script(harness, path: Path | None):
    """Run wrk with another Lua script (the POST one); it ends by running the harness's own."""
    if path is None:
        yield
        return
    saved = harness.LUA_SCRIPT
    harness.LUA_SCRIPT = str(path)
    try:
        yield
    finally:
        harness.LUA_SCRIPT = saved


# --------------------------------------------------------------------------- the run

class Bench:
    def __init__(self, a, h):
        self.a, self.h = a, h
        self.results: dict[str, dict[str, list[dict]]] = {}
        self.failures: list[str] = []
        self.twin_pairs: list[tuple[int, float, float]] = []  # (round, auth req/s, twin req/s)
        self.servers = h.Servers()

    def measure(self, name, kind, url, token, pgid, rnd, slot, lua=None, reset=None):
        a, h = self.a, self.h
        busy, waited = h.wait_quiet(a.max_busy, a.quiet_wait)
        if busy > a.max_busy:
            h.log(f"warning: machine still {busy}% busy after waiting {waited} s; measuring {name}/{kind} anyway")
        with wrk_script(h, lua):
            if a.warmup:
                if reset:
                    reset()
                h.run_wrk(self.wrk, url, token, a.warmup, a.threads, a.connections, 5, True, pgid)
            if reset:
                reset()
            r = h.run_wrk(self.wrk, url, token, a.duration, a.threads, a.connections, 5, True, pgid)
        r.update(round=rnd, slot=slot, busy_before_pct=busy, quiet_waited_s=waited)
        self.results.setdefault(name, {}).setdefault(kind, []).append(r)
        h.log(f"{name:>17} {kind:>6}: {r['rps']:8.0f} req/s  p50 {h.fmt_ms(r['latency_us']['p50'])} ms"
              f"  p99 {h.fmt_ms(r['latency_us']['p99'])} ms  statuses {r['statuses']}"
              f"  CPU server {r['cpu_server_pct']}% wrk {r['cpu_wrk_pct']}% other {r['cpu_other_pct']}%")
        return r

    def run_peer(self, t, rnd, slot):
        h = self.h
        proc = self.servers.start(t.name, t.argv, t.env, t.cwd, t.log_path)
        try:
            h.wait_port(t.host, t.port, proc, t.startup_timeout)
            ok, notes, parsed = h.sanity_check(t, self.reference)
            if not ok:
                raise h.BenchError("; ".join(notes))
            if self.reference is None:
                self.reference = parsed
            for kind in ("ok", "reject"):
                self.measure(t.name, kind, t.url, t.token if kind == "ok" else t.bad_token, proc.pid, rnd, slot)
        finally:
            self.servers.stop(t.name)

    @contextlib.contextmanager
    def serving(self, name, env, cwd):
        """Our app under gunicorn as ``name`` until the block ends."""
        proc = self.servers.start(name, self.app_argv, env, cwd, os.path.join(self.a.log_dir, f"{name}.log"))
        try:
            self.h.wait_port(HOST, self.a.port, proc, 60)
            yield proc
        finally:
            self.servers.stop(name)

    def run_app(self, rnd, slot):
        rps = self.run_paths(APP, self.app_env, self.database_url, self.tokens, {n: PATHS[n][0] for n in PATHS},
                             rnd, slot)
        self.twin_pairs.append((rnd, rps["auth"], rps["twin"]))

    def run_postgres(self, rnd, slot):
        """The authenticated read and the write path, on PostgreSQL."""
        self.run_paths(APP + "_pg", self.pg_env, self.pg_url, self.pg_tokens, PG_PATHS, rnd, slot)

    def run_paths(self, server, env, database_url, tokens, names, rnd, slot):
        """Serve our app on ``database_url`` and measure ``names`` (path: the name in the
        tables) in this round's order; their req/s by path."""
        a = self.a
        with self.serving(server, env, str(ROOT)) as proc:
            check_paths(a.port, tokens, names)
            rps = {}
            for name in (list(names) if rnd % 2 else list(reversed(names))):
                _, kind, method, path, token_key, _ = PATHS[name]
                lua = CHECKIN_LUA if name == "write" else POST_LUA if method == "POST" else None
                reset = (lambda: reset_check_ins(database_url, tokens)) if name == "write" else None
                r = self.measure(names[name], kind, f"http://{HOST}:{a.port}{path}", tokens[token_key], proc.pid,
                                 rnd, slot, lua, reset)
                rps[name] = r["rps"]
            return rps

    def run_variant(self, name, rnd, slot):
        """Our app with its request log on (its default), or an older tree: fewer paths."""
        a = self.a
        env, cwd = dict(self.app_env), str(ROOT)
        if name == APP + "_logged":
            env.pop("USETIX_REQUEST_LOG")
            paths = ["auth"]
        else:
            cwd = str(a.before.resolve())
            env["PYTHONPATH"] = cwd
            paths = ["auth", "unknown"]
        with self.serving(name, env, cwd) as proc:
            for path_name in paths:
                _, kind, method, path, token_key, expected = PATHS[path_name]
                status, body = request(a.port, method, path, self.tokens[token_key])
                if status != expected:
                    raise RuntimeError(f"{name}/{path_name}: answered {status}, expected {expected}: {body[:200]!r}")
                self.measure(name, kind, f"http://{HOST}:{a.port}{path}", self.tokens[token_key], proc.pid, rnd, slot)

    def memory_check(self, statement_log: Path):
        """Authenticated load for --rss-requests and at least --soak-seconds, with the app's
        writes logged to ``statement_log``: worker RSS after 1k requests and at the end."""
        a, h = self.a, self.h
        env = dict(self.app_env, BENCH_STATEMENT_LOG=str(statement_log))
        with self.serving(APP, env, str(ROOT)) as proc:
            started = time.monotonic()
            token = self.tokens["read_token"]
            statuses: dict[int, int] = {}
            for _ in range(1000):
                status, _ = request(a.port, "GET", "/admin/events", token)
                statuses[status] = statuses.get(status, 0) + 1
            rss_1k = worker_rss(proc.pid)
            sent = 1000
            deadline, soaked = started + 600, started + a.soak_seconds
            url = f"http://{HOST}:{a.port}/admin/events"
            while (sent < a.rss_requests or time.monotonic() < soaked) and time.monotonic() < deadline:
                r = h.run_wrk(self.wrk, url, token, 10, a.threads, a.connections, 5, True, proc.pid)
                sent += r["requests"]
                for status, count in r["statuses"].items():
                    statuses[status] = statuses.get(status, 0) + count
            rss_end = worker_rss(proc.pid)
            h.log(f"memory: RSS after 1k {rss_1k}, after {sent} requests {rss_end} (KiB)")
            return {"requests": sent, "rss_1k_kib": rss_1k, "rss_end_kib": rss_end, "statuses": statuses,
                    "seconds": time.monotonic() - started}

    def main(self):
        a, h = self.a, self.h
        self.wrk = h.ensure_wrk(a.no_install)
        peers = [] if a.no_peers else list(h.PEERS)
        vpy = h.ensure_venv(a.venv, "python3") if peers else None
        os.makedirs(a.log_dir, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="usetix-bench-"))
        statement_log = work / "writes.log"
        self.database_url = f"sqlite:///{work / 'bench.sqlite3'}"
        self.app_env = app_environment(self.database_url, a.sqlite_synchronous)
        self.app_argv = gunicorn_argv(a.port, a.workers)
        self.reference = None
        os.environ["BENCH_WRK_THREADS"] = str(a.threads)  # for bench/checkin.lua
        with contextlib.ExitStack() as cleanup:  # undone in reverse: servers, PostgreSQL database, files
            cleanup.callback(self.remove_work, work)
            if a.postgres:
                self.pg_url = cleanup.enter_context(scratch_postgres(a.postgres))
                self.pg_env = app_environment(self.pg_url)
            cleanup.callback(self.servers.stop_all)
            meta, memory, report = self.run_all(work, statement_log, peers, vpy)
        print(report)
        Path(a.md_out).write_text(report + "\n")
        Path(a.json_out).write_text(json.dumps({"meta": meta, "results": self.results, "failures": self.failures,
                                                "twin_pairs": self.twin_pairs, "memory": memory}, indent=1,
                                               default=str))
        h.log(f"report: {a.md_out}, raw numbers: {a.json_out}")
        return 1 if self.failures else 0

    def remove_work(self, work):
        if self.a.keep_data:
            self.h.log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    def run_all(self, work, statement_log, peers, vpy):
        a, h = self.a, self.h
        h.log(f"seeding {work / 'bench.sqlite3'}")
        self.tokens = seed(self.app_env, work / "tokens.json")
        if a.postgres:
            h.log("seeding a scratch database on the PostgreSQL server (--postgres)")
            self.pg_tokens = seed(self.pg_env, work / "tokens-pg.json")
        statements = statements_per_path(self.app_env, work)
        targets = self.peer_targets(peers)
        for t in targets:
            if h.port_open(t.host, t.port):
                raise h.BenchError(f"port {t.port} is already in use")
        if h.port_open(HOST, a.port):
            raise h.BenchError(f"port {a.port} is already in use (--port)")
        per_app = (a.warmup + a.duration + 2) * 2
        paths = len(PATHS) + (len(PG_PATHS) if a.postgres else 0)
        estimate = a.rounds * (len(targets) * (per_app + 3) + paths * per_app / 2 + 5)
        h.log(f"{a.rounds} round(s), ~{estimate / 60:.0f} min plus the memory check and quiet waits")
        meta = self.meta(vpy, peers)
        order = [*targets, APP, APP + "_logged"] + ([APP + "_pg"] if a.postgres else []) \
            + ([APP + "_before"] if a.before else [])
        memory = None
        try:
            self.rounds(order)
            memory = self.memory_check(statement_log)
        except KeyboardInterrupt as e:
            h.log(f"interrupted ({e or 'Ctrl-C'}): stopping servers, reporting what was measured")
            self.failures.append("run interrupted; the tables hold what was measured before")
        writes = [line.split(" ", 3) for line in statement_log.read_text().splitlines()] \
            if statement_log.exists() else []
        return meta, memory, self.report(meta, statements, memory, writes)

    def rounds(self, order):
        a, h = self.a, self.h
        for rnd in range(1, a.rounds + 1):
            this = order if rnd % 2 else list(reversed(order))
            h.log(f"round {rnd}/{a.rounds}: {' -> '.join(x if isinstance(x, str) else x.name for x in this)}")
            for slot, t in enumerate(this, 1):
                try:
                    if t == APP:
                        self.run_app(rnd, slot)
                    elif t == APP + "_pg":
                        self.run_postgres(rnd, slot)
                    elif t in (APP + "_logged", APP + "_before"):
                        self.run_variant(t, rnd, slot)
                    else:
                        self.run_peer(t, rnd, slot)
                except (h.BenchError, RuntimeError, OSError, subprocess.SubprocessError) as e:
                    name = t if isinstance(t, str) else t.name
                    self.failures.append(f"{name} (round {rnd}): {e}")
                    h.log(f"FAILED {name} (round {rnd}): {e}")
                time.sleep(1)

    def peer_targets(self, peers):
        a, h = self.a, self.h
        if not peers:
            return []
        os.makedirs(a.data_dir, exist_ok=True)
        base_db = os.path.join(a.data_dir, "base-s1-a200.sqlite3")
        if h.dataset.ensure(base_db, 200, h.dataset.EVENTS_PER_ACCOUNT, 1):
            h.log(f"built dataset {base_db}")
        venv_bin = os.path.join(a.venv, "bin")
        tmp = "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"
        targets = []
        for i, name in enumerate(h.PEERS):
            port = 18001 + i
            db = h.prepare_db(a.data_dir, name, base_db)
            argv = [os.path.join(venv_bin, "gunicorn"), "--workers", str(a.workers), "--worker-class", "sync",
                    "--bind", f"{HOST}:{port}", "--chdir", h.PEERS_DIR, "--log-level", "warning",
                    "--graceful-timeout", "5", "--worker-tmp-dir", tmp, "--no-control-socket", h.PEERS[name]]
            env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", BENCH_DB=db,
                       PATH=venv_bin + os.pathsep + os.environ.get("PATH", ""))
            env.pop("DJANGO_SETTINGS_MODULE", None)
            targets.append(h.Target(name, HOST, port, h.DEFAULT_PATH, h.dataset.token_for(1, 1),
                                    h.dataset.bad_token(1), argv, env, h.PEERS_DIR,
                                    expect_events=h.dataset.EVENTS_PER_ACCOUNT, same_dataset=True,
                                    log_path=os.path.join(a.log_dir, f"{name}.log")))
        return targets

    def meta(self, vpy, peers):
        a, h = self.a, self.h
        versions = h.collect_versions(vpy, self.wrk) if vpy else h.collect_versions(None, self.wrk)
        ours = subprocess.run([sys.executable, "-c", (
            "import importlib.metadata as m, json, sys\n"
            "out = {'python': sys.version.split()[0]}\n"
            "for p in ('gunicorn', 'Flask', 'Werkzeug', 'SQLAlchemy', 'Flask-SQLAlchemy',"
            " 'limits', 'Flask-Login', 'Flask-WTF', 'orjson', 'pydantic', 'psycopg'):\n"
            "    try:\n"
            "        out[p] = m.version(p)\n"
            "    except m.PackageNotFoundError:\n"
            "        out[p] = 'not installed'\n"
            "print(json.dumps(out))")], capture_output=True, text=True, timeout=60)
        app_versions = json.loads(ours.stdout) if ours.returncode == 0 else {}
        meta = {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "versions": versions, "app_versions": app_versions, "machine": h.machine_info(),
            "path": "/admin/events", "threads": a.threads, "connections": a.connections,
            "duration": a.duration, "warmup": a.warmup, "rounds": a.rounds, "tally": True,
            "max_busy": a.max_busy, "quiet_wait": a.quiet_wait,
            "server_desc": (f"peers and {APP} under gunicorn --workers {a.workers} --worker-class sync, "
                            f"127.0.0.1 only; {APP}: `gunicorn {' '.join(self.app_argv[1:])}`"
                            f" with the API rate limits raised to {RAISED_LIMIT}"),
            "dataset": (f"peers: 200 accounts x 25 events (seed 1), token of account 1; {APP}: bench/seed.py "
                        "(1 account, 25 events, 1 read token, a write token, 400 attendees), SQLite WAL, synchronous "
                        f"{a.sqlite_synchronous or 'NORMAL (the default)'}"
                        + (", and the same on a scratch PostgreSQL database" if a.postgres else "")),
            "command": " ".join(shlex.quote(x) for x in ["bench/run.py", *without_passwords(sys.argv[1:])]),
            "idle_busy_pct": h.idle_check(),
        }
        h.log(f"versions: {versions}; app: {app_versions}")
        return meta

    # ----------------------------------------------------------------------- report

    def report(self, meta, statements, memory, writes):
        h = self.h
        ours = [*PSEUDO_APPS, APP + "_logged", APP + "_before"]
        names = [n for n in h.PEERS if n in self.results] + [n for n in ours if n in self.results]
        out = [h.render_header(meta)]
        out.append(f"App versions: {', '.join(f'{k} {v}' for k, v in meta['app_versions'].items())}  ")
        out.append("Paths: `usetix` ok = authenticated GET /admin/events (read token), reject = well-formed unknown "
                   "token; `usetix_twin` = GET /admin/bench-twin/events (same work, no authentication); "
                   "`usetix_malformed` = bad-checksum token; `usetix_post` = the read token's POST /admin/events; "
                   "`usetix_write` = a write token's check-in and undo over a pool of attendees (201/204); "
                   "`usetix_pg` and `usetix_pg_write` = the authenticated read and the write path on PostgreSQL; "
                   "`usetix_logged` = the authenticated path with the app's request log on (its default; off "
                   "everywhere else, as the peers log nothing per request)"
                   + ("; `usetix_before` = the tree given with --before" if self.a.before else "") + ".\n")
        out.append(self.targets_table(statements, memory, writes))
        out.append(h.render(self.results, names, meta, self.failures))
        out.append(self.checks(statements, memory, writes))
        return "\n".join(out)

    def median(self, name, kind):
        runs = self.results.get(name, {}).get(kind, [])
        return statistics.median(r["rps"] for r in runs) if runs else None

    def targets_table(self, statements, memory, writes):
        m = self.median
        auth, unknown = m(APP, "ok"), m(APP, "reject")
        twin, malformed = m(APP + "_twin", "ok"), m(APP + "_malformed", "reject")
        base_ok, base_401 = m("flask_baseline", "ok"), m("flask_baseline", "reject")
        ceil_ok, ceil_401 = m("ceiling", "ok"), m("ceiling", "reject")
        ok_runs = self.results.get(APP, {}).get("ok", [])
        non2xx = sum(n for r in ok_runs for s, n in r["statuses"].items() if not 200 <= s < 300)
        p99 = statistics.median(r["latency_us"]["p99"] for r in ok_runs) / 1000 if ok_runs else None
        gaps = self.write_gaps(writes)
        growth = self.rss_growth(memory) if memory else None

        def ratio(x, y):
            return x / y if x and y else None

        write = m(APP + "_write", "ok")
        rows = [
            ("write (check-in/undo) vs authenticated read", ratio(write, auth), 0.4),
            ("authenticated vs flask_baseline", ratio(auth, base_ok), 1.3),
            ("authenticated vs ceiling", ratio(auth, ceil_ok), 0.5),
            ("unknown token 401 vs flask_baseline's 401", ratio(unknown, base_401), 1.2),
            ("malformed token 401 vs ceiling's 401", ratio(malformed, ceil_401), 0.8),
            ("authenticated vs unauthenticated twin", ratio(auth, twin), 0.9),
        ]
        lines = ["### Targets (medians of this run)\n", "| target | measured | needed | met |", "|---|---:|---:|---|"]
        for label, value, need in rows:
            shown = "n/a (no peers)" if value is None else f"{value:.2f}x"
            met = "n/a" if value is None else ("yes" if value >= need else "NO")
            lines.append(f"| {label} | {shown} | ≥ {need}x | {met} |")
        queries = statements.get("malformed", [])
        lines.append(f"| malformed token: SQL statements | {len(queries)} | 0 | {'yes' if not queries else 'NO'} |")
        n_auth = len(statements.get("auth", []))
        lines.append(f"| authenticated list: SQL statements | {n_auth} | ≤ 2 | {'yes' if n_auth <= 2 else 'NO'} |")
        n_updates = len(self.token_updates(writes, changed=True))
        gap = "-" if gaps is None else f"{gaps:.0f} s"
        lines.append(f"| last_used_at writes (UPDATEs that changed the row), closest two apart | {n_updates}, "
                     f"{gap} | ≥ 60 s | "
                     f"{'yes' if gaps is None or gaps >= 60 else 'NO'} |")
        lines.append(f"| non-2xx on the authenticated path | {non2xx} | 0 | {'yes' if non2xx == 0 else 'NO'} |")
        lines.append(f"| authenticated p99 (median of rounds) | {'-' if p99 is None else f'{p99:.2f} ms'} "
                     "| reported | yes |")
        lines += self.write_rows("", APP + "_write")
        if self.a.postgres:
            pg_ratio = ratio(m(PG_PATHS["write"], "ok"), m(PG_PATHS["auth"], "ok"))
            lines.append(f"| PostgreSQL: write vs authenticated read (the target is SQLite's) | "
                         f"{'-' if pg_ratio is None else f'{pg_ratio:.2f}x'} | reported | yes |")
            lines += self.write_rows("PostgreSQL: ", PG_PATHS["write"])
        lines.append(f"| worker RSS growth, 1k → {memory['requests'] // 1000 if memory else '-'}k requests | "
                     f"{'-' if growth is None else f'{growth:+.1f} %'} | ≤ +10 % | "
                     f"{'yes' if growth is not None and growth <= 10 else 'NO'} |")
        lines.append("")
        return "\n".join(lines)

    def write_rows(self, prefix, name):
        """A write path's rows of the targets table: its p99 (median of rounds), and its
        statuses of all rounds, of which none may be other than 201, 204 and the expected 409."""
        runs = self.results.get(name, {}).get("ok", [])
        statuses: dict[int, int] = {}
        for r in runs:
            for status, count in r["statuses"].items():
                statuses[status] = statuses.get(status, 0) + count
        other = sum(n for status, n in statuses.items() if status not in (201, 204, 409))
        p99 = statistics.median(r["latency_us"]["p99"] for r in runs) / 1000 if runs else None
        return [f"| {prefix}write path p99 (median of rounds) | {'-' if p99 is None else f'{p99:.2f} ms'} "
                "| reported | yes |",
                f"| {prefix}write path statuses other than 201, 204 and 409 (all: {dict(sorted(statuses.items()))}) "
                f"| {other} | 0 | {'yes' if other == 0 else 'NO'} |"]

    @staticmethod
    def token_updates(writes, changed=None):
        """last_used_at UPDATEs (pid, time, rows changed, statement): all, or those that did (not) change a row."""
        updates = [w for w in writes if len(w) == 4 and w[3].startswith("UPDATE api_tokens SET last_used_at")]
        return updates if changed is None else [w for w in updates if (int(w[2]) > 0) == changed]

    def write_gaps(self, writes):
        """Seconds between the closest two last_used_at values written (the UPDATE's first
        parameter, as the database stores it; the log's own clock runs a moment later)."""
        times = sorted(dt.datetime.fromisoformat(json.loads(w[3].partition("\t")[2])[0]).timestamp()
                       for w in self.token_updates(writes, changed=True))
        return min((b - a for a, b in itertools.pairwise(times)), default=None)

    @staticmethod
    def rss_growth(memory):
        before, after = memory["rss_1k_kib"], memory["rss_end_kib"]
        pids = [pid for pid in before if pid in after]
        if not pids:
            return None
        return max(100.0 * (after[pid] - before[pid]) / before[pid] for pid in pids)

    def checks(self, statements, memory, writes):
        lines = ["### SQL statements per request (steady state, in-process)\n", "| path | statements |", "|---|---|"]
        for name, seen in statements.items():
            shown = "<br>".join(f"`{s[:110]}{'…' if len(s) > 110 else ''}`" for s in seen) or "none"
            lines.append(f"| {name} | {len(seen)}: {shown} |")
        updates = self.token_updates(writes)
        lost = self.token_updates(writes, changed=False)
        other = [w for w in writes if w not in updates]
        lines += ["", "### last_used_at writes\n",
                  f"{len(updates)} `UPDATE api_tokens SET last_used_at` statement(s) in the memory check's "
                  f"{memory['seconds'] / 60 if memory else 0:.1f} min of authenticated load, at "
                  + (", ".join(f"{time.strftime('%H:%M:%S', time.gmtime(float(w[1])))} (pid {w[0]}, {w[2]} row)"
                               for w in updates) or "-")
                  + f" UTC. {len(lost)} of them changed no row: the UPDATE is conditional, so when both workers "
                  "find the value a minute old at once, one writes and the other's UPDATE matches nothing. "
                  f"Other writes: {len(other)}.", ""]
        if not memory:
            return "\n".join(lines + ["(memory check not run)\n"])
        lines += ["### Worker memory (authenticated path)\n", "| worker | RSS after 1k | RSS after "
                  f"{memory['requests']} | change |", "|---|---:|---:|---:|"]
        for pid, before in sorted(memory["rss_1k_kib"].items()):
            after = memory["rss_end_kib"].get(pid)
            change = "-" if after is None else f"{100.0 * (after - before) / before:+.1f} %"
            lines.append(f"| pid {pid} | {before / 1024:.1f} MiB | "
                         f"{'gone' if after is None else f'{after / 1024:.1f} MiB'} | {change} |")
        lines.append(f"\nStatuses during the memory check: {dict(sorted(memory['statuses'].items()))}\n")
        if self.twin_pairs:
            lines.append("Authenticated / twin per round: "
                         + ", ".join(f"round {r}: {x / y:.2f}" for r, x, y in self.twin_pairs) + "\n")
        return "\n".join(lines)


def main(argv=None) -> int:
    a = parse_args(sys.argv[1:] if argv is None else argv)
    h = load_harness(a.peers_dir)
    # The POST script runs the harness's report script after setting the method.
    os.environ["BENCH_REPORT_LUA"] = h.LUA_SCRIPT
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, h._raise_interrupt)
    bench = Bench(a, h)
    atexit.register(bench.servers.stop_all)
    try:
        return bench.main()
    except h.BenchError as e:
        h.log(f"error: {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
