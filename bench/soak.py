"""The soak (``make bench ARGS="--soak-minutes N"``): minutes of mixed load on PostgreSQL as
shipped, then faults in the middle of the load.

**Load phases.** Our app under gunicorn with the repository's ``gunicorn.conf.py`` as it is
(its worker count, timeouts and keep-alive; only ``USETIX_BIND`` set, and the API limits
raised as everywhere in the bench), on a PostgreSQL server of its own. wrk sends a mixed
load (bench/soak.lua): the first page of one event's attendees, the first page of the
events, one attendee, a new attendee in that event (about 15 %, so the event grows all
along), and an unknown token. Each phase (a minute by default) reports its throughput, p50
and p99, statuses, the workers' RSS and the event's attendee count; the report compares the
first phase with the last.

**Faults.** The same mix from a Python client (threads, each request recorded with what
it sent and what it got): a worker killed with SIGKILL, then the PostgreSQL server
restarted (``pg_ctl restart -m fast``) while the load runs. Reported: what the clients
saw, by method and by moment; and whether every ``201`` has its row and every row of the
run its ``201``, matched by the unique name each creation sends. A row may rightly exist
without a ``201`` only when its request got no verdict (the worker killed under it, or a
``500 outcome_unknown``); a ``503`` says nothing was written, so a row behind one is a lie.

**The server.** The soak never touches the machine's own PostgreSQL (other work uses it):
it makes a throwaway cluster with the machine's PostgreSQL binaries (``initdb`` into a
temporary folder, as the ``postgres`` user when run as root; the binaries are found with
``pg_config --bindir``, else in ``/usr/lib/postgresql/<version>/bin``, or in
``BENCH_PG_BINDIR``), serves it on a free port of 127.0.0.1 with its socket in that
folder, restarts it for the fault, and stops and deletes it at the end.
"""

from __future__ import annotations

import contextlib
import glob
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness import HOST, LoadRunner, wrk_script
from paths import BENCH_DIR, ROOT, Database, app_environment, seed, worker_rss

SOAK_LUA = BENCH_DIR / "soak.lua"
SOAK_PORT = 18020
CREATE_SHARE = 0.15  # as bench/soak.lua
FAULT_THREADS = 8
REQUEST_TIMEOUT_S = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def postgres_bindir() -> Path:
    """The machine's PostgreSQL server binaries (initdb, pg_ctl)."""
    configured = os.environ.get("BENCH_PG_BINDIR")
    candidates = [Path(configured)] if configured else []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10).stdout.strip()
        if bindir:
            candidates.append(Path(bindir))
    candidates += [Path(p).parent for p in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)]
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl) found; set BENCH_PG_BINDIR")


class ThrowawayPostgres:
    """A PostgreSQL cluster of the soak's own, in a temporary folder."""

    def __init__(self, log) -> None:
        self.log = log
        self.bindir = postgres_bindir()
        self.folder = Path(tempfile.mkdtemp(prefix="usetix-soak-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0  # the server refuses to run as root
        if self.as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_postgres else []
        done = subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(argv[0]).name} failed ({done.returncode}): {done.stderr or done.stdout}")
        return done

    def start(self) -> str:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--no-instructions")
        self._pg_ctl("start")
        url = f"postgresql+psycopg://postgres@{HOST}:{self.port}/postgres"
        import sqlalchemy as sa

        admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with admin.connect() as conn:
            conn.exec_driver_sql("CREATE DATABASE usetix_soak")
        admin.dispose()
        self.log(f"soak: throwaway PostgreSQL {self.bindir.parent.name} on {HOST}:{self.port}, in {self.folder}")
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/usetix_soak"

    def _pg_ctl(self, action: str, *extra: str) -> None:
        self._run(str(self.bindir / "pg_ctl"), action, "-D", str(self.data), "-w", "-t", "60",
                  "-l", str(self.folder / "server.log"), *extra,
                  "-o", f"-p {self.port} -k {self.folder} -c listen_addresses={HOST}")

    def restart(self) -> float:
        """``pg_ctl restart -m fast``: every connection ends, open transactions roll back.
        Returns how long it took, until the server accepts connections again."""
        started = time.monotonic()
        self._pg_ctl("restart", "-m", "fast")
        return time.monotonic() - started

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
            self._run(str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate", "-w")
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def throwaway_postgres(log) -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres(log)
    try:
        yield server
    finally:
        server.stop()


def count_rows(url: str, sql: str, params: dict | None = None) -> Any:
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params or {}).all()
    finally:
        engine.dispose()


def wait_healthy(port: int, timeout: float = 60) -> None:
    """Until /healthz answers 200: the port opens before the workers have loaded the app."""
    deadline = time.monotonic() + timeout
    while True:
        conn = http.client.HTTPConnection(HOST, port, timeout=5)
        try:
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the soak's server did not answer /healthz with 200 within {timeout:.0f} s")
        time.sleep(0.2)


def rss_summary(master_pid: int) -> dict:
    rss = worker_rss(master_pid)
    values = sorted(rss.values())
    return {"workers": len(values), "max_kib": values[-1] if values else 0,
            "total_kib": sum(values), "median_kib": values[len(values) // 2] if values else 0}


# --- the fault phase's client --------------------------------------------------------------------


class RecordingClient:
    """The soak's mix from threads, every response recorded: (seconds since start, method,
    kind, status or "no answer", the error code of a 5xx, Retry-After, the unique name)."""

    def __init__(self, port: int, tokens: dict, event_path: str, attendee_path: str, tag: str) -> None:
        self.port, self.tokens, self.tag = port, tokens, tag
        self.event_path, self.attendee_path = event_path, attendee_path
        self.records: list[tuple] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.started = 0.0

    def _one(self, rng: random.Random, thread: int, number: int, conn: http.client.HTTPConnection):
        pick = rng.random()
        token, body, unique = self.tokens["write_token"], None, None
        if pick < CREATE_SHARE:
            method, kind, path = "POST", "create", self.event_path + "/attendees"
            unique = f"fault-{self.tag}-{thread}-{number}"
            body = json.dumps({"name": unique, "email": f"{unique}@soak.example", "ticket_type": "General"})
        elif pick < 0.45:
            method, kind, path = "GET", "attendee list", self.event_path + "/attendees"
        elif pick < 0.65:
            method, kind, path = "GET", "event list", "/admin/events"
        elif pick < 0.90:
            method, kind, path = "GET", "attendee", self.attendee_path
        else:
            method, kind, path, token = "GET", "unknown token", "/admin/events", self.tokens["unknown_token"]
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        sent = time.monotonic() - self.started
        code = retry_after = None
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            status: int | str = response.status
            retry_after = response.getheader("Retry-After")
            if status >= 500:
                with contextlib.suppress(ValueError):
                    code = json.loads(payload).get("error")
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            status = "no answer"  # the worker died under it, the connection was refused, or the client gave up
            code = type(exc).__name__
            conn.close()
        with self.lock:
            self.records.append((sent, method, kind, status, code, retry_after, unique))

    def _loop(self, thread: int) -> None:
        rng = random.Random(thread)
        conn = http.client.HTTPConnection(HOST, self.port, timeout=REQUEST_TIMEOUT_S)
        number = 0
        while not self.stop.is_set():
            number += 1
            self._one(rng, thread, number, conn)
        conn.close()

    def run(self, seconds: float, events: list[tuple[float, str, Any]]) -> dict[str, float]:
        """Load for ``seconds``; ``events`` are (at second, name, action) run meanwhile.
        Returns when each event happened, and what it returned (a duration)."""
        self.started = time.monotonic()
        threads = [threading.Thread(target=self._loop, args=(n,), daemon=True) for n in range(FAULT_THREADS)]
        for thread in threads:
            thread.start()
        happened = {}
        for at, name, action in sorted(events, key=lambda e: e[0]):
            delay = at - (time.monotonic() - self.started)
            if delay > 0:
                time.sleep(delay)  # the load runs meanwhile
            happened[name] = round(time.monotonic() - self.started, 1)
            result = action()
            if isinstance(result, float):
                happened[name + " took"] = round(result, 1)
        delay = seconds - (time.monotonic() - self.started)
        if delay > 0:
            time.sleep(delay)
        self.stop.set()
        for thread in threads:
            thread.join(REQUEST_TIMEOUT_S + 5)
        return happened


def kill_one_worker(master_pid: int) -> int:
    workers = sorted(worker_rss(master_pid))
    if not workers:
        raise RuntimeError("no gunicorn worker to kill")
    os.kill(workers[0], signal.SIGKILL)
    return workers[0]


def fault_summary(records: list[tuple], happened: dict, kill_at: float, restart_at: float) -> dict:
    def moment(sent: float) -> str:
        if sent < kill_at:
            return "1 before the faults"
        if sent < restart_at:
            return "2 after the SIGKILL"
        if sent < restart_at + happened.get("PostgreSQL restart took", 0) + 2:
            return "3 during the restart (+2 s)"
        return "4 after"

    by_method: dict[str, Counter] = {}
    by_moment: dict[str, Counter] = {}
    missing_retry_after = 0
    for sent, method, _kind, status, code, retry_after, _unique in records:
        label = str(status) if code is None else f"{status} {code}"
        by_method.setdefault(method, Counter())[label] += 1
        by_moment.setdefault(moment(sent), Counter())[label] += 1
        if status == 503 and retry_after is None:  # a 503 must say when to come back
            missing_retry_after += 1
    return {"requests": len(records), "by_method": {m: dict(c) for m, c in sorted(by_method.items())},
            "by_moment": {m: dict(c) for m, c in sorted(by_moment.items())},
            "503_without_retry_after": missing_retry_after, "happened": happened}


def match_creations(records: list[tuple], rows: set[str]) -> dict:
    """Every 201 has its row; every row has its 201, or a request that got no verdict."""
    answered = {unique: status for _, method, _, status, code, _, unique in records if unique}
    codes = {unique: code for _, _, _, _, code, _, unique in records if unique}
    created = {u for u, s in answered.items() if s == 201}
    without_row = sorted(created - rows)
    without_201 = sorted(rows - created)
    unexplained = [u for u in without_201 if not (answered.get(u) == "no answer" or codes.get(u) == "outcome_unknown")]
    return {"creations": len(answered), "201": len(created), "rows": len(rows),
            "201_without_row": without_row[:10], "201_without_row_count": len(without_row),
            "row_without_201": len(without_201),
            "row_without_201_by_answer": dict(Counter(
                str(answered.get(u)) + (f" {codes[u]}" if codes.get(u) else "") for u in without_201)),
            "row_without_201_unexplained": unexplained[:10], "ok": not without_row and not unexplained}


# --- the soak ------------------------------------------------------------------------------------


def soak(runner: LoadRunner, options) -> dict:
    """The load phases and the fault phase (see the module docstring): the report's numbers."""
    harness = runner.harness
    log = harness.log
    tag = f"{int(time.time())}"
    with throwaway_postgres(log) as server:
        url = server.start()
        work = Path(tempfile.mkdtemp(prefix="usetix-soak-"))
        try:
            return _soak_on(runner, options, server, url, work, tag)
        finally:
            runner.servers.stop("usetix_soak")
            shutil.rmtree(work, ignore_errors=True)


def _soak_on(runner: LoadRunner, options, server: ThrowawayPostgres, url: str, work: Path, tag: str) -> dict:
    harness = runner.harness
    log = harness.log
    env = app_environment(url)
    env.pop("BENCH_TWIN_ROUTE", None)
    database = Database(url, env)
    log("soak: seeding the throwaway database")
    seed(database, work / "tokens.json")
    tokens = database.tokens
    event_path = tokens["checkin_base"].rstrip("/").rsplit("/attendees", 1)[0]
    attendee_path = f"{tokens['checkin_base']}{tokens['checkin_first']}"
    port = options.soak_port
    env = dict(env, USETIX_BIND=f"{HOST}:{port}")
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    argv = [gunicorn, "-c", "gunicorn.conf.py", "wsgi:app"]  # as shipped: gunicorn.conf.py alone
    env_lua = {"BENCH_SOAK_TAG": tag, "BENCH_SOAK_EVENT": event_path, "BENCH_SOAK_ATTENDEE": attendee_path,
               "BENCH_SOAK_TOKEN": tokens["write_token"], "BENCH_SOAK_UNKNOWN": tokens["unknown_token"]}
    event_id = int(event_path.rsplit("/", 1)[1])
    phases = []
    with runner.serving("usetix_soak", argv, env, str(ROOT), port) as process:
        os.environ.update(env_lua)
        base = f"http://{HOST}:{port}/admin/events"
        wait_healthy(port)
        with wrk_script(harness, SOAK_LUA):
            # Every worker booted and warm before the first phase counts (the bench's --warmup, at least 5 s).
            runner.run_wrk(base, tokens["write_token"], max(5, options.warmup), process.pid)
            for number in range(1, options.soak_minutes + 1):
                result = runner.run_wrk(base, tokens["write_token"], options.soak_phase_seconds, process.pid)
                attendees = count_rows(url, "SELECT count(*) FROM attendees WHERE event_id = :e", {"e": event_id})[0][0]
                phase = {"phase": number, "rps": round(result["rps"], 1), "p50_ms": result["latency_us"]["p50"] / 1000,
                         "p99_ms": result["latency_us"]["p99"] / 1000, "statuses": result["statuses"],
                         "errors": result.get("errors"), "rss": rss_summary(process.pid),
                         "attendees_in_event": attendees, "cpu_server_pct": result.get("cpu_server_pct"),
                         "cpu_wrk_pct": result.get("cpu_wrk_pct"), "cpu_other_pct": result.get("cpu_other_pct")}
                phases.append(phase)
                log(f"soak phase {number}: {phase['rps']:.0f} req/s p99 {phase['p99_ms']:.1f} ms, "
                    f"workers' RSS max {phase['rss']['max_kib'] / 1024:.1f} MiB, {attendees} attendees, "
                    f"statuses {phase['statuses']}")
        faults = None
        if options.soak_fault_seconds:
            faults = fault_phase(options, server, process.pid, port, tokens, event_path, attendee_path, url, tag, log)
    return {"phases": phases, "faults": faults, "phase_seconds": options.soak_phase_seconds,
            "workers": phases[0]["rss"]["workers"] if phases else None,
            "postgresql": server.bindir.parent.name, "event": event_path}


def fault_phase(options, server: ThrowawayPostgres, master_pid: int, port: int, tokens: dict, event_path: str,
                attendee_path: str, url: str, tag: str, log) -> dict:
    seconds = options.soak_fault_seconds
    kill_at, restart_at = seconds * 0.25, seconds * 0.5
    client = RecordingClient(port, tokens, event_path, attendee_path, tag)
    killed = []
    log(f"soak: faults under load for {seconds} s: SIGKILL of a worker at {kill_at:.0f} s, "
        f"PostgreSQL restarted at {restart_at:.0f} s")
    happened = client.run(seconds, [
        (kill_at, "SIGKILL of a worker", lambda: killed.append(kill_one_worker(master_pid))),
        (restart_at, "PostgreSQL restart", server.restart),
    ])
    time.sleep(1)  # the last requests' transactions end (a client that gave up may still be answered)
    rows = {row[0] for row in count_rows(url, "SELECT name FROM attendees WHERE name LIKE :p",
                                         {"p": f"fault-{tag}-%"})}
    summary = fault_summary(client.records, happened, kill_at, restart_at)
    summary["seconds"] = seconds
    summary["creations"] = match_creations(client.records, rows)
    log(f"soak faults: {summary['requests']} requests; by method {summary['by_method']}; "
        f"creations {summary['creations']}")
    return summary
