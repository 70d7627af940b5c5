"""Logs and links: SQL parameters stay out of error messages, the trusted-hosts refusal
carries our headers and its log line, host names match whatever their case, and public
endpoints never read a token (as the README says). Relative Link headers and the one
log line per request are tested in test_api.py and test_production.py."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from usetix import create_app
from usetix.database.engine import db
from usetix.database.models import Admin

from ..helpers import bearer, issue, make_test_config


def test_sql_errors_never_carry_their_parameters(app, orgs):
    """A traceback in the error log shows the statement, never its values (session data,
    token digests, emails): the engine hides them (hide_parameters)."""
    with app.app_context():
        assert db.engine.hide_parameters is True
        admin = db.session.get(Admin, orgs["acme"].admin_id)
        db.session.add(Admin(account_id=admin.account_id, email="admin@acme.example", password_hash="secret-hash-x"))
        with pytest.raises(sa.exc.IntegrityError) as raised:
            db.session.commit()
        db.session.rollback()
    message = str(raised.value)
    # (PostgreSQL's own detail names the duplicate key's value; the other values stay out.)
    assert "secret-hash-x" not in message
    assert "parameters hidden" in message


@pytest.mark.app_config(SQLALCHEMY_ENGINE_OPTIONS={"hide_parameters": False})
def test_an_operator_may_show_them(app):
    with app.app_context():
        assert db.engine.hide_parameters is False


# --- Trusted hosts ------------------------------------------------------------------------------

def hosts_app(tmp_path, hosts: str = "app.usetix.io, .usetix.example", **settings):
    return create_app({**make_test_config(tmp_path), "TRUSTED_HOSTS": hosts, **settings})


@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_the_trusted_hosts_refusal_has_our_headers_and_a_log_line(app, tmp_path, caplog, accept):
    caplog.set_level(logging.INFO, logger="usetix.requests")
    client = hosts_app(tmp_path, SESSION_COOKIE_SECURE=True).test_client()
    response = client.get("/admin/events", headers={"Host": "evil.example", "Accept": accept})
    assert response.status_code == 400
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Vary"] == "Accept"
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    [line] = [r.getMessage() for r in caplog.records if r.name == "usetix.requests"]
    assert line.startswith("method=GET path=/admin/events status=400 ")


@pytest.mark.parametrize("host", ["APP.USETIX.IO", "App.Usetix.Io:8443", "EU.Usetix.Example"])
def test_host_names_match_whatever_their_case(app, orgs, tmp_path, host):
    raw = issue(app, orgs["acme"], "read")
    client = hosts_app(tmp_path).test_client()
    assert client.get("/login", headers={"Host": host}).status_code == 200
    assert client.get("/admin/events", headers={**bearer(raw), "Host": host}).status_code == 200


def test_trusted_hosts_configured_in_capitals_match(app, tmp_path):
    client = hosts_app(tmp_path, "App.Usetix.IO").test_client()
    assert client.get("/login", headers={"Host": "app.usetix.io"}).status_code == 200
    assert client.get("/login", headers={"Host": "evil.example"}).status_code == 400


# --- Public endpoints never read a token --------------------------------------------------------

@pytest.mark.parametrize("path", ["/healthz", "/admin/openapi.json"])
@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_a_public_endpoint_answers_the_same_whatever_token_comes_with_it(app, client, orgs, path, method):
    """The README's rule, precisely: a request a public view answers (its GET and HEAD, and
    Flask's automatic OPTIONS) needs no token and never reads the header: a read token,
    a revoked one or junk changes nothing (no lookup, no refusal)."""
    read = issue(app, orgs["acme"], "read")
    revoked = issue(app, orgs["acme"], "read")
    assert app.test_cli_runner().invoke(args=["revoke-token", "--value-stdin"], input=revoked).exit_code == 0
    plain = client.open(path, method=method, headers={"Accept": "application/json"})
    assert plain.status_code == 200
    for authorization in (bearer(read), bearer(revoked), {**bearer("x"), "Authorization": "Bearer ???"}):
        response = client.open(path, method=method, headers=authorization)
        assert (response.status_code, response.get_data()) == (plain.status_code, plain.get_data())
        assert "WWW-Authenticate" not in response.headers


@pytest.mark.parametrize("path", ["/admin/events", "/admin/no-such-thing", "/admin/account", "/healthz",
                                  "/admin/openapi.json"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_a_read_tokens_other_methods_are_401_wherever_no_public_view_answers(client, read_token, path, method):
    """Every other request needs a token, on any path (one that does not exist, and a
    public path with a method its view does not answer, included): a read token's
    method other than GET and HEAD is 401 there."""
    response = client.open(path, method=method, headers=bearer(read_token))
    assert response.status_code == 401 and response.json["error"] == "insufficient_scope"
    assert client.open(path, method="OPTIONS", headers=bearer(read_token)).status_code == (
        200 if path in ("/healthz", "/admin/openapi.json") else 401)
