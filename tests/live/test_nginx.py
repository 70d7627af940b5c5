"""deploy/nginx.conf in front of real gunicorn (two sync workers): two clients that send
half a request body hold nothing but nginx, and /healthz still answers; straight against
gunicorn, the same two clients hold both workers and /healthz waits.

Needs Debian's ``nginx``. Where it is missing the test is skipped with the reason, except
under CI (``CI=true``), where a missing nginx is a failure (.ci/run installs it).
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from ..databases import scratch_database
from ..helpers import PASSWORD, free_port, wait_until
from ..servers import ROOT, gunicorn, prepare_database, stop_process_group

pytestmark = pytest.mark.gunicorn

SNIPPET = ROOT / "deploy" / "nginx.conf"
REPORT = "/admin/credentials/revoke"
PROMPT = 3  # seconds: /healthz answers well within this when a worker is free


def find_nginx() -> str:
    """Debian's nginx (in /usr/sbin, off a plain user's PATH), or skip; under CI, fail."""
    found = shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
    if found is None:
        reason = "nginx is not installed (Debian package nginx)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}, and CI requires it", pytrace=False)
        pytest.skip(reason)
    return found


def nginx_config(directory: Path, listen_port: int, upstream: str) -> Path:
    """A whole nginx configuration of this test's own (prefix, pid, logs, temp files in
    ``directory``) around deploy/nginx.conf, its two addresses replaced."""
    snippet = SNIPPET.read_text()
    snippet, listens = re.subn(r"(?m)^(\s*)listen 80;", rf"\1listen 127.0.0.1:{listen_port};", snippet)
    snippet, servers = re.subn(r"(?m)^(\s*)server 127\.0\.0\.1:8000;", rf"\1server {upstream};", snippet)
    assert (listens, servers) == (1, 1), "deploy/nginx.conf no longer has the lines this test replaces"
    temp = {name: directory / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir()
    # As root, nginx's workers would switch to "nobody", who cannot enter pytest's temp folders.
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
    config = directory / "nginx.conf"
    config.write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} info;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        f"    access_log {directory / 'access.log'};\n"
        + "".join(f"    {name}_temp_path {path};\n" for name, path in temp.items())
        + snippet + "\n}\n")
    return config


def start_nginx(nginx: str, directory: Path, config: Path, base: str) -> subprocess.Popen:
    with open(directory / "nginx.out", "wb") as output:  # the child keeps its own copy
        proc = subprocess.Popen([nginx, "-p", str(directory), "-c", str(config),
                                 "-e", str(directory / "error.log")],
                                stdout=output, stderr=subprocess.STDOUT, start_new_session=True)

    def serving() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited with {proc.returncode}: {(directory / 'nginx.out').read_text()}"
                               f"{(directory / 'error.log').read_text()}")
        try:
            return requests.get(base + "/healthz", timeout=2).status_code == 200
        except (requests.ConnectionError, requests.Timeout):
            return False

    wait_until(serving, timeout=15, interval=0.1, message="nginx answers /healthz")
    return proc


class HalfSentBody:
    """A leak report whose headers are sent whole and whose body only half: whoever reads
    the body waits for the rest (a sync worker, unless a proxy reads it first)."""

    def __init__(self, base: str):
        parts = urlsplit(base)
        self.body = json.dumps({"credentials": ["utx_" + "A" * 36] * 20}).encode()
        self.socket = socket.create_connection((parts.hostname, parts.port), timeout=15)
        head = (f"POST {REPORT} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
                f"Accept: application/json\r\nContent-Length: {len(self.body)}\r\nConnection: close\r\n\r\n")
        self.socket.sendall(head.encode() + self.body[: len(self.body) // 2])

    def finish(self) -> int:
        """Send the rest; the answer's status."""
        with self.socket:
            self.socket.sendall(self.body[len(self.body) // 2:])
            return int(self.socket.makefile("rb").readline().split()[1])

    def close(self) -> None:
        self.socket.close()


def health_answers_promptly(base: str) -> bool:
    try:
        return requests.get(base + "/healthz", timeout=PROMPT).status_code == 200
    except requests.Timeout:
        return False


@pytest.fixture(scope="module")
def nginx_binary() -> str:
    return find_nginx()  # skip (or fail under CI) before preparing anything


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    directory = tmp_path_factory.mktemp("nginx-db")
    with scratch_database(directory, "nginx") as url:
        prepare_database(url, PASSWORD)
        yield url


def test_behind_nginx_half_sent_bodies_hold_no_worker(nginx_binary, database, tmp_path):
    with gunicorn(database, workers=2, log_path=tmp_path / "gunicorn.log", PROXY_FIX="true",
                  PROXY_FIX_HOPS="1") as upstream:
        port = free_port()
        front = f"http://127.0.0.1:{port}"
        nginx = start_nginx(nginx_binary, tmp_path, nginx_config(tmp_path, port, urlsplit(upstream).netloc), front)
        try:
            held = [HalfSentBody(front), HalfSentBody(front)]  # one per worker, were they passed on
            try:
                assert health_answers_promptly(front)
                assert health_answers_promptly(front)
                # Completed, each goes on to gunicorn whole and is answered.
                assert [request.finish() for request in held] == [202, 202]
            finally:
                for request in held:
                    request.close()
        finally:
            stop_process_group(nginx, timeout=10)
    assert not (tmp_path / "nginx.pid").exists()  # nginx removed its pid file: it stopped


def test_without_a_buffering_proxy_half_sent_bodies_hold_every_worker(database, tmp_path):
    """The failure the proxy prevents, shown, so the test above can tell the difference."""
    with gunicorn(database, workers=2, log_path=tmp_path / "gunicorn.log") as base:
        held = [HalfSentBody(base), HalfSentBody(base)]
        try:
            assert not health_answers_promptly(base)  # both sync workers wait for a body
            assert [request.finish() for request in held] == [202, 202]
            assert health_answers_promptly(base)
        finally:
            for request in held:
                request.close()
