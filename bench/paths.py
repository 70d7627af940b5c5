"""What our app is measured on: its paths on SQLite and PostgreSQL, the twin, the write path.

- ``usetix`` ok: authenticated ``GET /admin/events`` (read token, page of 25 events)
- ``usetix`` reject: a well-formed token that exists nowhere (401 after one query)
- ``usetix_twin`` ok: ``GET /admin/bench-twin/events``, the same endpoint work without
  authentication (``BENCH_TWIN_ROUTE``, benchmark configuration only: bench/twin.py)
- ``usetix_malformed`` reject: a token whose checksum fails (401 before any query)
- ``usetix_post`` reject: the read token's ``POST /admin/events`` (401, insufficient scope)
- ``usetix_restricted`` ok: ``GET /admin/events`` with a read token restricted to all 25
  events (the same page, through the restriction)
- ``usetix_denied`` reject: ``GET /admin/events`` with a token that may read attendees only
  (403, ``events:read``): a permission refusal, to hold against ``usetix_post``'s tier refusal
- ``usetix_write`` ok: a write token checking attendees in and out
  (``POST``/``DELETE …/attendees/<id>/check_in``, 201/204; ``bench/checkin.lua`` walks a
  pool of 400 attendees, reset before each measurement; a 409 is expected only when two
  requests for one attendee are in flight at once)
- ``usetix_redeem`` ok: the door's scanner (check-in preset) redeeming a ticket's code and
  undoing the check-in (``POST …/check_ins`` 201, ``DELETE …/attendees/<id>/check_in`` 204;
  ``bench/redeem.lua`` walks a pool of 400 tickets, reset before each measurement)
- ``usetix_batch`` ok: an offline batch of 100 scans a request (``POST …/check_ins/batch``,
  200, every scan admitted: ``bench/batch.lua`` dates each batch earlier than the last, so
  each takes the check-ins over), over a pool of 800 tickets; its req/s times 100 is its
  scans a second
- ``usetix_pg`` ok and reject, ``usetix_pg_write`` ok (``--postgres``): the authenticated
  read, the unknown token and the write path again, on a scratch database created on that
  server and dropped at the end (its backends' CPU counted as the server's, as the
  harness counts it for its ``_pg`` peers)
- ``usetix_logged`` ok: the authenticated path with the app's request log on (its default)
- ``usetix_before`` (``--before TREE``): an older checkout, authenticated and unknown token

Our database is seeded fresh by ``bench/seed.py`` (our migrations and models). The app runs
with the repository's ``gunicorn.conf.py``, overridden to the peers' settings, with both API
rate limits raised so far that no 401 turns into a 429. Besides the timed paths:
:func:`statements_per_path` (SQL per request, in-process), :func:`round_trips_per_path`
(round trips per request on PostgreSQL, with libpq's trace) and :meth:`OurApp.memory_check`
(worker memory and the ``last_used_at`` writes under a last stretch of authenticated load;
only that stretch logs the app's writes, as the log's listener would cost the timed requests
a little).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import http.client
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness import HOST, LoadRunner, shared_memory_dir

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
POST_LUA = BENCH_DIR / "post.lua"
CHECKIN_LUA = BENCH_DIR / "checkin.lua"
REDEEM_LUA = BENCH_DIR / "redeem.lua"
BATCH_LUA = BENCH_DIR / "batch.lua"
# The scans of one request of the batch path (bench/batch.lua's SCANS).
BATCH_SCANS = 100
DEFAULT_PORT = 18010
APP = "usetix"
LOGGED = APP + "_logged"
BEFORE = APP + "_before"
ON_POSTGRES = APP + "_pg"
# Both API limits raised far beyond what a run sends: otherwise the per-address
# failed-authentication limit turns the 401 paths into 429s within a second.
RAISED_LIMIT = "1000000000 per minute"
EVENTS_PER_PAGE = 25  # bench/seed.py's events: one full page


@dataclasses.dataclass(frozen=True)
class MeasuredPath:
    """One measured path of our app."""

    table_name: str  # the app's name in the report's tables
    kind: str  # "ok" (a 2xx) or "reject" (a 401): the harness's two tables
    method: str
    url_path: str
    token_key: str  # which of bench/seed.py's tokens it sends
    expected_status: int


PATHS = {
    "auth": MeasuredPath(APP, "ok", "GET", "/admin/events", "read_token", 200),
    "twin": MeasuredPath(APP + "_twin", "ok", "GET", "/admin/bench-twin/events", "read_token", 200),
    "unknown": MeasuredPath(APP, "reject", "GET", "/admin/events", "unknown_token", 401),
    "malformed": MeasuredPath(APP + "_malformed", "reject", "GET", "/admin/events", "malformed_token", 401),
    "post": MeasuredPath(APP + "_post", "reject", "POST", "/admin/events", "read_token", 401),
    # Issue 22: the list through a token restricted to all its events; a permission refusal.
    "restricted": MeasuredPath(APP + "_restricted", "ok", "GET", "/admin/events", "restricted_token", 200),
    "denied": MeasuredPath(APP + "_denied", "reject", "GET", "/admin/events", "attendees_only_token", 403),
    # The requests are bench/checkin.lua's (check-in and undo, 201 and 204); this URL gives wrk the host.
    "write": MeasuredPath(APP + "_write", "ok", "POST", "/admin/events", "write_token", 201),
    # Issue 23: the door. The requests are bench/redeem.lua's and bench/batch.lua's; this URL gives wrk the host.
    "redeem": MeasuredPath(APP + "_redeem", "ok", "POST", "/admin/events", "door_token", 201),
    "batch": MeasuredPath(APP + "_batch", "ok", "POST", "/admin/events", "door_token", 200),
}
# Those measured again on PostgreSQL (--postgres), under these names.
PG_PATHS = {"auth": ON_POSTGRES, "unknown": ON_POSTGRES, "write": ON_POSTGRES + "_write",
            "redeem": ON_POSTGRES + "_redeem", "batch": ON_POSTGRES + "_batch"}
# The door's paths: their wrk scripts and their pools in bench/seed.py's output.
DOOR_PATHS = {"redeem": REDEEM_LUA, "batch": BATCH_LUA}
# Each name once: several paths share one (usetix's ok and reject, usetix_pg's).
TABLE_NAMES = [*dict.fromkeys([*(path.table_name for path in PATHS.values()), *PG_PATHS.values(), LOGGED, BEFORE])]


@dataclasses.dataclass
class Database:
    """One seeded database our app is served on: its URL, the app's environment, the tokens."""

    url: str
    env: dict[str, str]
    tokens: dict = dataclasses.field(default_factory=dict)
    # A database server's backends serving this database: their CPU ticks so far (None on SQLite)
    backend_ticks: Callable[[], int] | None = None


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


def seed(database: Database, tokens_file: Path) -> None:
    """Seed ``database`` with bench/seed.py; its tokens go to ``database.tokens`` and ``tokens_file``."""
    completed = subprocess.run([sys.executable, str(BENCH_DIR / "seed.py")], env=database.env, cwd=ROOT,
                               capture_output=True, text=True, timeout=300)
    if completed.returncode != 0:
        raise RuntimeError(f"bench/seed.py failed:\n{completed.stderr}")
    database.tokens = json.loads(completed.stdout)
    database.env["BENCH_TWIN_ACCOUNT_ID"] = str(database.tokens["account_id"])
    tokens_file.write_text(json.dumps(database.tokens))


@contextlib.contextmanager
def scratch_postgres(server_url: str) -> Iterator[str]:
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


def statements_per_path(env: dict[str, str], tokens_file: Path) -> dict[str, list[str]]:
    """The SQL statements one steady-state request of each path sends (bench/inprocess.py --queries)."""
    completed = subprocess.run([sys.executable, str(BENCH_DIR / "inprocess.py"), "--tokens", str(tokens_file),
                                "--queries"], env=dict(env, USETIX_REQUEST_LOG="false"), cwd=ROOT,
                               capture_output=True, text=True, timeout=300)
    if completed.returncode != 0:
        raise RuntimeError(f"bench/inprocess.py --queries failed:\n{completed.stderr}")
    return json.loads(completed.stdout)


def round_trips_per_path(env: dict[str, str], tokens_file: Path) -> dict[str, int]:
    """Round trips to PostgreSQL of one steady-state request of each path (bench/roundtrips.py)."""
    completed = subprocess.run([sys.executable, str(BENCH_DIR / "roundtrips.py"), "--tokens", str(tokens_file)],
                               env=dict(env, USETIX_REQUEST_LOG="false"), cwd=ROOT, capture_output=True, text=True,
                               timeout=300)
    if completed.returncode != 0:
        raise RuntimeError(f"bench/roundtrips.py failed:\n{completed.stderr}")
    return json.loads(completed.stdout)


def gunicorn_argv(port: int, workers: int) -> list[str]:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    # The repository's production settings, with the peers' worker, log and bind settings on top.
    return [str(gunicorn), "-c", "gunicorn.conf.py", "--workers", str(workers), "--worker-class", "sync",
            "--bind", f"{HOST}:{port}", "--log-level", "warning", "--graceful-timeout", "5",
            "--worker-tmp-dir", shared_memory_dir(), "--no-control-socket", "--pythonpath", str(BENCH_DIR),
            "twin:app"]


def request(port: int, method: str, url_path: str, token: str, timeout: float = 20) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, url_path, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def check_paths(port: int, tokens: dict, names=tuple(PATHS)) -> None:
    """Each path answers as it must before any load is sent (the 200s with the 25 events)."""
    for name in names:
        path = PATHS[name]
        token = tokens[path.token_key]
        if name in DOOR_PATHS:
            check_door_path(port, tokens, name)
            continue
        if name == "write":
            url_path = f"{tokens['checkin_base']}{tokens['checkin_first']}/check_in"
            # An earlier round may have left this attendee checked in: undo first (204 or 409).
            request(port, "DELETE", url_path, token)
            for method, expected in (("POST", 201), ("DELETE", 204)):
                status, body = request(port, method, url_path, token)
                if status != expected:
                    raise RuntimeError(f"write: {method} {url_path} answered {status}, expected {expected}: "
                                       f"{body[:200]!r}")
            continue
        status, body = request(port, path.method, path.url_path, token)
        if status != path.expected_status:
            raise RuntimeError(f"{name}: {path.method} {path.url_path} answered {status}, "
                               f"expected {path.expected_status}: {body[:200]!r}")
        if path.expected_status == 200 and len(json.loads(body)["data"]) != EVENTS_PER_PAGE:
            raise RuntimeError(f"{name}: expected a page of {EVENTS_PER_PAGE} events")


def request_json(port: int, method: str, url_path: str, token: str, body: dict) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=20)
    try:
        conn.request(method, url_path, body=json.dumps(body), headers={
            "Authorization": f"Bearer {token}", "Accept": "application/json", "Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def check_door_path(port: int, tokens: dict, name: str) -> None:
    """A door path answers as it must: a redeem admits and its undo is 204; a batch of
    BATCH_SCANS admits every scan. (Each measurement's reset checks the pool out again.)"""
    token = tokens["door_token"]
    base, pool = tokens[f"{name}_base"], tokens[f"{name}_pool"]
    if name == "redeem":
        attendee_id, code = pool[0]
        request(port, "DELETE", f"{base}/attendees/{attendee_id}/check_in", token)  # an earlier round's
        answers = [request_json(port, "POST", f"{base}/check_ins", token, {"code": code}),
                   request(port, "DELETE", f"{base}/attendees/{attendee_id}/check_in", token)]
        if [status for status, _ in answers] != [201, 204]:
            raise RuntimeError(f"redeem: answered {[(s, b[:200]) for s, b in answers]}, expected 201 and 204")
        return
    moment = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 7 * 86400))  # before any run's
    scans = [{"nonce": f"check-{secrets.token_hex(8)}", "code": code, "scanned_at": moment}
             for _, code in pool[:BATCH_SCANS]]
    status, body = request_json(port, "POST", f"{base}/check_ins/batch", token, {"scans": scans})
    results = {scan["result"] for scan in json.loads(body)["data"]} if status == 200 else None
    if results != {"admitted"}:
        raise RuntimeError(f"batch: answered {status} with results {results}: {body[:200]!r}")


def reset_door(database_url: str, tokens: dict, name: str, work_dir: Path) -> None:
    """The door path's pool checked out, its tickets written where its wrk script reads them
    (``BENCH_DOOR_POOL``), and a new ``BENCH_DOOR_RUN`` for the batch's nonces."""
    import sqlalchemy as sa

    time.sleep(2)  # the requests wrk left in flight are still being answered
    pool = tokens[f"{name}_pool"]
    pool_file = work_dir / f"door-{name}.txt"
    pool_file.write_text("".join(f"{attendee_id} {code}\n" for attendee_id, code in pool))
    os.environ.update(BENCH_DOOR_BASE=tokens[f"{name}_base"], BENCH_DOOR_POOL=str(pool_file),
                      BENCH_DOOR_RUN=secrets.token_hex(6))
    connect_args = {"timeout": 30} if database_url.startswith("sqlite") else {}
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool, connect_args=connect_args)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE attendees SET checked_in = :no, checked_in_at = NULL WHERE id IN :ids")
                         .bindparams(sa.bindparam("ids", expanding=True)),
                         {"no": False, "ids": [attendee_id for attendee_id, _ in pool]})
    finally:
        engine.dispose()


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


class OurApp:
    """Our app under gunicorn, measured on its paths through the :class:`LoadRunner`."""

    def __init__(self, runner: LoadRunner, options: Any, sqlite: Database, postgres: Database | None):
        self.runner = runner
        self.options = options
        self.sqlite = sqlite
        self.postgres = postgres
        self.argv = gunicorn_argv(options.port, options.workers)
        self.twin_pairs: list[tuple[int, float, float]] = []  # (round, authenticated req/s, twin req/s)

    def url(self, url_path: str) -> str:
        return f"http://{HOST}:{self.options.port}{url_path}"

    def serving(self, name: str, env: dict[str, str], cwd: str = str(ROOT)):
        return self.runner.serving(name, self.argv, env, cwd, self.options.port)

    def servers_in_order(self) -> list[tuple[str, Callable[[int, int], None]]]:
        """Our servers of a round, each as (name, run(round, slot)), in the first round's order."""
        order = [(APP, self.run_on_sqlite), (LOGGED, self.run_with_request_log)]
        if self.postgres:
            order.append((ON_POSTGRES, self.run_on_postgres))
        if self.options.before:
            order.append((BEFORE, self.run_before))
        return order

    def run_on_sqlite(self, round_number: int, slot: int) -> None:
        """Every path on SQLite, as ``usetix``, ``usetix_twin``, ``usetix_malformed``, …"""
        names = {name: path.table_name for name, path in PATHS.items()}
        rps = self.run_paths(APP, self.sqlite, names, round_number, slot)
        self.twin_pairs.append((round_number, rps["auth"], rps["twin"]))

    def run_on_postgres(self, round_number: int, slot: int) -> None:
        """The authenticated read and the write path, on PostgreSQL."""
        self.run_paths(ON_POSTGRES, self.postgres, PG_PATHS, round_number, slot)

    def run_paths(self, server: str, database: Database, names: dict[str, str], round_number: int,
                  slot: int) -> dict[str, float]:
        """Serve our app on ``database`` and measure ``names`` (path: the name in the tables),
        in this round's order; their req/s by path."""
        tokens = database.tokens
        with self.serving(server, database.env) as process:
            check_paths(self.options.port, tokens, names)
            rps = {}
            for name in (list(names) if round_number % 2 else list(reversed(names))):
                path = PATHS[name]
                lua_script = CHECKIN_LUA if name == "write" else POST_LUA if path.method == "POST" else None
                reset = (lambda: reset_check_ins(database.url, tokens)) if name == "write" else None
                if name in DOOR_PATHS:
                    lua_script = DOOR_PATHS[name]
                    reset = functools.partial(reset_door, database.url, tokens, name, Path(self.options.log_dir))
                result = self.runner.measure(names[name], path.kind, self.url(path.url_path), tokens[path.token_key],
                                             process.pid, round_number, slot, lua_script, reset,
                                             database.backend_ticks)
                rps[name] = result["rps"]
            return rps

    def run_with_request_log(self, round_number: int, slot: int) -> None:
        """The authenticated path with the app's request log on, its default, as ``usetix_logged``."""
        env = dict(self.sqlite.env)
        env.pop("USETIX_REQUEST_LOG")
        self.run_variant(LOGGED, env, str(ROOT), ["auth"], round_number, slot)

    def run_before(self, round_number: int, slot: int) -> None:
        """The tree of ``--before`` on the authenticated and unknown-token paths, as ``usetix_before``."""
        tree = str(self.options.before.resolve())
        self.run_variant(BEFORE, dict(self.sqlite.env, PYTHONPATH=tree), tree, ["auth", "unknown"], round_number,
                         slot)

    def run_variant(self, server: str, env: dict[str, str], cwd: str, names: list[str], round_number: int,
                    slot: int) -> None:
        tokens = self.sqlite.tokens
        with self.serving(server, env, cwd) as process:
            for name in names:
                path = PATHS[name]
                token = tokens[path.token_key]
                status, body = request(self.options.port, path.method, path.url_path, token)
                if status != path.expected_status:
                    raise RuntimeError(f"{server}/{name}: answered {status}, expected {path.expected_status}: "
                                       f"{body[:200]!r}")
                self.runner.measure(server, path.kind, self.url(path.url_path), token, process.pid, round_number,
                                    slot)

    def memory_check(self, statement_log: Path) -> dict:
        """Authenticated load for --rss-requests and at least --soak-seconds, with the app's
        writes logged to ``statement_log``: worker RSS after 1k requests and at the end."""
        options = self.options
        env = dict(self.sqlite.env, BENCH_STATEMENT_LOG=str(statement_log))
        with self.serving(APP, env) as process:
            started = time.monotonic()
            token = self.sqlite.tokens["read_token"]
            statuses: dict[int, int] = {}
            for _ in range(1000):
                status, _ = request(options.port, "GET", "/admin/events", token)
                statuses[status] = statuses.get(status, 0) + 1
            rss_1k = worker_rss(process.pid)
            sent = 1000
            deadline, soaked = started + 600, started + options.soak_seconds
            url = self.url("/admin/events")
            while (sent < options.rss_requests or time.monotonic() < soaked) and time.monotonic() < deadline:
                result = self.runner.run_wrk(url, token, 10, process.pid)
                sent += result["requests"]
                for status, count in result["statuses"].items():
                    statuses[status] = statuses.get(status, 0) + count
            rss_end = worker_rss(process.pid)
            self.runner.harness.log(f"memory: RSS after 1k {rss_1k}, after {sent} requests {rss_end} (KiB)")
            return {"requests": sent, "rss_1k_kib": rss_1k, "rss_end_kib": rss_end, "statuses": statuses,
                    "seconds": time.monotonic() - started}
