"""A Host header that is not a valid host name (a label over 63 characters, an empty
label) is our 400 before Flask runs, with or without TRUSTED_HOSTS, on real gunicorn; and
an error page renders even when Flask could not bind a URL adapter to the Host."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from ..databases import scratch_database
from ..servers import gunicorn, prepare_database

INVALID_HOSTS = ["a" * 64 + ".example", "a..b", ".a", "x..usetix.io", "x" * 64 + ".usetix.io"]
PATHS = ["/healthz", "/login", "/admin/events", "/admin/settings/api_tokens"]


def raw_request(base: str, path: str, host: str, accept: str = "text/html") -> tuple[int, dict[str, str], bytes]:
    """GET ``path`` with exactly this Host header (clients refuse to send such names)."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def assert_our_400(status: int, headers: dict[str, str], body: bytes, accept: str) -> None:
    assert status == 400
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"
    assert headers["vary"] == "Accept"
    if accept == "application/json":
        assert headers["content-type"] == "application/json"
        assert body == b'{"error":"bad_request","message":"The Host header is not a valid host name."}'
    else:
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert headers["content-security-policy"].startswith("default-src 'self'")
        assert headers["x-frame-options"] == "DENY"
        assert b"<h1>400 Bad Request</h1>" in body
        assert b'href="/static/style.css"' in body and b'href="/admin/events"' in body


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hosts")
    with scratch_database(directory, "hosts") as url:
        prepare_database(url, "host-test-password")
        yield url


@pytest.mark.gunicorn
@pytest.mark.parametrize("trusted_hosts", [None, ".usetix.io"])
def test_an_invalid_host_is_our_400_on_gunicorn_without_a_traceback(database, tmp_path, trusted_hosts):
    log = tmp_path / "gunicorn.log"
    settings = {"TRUSTED_HOSTS": trusted_hosts} if trusted_hosts else {}
    with gunicorn(database, workers=1, log_path=log, **settings) as base:
        for host in INVALID_HOSTS:
            for path in PATHS:
                for accept in ("text/html", "application/json"):
                    assert_our_400(*raw_request(base, path, host, accept), accept)
        # A valid name still works: by its own name, and /healthz by an address.
        good_host = "app.usetix.io" if trusted_hosts else urlsplit(base).netloc
        assert raw_request(base, "/login", good_host)[0] == 200
        assert raw_request(base, "/healthz", urlsplit(base).netloc)[0] == 200
    text = log.read_text()
    assert "Traceback" not in text and "ERROR" not in text, text
    assert "path=/healthz status=400" in text  # each refusal has its request-log line
