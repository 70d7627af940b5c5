"""A Host header that is not a valid host name (a label over 63 characters, an empty
label) is our 400 before Flask runs, with or without TRUSTED_HOSTS (on real gunicorn:
tests/live/test_host_header.py); and an error page renders even when Flask could not bind a
URL adapter to the Host."""

from __future__ import annotations

import pytest
from flask import Flask

from usetix import create_app
from usetix.database.engine import db

from ..helpers import make_test_config

INVALID_HOSTS = ["a" * 64 + ".example", "a..b", ".a", "x..usetix.io", "x" * 64 + ".usetix.io"]


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
    with app.app_context():
        db.create_all()  # the login form is shown only while logins can work (usetix/blueprints/login.py)
    environ = EnvironBuilder(path="/login").get_environ()
    del environ["HTTP_HOST"]
    environ.update(SERVER_NAME="/run/usetix/gunicorn.sock", SERVER_PORT="80", SERVER_PROTOCOL="HTTP/1.0")
    statuses = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    assert statuses == ["200 OK"] and b"<form" in body
