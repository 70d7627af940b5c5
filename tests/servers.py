"""Start real gunicorn servers for tests that must cross a process boundary."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa

from usetix.auth.token_service import issue_token
from usetix.database.engine import db
from usetix.database.models import Admin

from .helpers import free_port, seeded_database, wait_until

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
USETIX = str(Path(sys.executable).with_name("usetix"))
# The running test, when it is marked gunicorn (set by tests/conftest.py); None refuses to serve.
serving_test: str | None = None


def stop_process_group(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM to a server started in a session of its own, SIGKILL if it outlives ``timeout``."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def server_env(database_url: str, **settings: str) -> dict[str, str]:
    """Environment of a server process: a real secret key, our database, USETIX_* extras."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("USETIX_", "FLASK_"))}
    env.update({
        "USETIX_SECRET_KEY": "gunicorn-test-secret-key-0123456789",
        "USETIX_DATABASE_URL": database_url,
        "USETIX_PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
    })
    env.update({f"USETIX_{k}": v for k, v in settings.items()})
    return env


class HeldRequest:
    """A request sent but for the blank line that ends its headers: a sync worker has taken
    it and waits for the rest, so the requests sent meanwhile go to the other workers,
    whatever the race for accepting connections. :meth:`finish` sends the rest; the worker
    that took it answers, so at least two workers have answered.

    With ``body_sent``, the headers go whole with that many bytes of the body: the app runs
    the request (authenticates it, opens its session) and waits for the rest of the body, as
    it would for a client on a slow link."""

    def __init__(self, base: str, method: str, path: str, headers: Mapping[str, str], body: bytes,
                 body_sent: int | None = None):
        parts = urlsplit(base)
        self.socket = socket.create_connection((parts.hostname, parts.port), timeout=10)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {len(body)}",
                 "Connection: close", *(f"{name}: {value}" for name, value in headers.items())]
        head = "".join(line + "\r\n" for line in lines).encode()
        if body_sent is None:
            self.socket.sendall(head)
            self.rest = b"\r\n" + body
        else:
            self.socket.sendall(head + b"\r\n" + body[:body_sent])
            self.rest = body[body_sent:]
        self.answer = b""  # the whole answer, once finished
        # Time for a worker to accept it and read what was sent. A sleep, not a poll: nothing
        # outside the worker shows that it has.
        time.sleep(0.5)

    def finish(self) -> int:
        """Send the rest; the answer's status (the answer itself in ``answer``)."""
        with self.socket:
            self.socket.sendall(self.rest)
            with self.socket.makefile("rb") as answer:
                self.answer = answer.read()
        return int(self.answer.split(b"\r\n", 1)[0].split()[1])


def prepare_database(database_url: str, password: str) -> None:
    """Fill an empty database with the ``usetix`` CLI, as an operator would: the schema
    (migrations), then the two demo accounts with their admins and events."""
    for args in (["init-db"], ["seed-demo", "--password", password]):
        done = subprocess.run([USETIX, *args], cwd=ROOT, env=server_env(database_url), capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"usetix {args[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


@contextmanager
def gunicorn(database_url: str, workers: int = 2, log_path: Path | None = None, extra_args: Sequence[str] = (),
             tls: tuple[Path, Path] | None = None, **settings: str):
    """Serve ``wsgi:app`` with real gunicorn on a free loopback port; yields the base URL.

    ``extra_args`` go on gunicorn's command line (an access log format, say); ``tls`` is a
    (certificate, key) pair to serve HTTPS with (see ``self_signed_certificate``).
    """
    if serving_test is None:
        raise RuntimeError("only a test marked gunicorn (in tests/live) may start gunicorn")
    port = free_port()
    if tls:
        extra_args = [*extra_args, "--certfile", str(tls[0]), "--keyfile", str(tls[1])]
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115 (closed in finally)
    proc = subprocess.Popen(
        [GUNICORN, "--workers", str(workers), "--bind", f"127.0.0.1:{port}", "--no-control-socket",
         "--graceful-timeout", "5", *extra_args, "wsgi:app"],
        cwd=ROOT, env=server_env(database_url, **settings), stdout=log, stderr=log, start_new_session=True,
    )
    base = f"{'https' if tls else 'http'}://127.0.0.1:{port}"

    def serving() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {proc.returncode}")
        try:
            # Any answer means a worker serves (a test may have broken a dependency: 503).
            requests.get(base + "/healthz", timeout=1, verify=str(tls[0]) if tls else True)
            return True
        except (requests.ConnectionError, requests.Timeout):
            return False  # not listening yet, or listening while its workers still boot

    try:
        wait_until(serving, timeout=30, interval=0.1, message="gunicorn answers /healthz")
        yield base
    finally:
        stop_process_group(proc, timeout=15)
        if log_path:
            log.close()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (and its key), made with the openssl CLI."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@dataclass
class SeededServer:
    """gunicorn serving a database seeded by tests/helpers.py's ``seeded_database``, with
    the app on the same database for issuing tokens and counting rows directly."""

    base: str
    app: object
    log: Path
    org: object

    def token(self, description: str = "scanner", preset: str = "write") -> tuple[int, str]:
        """(id, raw value) of a new token of the seeded account's admin."""
        with self.app.app_context():
            token, raw = issue_token(db.session.get(Admin, self.org.admin_id), description, preset, "127.0.0.1")
            return token.id, raw

    def count(self, model, *where) -> int:
        with self.app.app_context():
            n = db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))
            db.session.remove()
            return n


@contextmanager
def seeded_server(directory: Path, name: str, workers: int, events: int, attendees_per_event: int,
                  server_class: type[SeededServer] = SeededServer):
    """A seeded database served by gunicorn with the API's rate limits out of the way (the
    concurrency tests send more than a client may)."""
    with seeded_database(directory, name, events=events, attendees_per_event=attendees_per_event) as (url, app, org):
        limits = {"API_RATE_LIMIT": "1000000 per minute", "API_FAILED_AUTH_LIMIT": "1000000 per minute"}
        log = directory / "server.log"
        with gunicorn(url, workers=workers, log_path=log, **limits) as base:
            yield server_class(base, app, log, org)


def at_once(count: int, work, timeout: float = 20) -> list:
    """Run ``work(n, http)`` in ``count`` threads released together, each with its own
    requests session; their responses, in order."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(n: int) -> None:
        with requests.Session() as http:
            barrier.wait(timeout=timeout)
            try:
                results[n] = work(n, http)
            except requests.RequestException as exc:  # reported by the assertion below
                results[n] = exc

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    assert all(isinstance(result, requests.Response) for result in results), results
    return results
