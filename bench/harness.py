"""The glue to the shared load harness (``../shared/bench-peers``, or ``BENCH_PEERS_DIR``).

The harness's run.py is loaded as a module and driven function by function: wrk (installed
with ``apt-get install wrk`` when missing, as root), the peers' pinned venv and data set,
server start and stop, the quiet-machine wait, wrk runs with their per-status tally and CPU
accounting, and its report tables. Its own command line measures one path pair per server
(a valid token that must answer 200, an invalid one that must answer 401, GET only);
:class:`LoadRunner` measures any number of paths per server, in the same alternating
rounds as the peers. With ``--postgres`` it also runs the harness's PostgreSQL peers
(``ceiling_pg``, ``drf_pg``, ``flask_baseline_pg``: the harness's ``--db both``) on a
scratch database of the harness's own on that server, made from the peers' data set and
dropped at the end.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

HOST = "127.0.0.1"
FIRST_PEER_PORT = 18001  # the harness's own ports for its four peers, 18001-18004
WRK_TIMEOUT_S = 5  # wrk's per-request timeout
PEER_DATASET_ACCOUNTS = 200


def load_harness(peers_dir: Path) -> ModuleType:
    """The shared harness's run.py as a module (stdlib only; its main() is not run)."""
    script = peers_dir / "run.py"
    if not script.is_file():
        sys.exit(f"bench: no load harness at {script}; set BENCH_PEERS_DIR to the bench-peers folder")
    spec = importlib.util.spec_from_file_location("bench_peers_run", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def wrk_script(harness: ModuleType, path: Path | None) -> Iterator[None]:
    """Run wrk with another Lua script (bench/post.lua, bench/checkin.lua); each ends by
    running the harness's own (its path in ``BENCH_REPORT_LUA``)."""
    if path is None:
        yield
        return
    saved = harness.LUA_SCRIPT
    harness.LUA_SCRIPT = str(path)
    try:
        yield
    finally:
        harness.LUA_SCRIPT = saved


def shared_memory_dir() -> str:
    """Where gunicorn keeps its worker heartbeat files: RAM when the machine has /dev/shm."""
    return "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"


class LoadRunner:
    """Starts servers and runs wrk through the harness, in alternating rounds, and keeps
    every measurement and every failure."""

    def __init__(self, options: Any, harness: ModuleType):
        self.options = options
        self.harness = harness
        self.servers = harness.Servers()
        self.wrk_path: str | None = None
        # app name in the tables -> "ok" or "reject" -> one harness result dict per measurement
        self.results: dict[str, dict[str, list[dict]]] = {}
        self.failures: list[str] = []
        self.peer_reference_body = None  # the first peer's answer: every other peer must give the same
        self.postgres_peers_info: dict = {}  # the harness's scratch database: server version, psycopg, rows

    def ensure_wrk(self) -> None:
        self.wrk_path = self.harness.ensure_wrk(self.options.no_install)

    def run_wrk(self, url: str, token: str, seconds: int, server_pid: int,
                database_ticks: Callable[[], int] | None = None) -> dict:
        options = self.options
        return self.harness.run_wrk(self.wrk_path, url, token, seconds, options.threads, options.connections,
                                    WRK_TIMEOUT_S, True, server_pid, database_ticks)

    def measure(self, name: str, kind: str, url: str, token: str, server_pid: int, round_number: int,
                slot: int, lua_script: Path | None = None, reset: Callable[[], None] | None = None,
                database_ticks: Callable[[], int] | None = None) -> dict:
        """One measurement of ``url`` (after the quiet wait and the warm-up), kept under
        ``name``/``kind`` ("ok" or "reject"); ``reset`` runs before the warm-up and again
        before the measured window. ``database_ticks`` (a PostgreSQL server's backends for
        this database, as the harness counts them for its ``_pg`` peers) counts as the server's CPU."""
        options, harness = self.options, self.harness
        busy, waited = harness.wait_quiet(options.max_busy, options.quiet_wait)
        if busy > options.max_busy:
            harness.log(f"warning: machine still {busy}% busy after waiting {waited} s; "
                        f"measuring {name}/{kind} anyway")
        with wrk_script(harness, lua_script):
            if options.warmup:
                if reset:
                    reset()
                self.run_wrk(url, token, options.warmup, server_pid, database_ticks)
            if reset:
                reset()
            result = self.run_wrk(url, token, options.duration, server_pid, database_ticks)
        result.update(round=round_number, slot=slot, busy_before_pct=busy, quiet_waited_s=waited)
        self.results.setdefault(name, {}).setdefault(kind, []).append(result)
        latency = result["latency_us"]
        harness.log(f"{name:>17} {kind:>6}: {result['rps']:8.0f} req/s  p50 {harness.fmt_ms(latency['p50'])} ms"
                    f"  p99 {harness.fmt_ms(latency['p99'])} ms  statuses {result['statuses']}"
                    f"  CPU server {result['cpu_server_pct']}% wrk {result['cpu_wrk_pct']}%"
                    f" other {result['cpu_other_pct']}%")
        return result

    @contextlib.contextmanager
    def serving(self, name: str, argv: list[str], env: dict[str, str], cwd: str, port: int) -> Iterator[Any]:
        """The server of ``argv`` as ``name`` until the block ends: its process."""
        process = self.servers.start(name, argv, env, cwd, os.path.join(self.options.log_dir, f"{name}.log"))
        try:
            self.harness.wait_port(HOST, port, process, 60)
            yield process
        finally:
            self.servers.stop(name)

    def peer_argv(self, port: int, entry: str) -> list[str]:
        """A peer under gunicorn with the harness's settings."""
        options = self.options
        return [os.path.join(options.venv, "bin", "gunicorn"), "--workers", str(options.workers), "--worker-class",
                "sync", "--bind", f"{HOST}:{port}", "--chdir", self.harness.PEERS_DIR, "--log-level", "warning",
                "--graceful-timeout", "5", "--worker-tmp-dir", shared_memory_dir(), "--no-control-socket", entry]

    def peer_targets(self, peers_python: str, postgres_url: str | None,
                     cleanup: contextlib.ExitStack) -> list[Any]:
        """The harness's four peer apps, each on a fresh copy of its data set; with
        ``postgres_url``, then its PostgreSQL peers on a scratch database of the harness's
        on that server (dropped when ``cleanup`` ends), as its ``--db both`` does."""
        options, harness = self.options, self.harness
        os.makedirs(options.data_dir, exist_ok=True)
        base_db = os.path.join(options.data_dir, f"base-s1-a{PEER_DATASET_ACCOUNTS}.sqlite3")
        if harness.dataset.ensure(base_db, PEER_DATASET_ACCOUNTS, harness.dataset.EVENTS_PER_ACCOUNT, 1):
            harness.log(f"built dataset {base_db}")
        venv_bin = os.path.join(options.venv, "bin")
        targets = []
        for number, name in enumerate(harness.PEERS):
            port = FIRST_PEER_PORT + number
            db = harness.prepare_db(options.data_dir, name, base_db)
            argv = self.peer_argv(port, harness.PEERS[name])
            env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", BENCH_DB=db,
                       PATH=venv_bin + os.pathsep + os.environ.get("PATH", ""))
            env.pop("DJANGO_SETTINGS_MODULE", None)
            targets.append(harness.Target(name, HOST, port, harness.DEFAULT_PATH, harness.dataset.token_for(1, 1),
                                          harness.dataset.bad_token(1), argv, env, harness.PEERS_DIR,
                                          expect_events=harness.dataset.EVENTS_PER_ACCOUNT, same_dataset=True,
                                          log_path=os.path.join(options.log_dir, f"{name}.log")))
        if postgres_url:
            targets += self.postgres_peer_targets(peers_python, postgres_url, base_db, targets, cleanup)
        return targets

    def postgres_peer_targets(self, peers_python: str, postgres_url: str, base_db: str, sqlite_targets: list,
                              cleanup: contextlib.ExitStack) -> list[Any]:
        """The harness's PostgreSQL peers (``<peer>_pg``), set up as its own ``--db both``
        sets them up: each answer must be the data set's events and its SQLite twin's."""
        options, harness = self.options, self.harness
        scratch = harness.PgScratch(peers_python, harness.pg_server_url(postgres_url))
        cleanup.callback(scratch.drop)
        cleanup.callback(self.servers.stop_all)  # first: the peers let go of the database before it is dropped
        scratch.create(base_db)
        self.postgres_peers_info = scratch.info
        venv_bin = os.path.join(options.venv, "bin")
        twins = {target.name: target for target in sqlite_targets}
        expected = harness.dataset.events_for(1, 1, harness.dataset.EVENTS_PER_ACCOUNT)
        targets = []
        for number, name in enumerate(harness.PG_PEERS):
            port = FIRST_PEER_PORT + len(harness.PEERS) + number
            table_name = name + harness.PG_SUFFIX
            argv = self.peer_argv(port, harness.PG_PEERS[name])
            env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", BENCH_DB=scratch.url,
                       PATH=venv_bin + os.pathsep + os.environ.get("PATH", ""))
            env.pop("DJANGO_SETTINGS_MODULE", None)
            log_path = os.path.join(options.log_dir, f"{table_name}.log")
            targets.append(harness.Target(table_name, HOST, port, harness.DEFAULT_PATH,
                                          harness.dataset.token_for(1, 1), harness.dataset.bad_token(1), argv, env,
                                          harness.PEERS_DIR, expect_events=harness.dataset.EVENTS_PER_ACCOUNT,
                                          same_dataset=True, log_path=log_path, twin=twins.get(name),
                                          expect_json=expected, extra_ticks=scratch.backend_ticks))
        return targets

    def run_peer(self, target: Any, round_number: int, slot: int) -> None:
        """A peer's valid-token and invalid-token paths, after the harness's check of its answers."""
        harness = self.harness
        process = self.servers.start(target.name, target.argv, target.env, target.cwd, target.log_path)
        try:
            harness.wait_port(target.host, target.port, process, target.startup_timeout)
            ok, notes, parsed = harness.sanity_check(target, self.peer_reference_body)
            if not ok:
                raise harness.BenchError("; ".join(notes))
            if self.peer_reference_body is None:
                self.peer_reference_body = parsed
            for kind in ("ok", "reject"):
                token = target.token if kind == "ok" else target.bad_token
                self.measure(target.name, kind, target.url, token, process.pid, round_number, slot,
                             database_ticks=target.extra_ticks)
        finally:
            self.servers.stop(target.name)

    def run_rounds(self, order: list[tuple[str, Callable[[int, int], None]]]) -> None:
        """Each (name, run) of ``order`` once a round, as run(round, slot); odd rounds in this
        order, even rounds reversed. A failure is kept and the round goes on."""
        harness = self.harness
        for round_number in range(1, self.options.rounds + 1):
            this_round = order if round_number % 2 else list(reversed(order))
            harness.log(f"round {round_number}/{self.options.rounds}: {' -> '.join(name for name, _ in this_round)}")
            for slot, (name, run) in enumerate(this_round, 1):
                try:
                    run(round_number, slot)
                except (harness.BenchError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    self.failures.append(f"{name} (round {round_number}): {exc}")
                    harness.log(f"FAILED {name} (round {round_number}): {exc}")
                time.sleep(1)
