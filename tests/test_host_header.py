"""A Host header that is not a valid host name (a label over 63 characters, an empty
label) is our 400 before Flask runs, with or without TRUSTED_HOSTS, on real gunicorn; and
an error page renders even when Flask could not bind a URL adapter to the Host."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
from flask import Flask

from usetix import create_app

from .databases import scratch_database
from .helpers import make_test_config
from .servers import gunicorn, prepare_database

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


@pytest.mark.parametrize("trusted_hosts", [None, [".usetix.io"]])
def test_an_invalid_host_is_refused_before_flask_runs(tmp_path, trusted_hosts):
    app = create_app({**make_test_config(tmp_path), "TRUSTED_HOSTS": trusted_hosts})
    opened = []
    app.before_request(lambda: opened.append(True))
    client = app.test_client()
    for host in INVALID_HOSTS:
        response = client.get("/login", headers={"Host": host})
        assert response.status_code == 400
        assert b"400 Bad Request" in response.data
    assert opened == []


@pytest.mark.parametrize("host", ["a..b", "evil.example"])
@pytest.mark.parametrize("path", ["/login", "/healthz"])
def test_an_error_page_renders_when_flask_has_no_url_adapter(tmp_path, host, path):
    """Behind the middleware Flask never meets such a Host; if it did (Flask's own
    TRUSTED_HOSTS check, a BadHost), the page still renders: our 400, never a bare 500."""
    app = create_app({**make_test_config(tmp_path), "TRUSTED_HOSTS": ["app.usetix.io"]})
    app.wsgi_app = lambda environ, start_response: Flask.wsgi_app(app, environ, start_response)  # no middleware
    response = app.test_client().get(path, headers={"Host": host})
    assert response.status_code == 400
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert b'href="/static/style.css"' in response.data and b'href="/admin/events"' in response.data


def test_a_request_without_a_host_header_is_served(tmp_path):
    """HTTP/1.0 has no Host: the server's own name stands in, whatever it is (a socket path)."""
    from werkzeug.test import EnvironBuilder

    app = create_app(make_test_config(tmp_path))
    environ = EnvironBuilder(path="/login").get_environ()
    del environ["HTTP_HOST"]
    environ.update(SERVER_NAME="/run/usetix/gunicorn.sock", SERVER_PORT="80", SERVER_PROTOCOL="HTTP/1.0")
    statuses = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    assert statuses == ["200 OK"] and b"<form" in body
