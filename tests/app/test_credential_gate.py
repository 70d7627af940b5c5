"""The credential gate answers exactly as the bearer hook would, and only when it is sure.

Each request goes once through the whole app (gate first) and once straight to Flask,
behind the gate: status, headers and body must be the same. The gate must have answered
the refusals that need no database itself, and passed everything else on.
"""

from __future__ import annotations

import logging

import pytest
from freezegun import freeze_time
from werkzeug.test import Client

from usetix.core import token_format as tokens
from usetix.web.credential_gate import CredentialGate, request_path
from usetix.web.trusted_hosts import TrustedHostMiddleware

from ..helpers import bearer

JSON = "application/json"
GOOD_SHAPE = tokens.generate()
BAD_CHECKSUM = GOOD_SHAPE[:-1] + ("A" if GOOD_SHAPE[-1] != "A" else "B")


def json_request(authorization: str | None = None, **headers: str) -> dict:
    headers = {"Accept": JSON, **headers}
    if authorization is not None:
        headers["Authorization"] = authorization
    return headers


# (method, path, headers, body)
GATE_ANSWERS = {
    "bad checksum": ("GET", "/admin/events", json_request(f"Bearer {BAD_CHECKSUM}"), None),
    "no token": ("GET", "/admin/events", json_request(), None),
    "not our prefix": ("GET", "/admin/events/1", json_request("Bearer usx_" + "A" * 36), None),
    "too short": ("GET", "/admin/account", json_request("Bearer utx_abc"), None),
    "basic scheme": ("GET", "/admin/events", json_request("Basic dXNlcjpwYXNz"), None),
    "scheme only": ("GET", "/admin/events", json_request("Bearer"), None),
    "two values": ("GET", "/admin/events", json_request(f"Bearer {GOOD_SHAPE} extra"), None),
    "POST without a body": ("POST", "/admin/events", json_request(f"Bearer {BAD_CHECKSUM}"), None),
    "DELETE of no route": ("DELETE", "/admin/nowhere", json_request(f"Bearer {BAD_CHECKSUM}"), None),
    "unknown path": ("GET", "/no/such/page", json_request(), None),
    "a token-free path with a slash more": ("GET", "/healthz/", json_request(), None),
    "non-ASCII path": ("GET", "/admin/événements", json_request(f"Bearer {BAD_CHECKSUM}"), None),
    "JSON preferred by q": ("GET", "/admin/events",
                            json_request(f"Bearer {BAD_CHECKSUM}", Accept="text/html;q=0.5, application/json"), None),
}
FLASK_ANSWERS = {
    "HTML request": ("GET", "/admin/events", {"Authorization": f"Bearer {BAD_CHECKSUM}"}, None),
    "wildcard Accept": ("GET", "/admin/events", {"Accept": "*/*", "Authorization": f"Bearer {BAD_CHECKSUM}"}, None),
    "HEAD": ("HEAD", "/admin/events", json_request(f"Bearer {BAD_CHECKSUM}"), None),
    "a body": ("POST", "/admin/events", json_request(f"Bearer {BAD_CHECKSUM}"), b"{}"),
    "an oversized body": ("POST", "/admin/events", json_request(f"Bearer {BAD_CHECKSUM}"), b"x" * (1024 * 1024 + 1)),
    "the OpenAPI document": ("GET", "/admin/openapi.json", json_request(f"Bearer {BAD_CHECKSUM}"), None),
    "the health check": ("GET", "/healthz", json_request(), None),
    "a static file": ("GET", "/static/style.css", json_request("Bearer nonsense"), None),
    "a well-formed unknown token": ("GET", "/admin/events", json_request(f"Bearer {GOOD_SHAPE}"), None),
}


@pytest.fixture
def gate(app) -> CredentialGate:
    host_check = app.wsgi_app  # the only middleware around the gate in the test config
    assert isinstance(host_check, TrustedHostMiddleware) and isinstance(host_check.wsgi_app, CredentialGate)
    return host_check.wsgi_app


@pytest.fixture
def flask_calls(gate, monkeypatch) -> list[str]:
    """The paths of the requests the gate passed on to Flask."""
    calls = []
    inner = gate.wsgi_app

    def counted(environ, start_response):
        calls.append(request_path(environ))
        return inner(environ, start_response)

    monkeypatch.setattr(gate, "wsgi_app", counted)
    return calls


def answer(wsgi_app, method, path, headers, body):
    """Status, headers and body; a new session's random cookie and the clock's Date left out."""
    with Client(wsgi_app).open(path, method=method, headers=headers, data=body) as response:
        kept = sorted((name, value.partition("=")[0] if name == "Set-Cookie" else value)
                      for name, value in response.headers.items() if name != "Date")
        return response.status, kept, response.get_data()


def both_answers(app, gate, case):
    through_gate = answer(app, *case)
    flask_alone = answer(gate.wsgi_app, *case)
    return through_gate, flask_alone


@pytest.mark.app_config(API_FAILED_AUTH_LIMIT="1000 per minute")
@pytest.mark.parametrize("case", GATE_ANSWERS.values(), ids=GATE_ANSWERS.keys())
def test_the_gate_answers_refusals_without_a_query_as_flask_would(app, gate, flask_calls, case):
    through_gate, flask_alone = both_answers(app, gate, case)
    assert flask_calls == [case[1]]  # only the request sent straight to Flask reached it
    assert through_gate == flask_alone
    assert through_gate[0] == "401 UNAUTHORIZED"


@pytest.mark.app_config(API_FAILED_AUTH_LIMIT="1000 per minute")
@pytest.mark.parametrize("case", FLASK_ANSWERS.values(), ids=FLASK_ANSWERS.keys())
def test_the_gate_passes_on_what_it_cannot_be_sure_of(app, gate, flask_calls, case):
    through_gate, flask_alone = both_answers(app, gate, case)
    assert flask_calls == [case[1], case[1]]
    assert through_gate == flask_alone


def test_a_valid_token_goes_through_the_gate_to_its_data(client, flask_calls, read_token):
    response = client.get("/admin/events", headers=bearer(read_token))
    assert response.status_code == 200 and response.get_json()["meta"]["total"] == 3
    assert flask_calls == ["/admin/events"]


@pytest.mark.app_config(API_FAILED_AUTH_LIMIT="2 per minute")
def test_the_gate_counts_failures_against_the_same_limit_and_throttles_as_flask_would(app, gate, flask_calls):
    case = GATE_ANSWERS["bad checksum"]
    with freeze_time("2026-11-28 12:00:10"):
        assert answer(app, *case)[0] == "401 UNAUTHORIZED"
        assert answer(gate.wsgi_app, *case)[0] == "401 UNAUTHORIZED"  # Flask's failure counts too
        through_gate, flask_alone = both_answers(app, gate, case)
    assert through_gate == flask_alone
    status, headers, body = through_gate
    assert status == "429 TOO MANY REQUESTS"
    assert dict(headers)["Retry-After"] == dict(headers)["RateLimit-Reset"] == "60"
    assert b'"error":"rate_limited"' in body
    assert flask_calls == [case[1], case[1]]


def test_the_gate_logs_its_answers_as_flask_does(app, gate, caplog):
    caplog.set_level(logging.INFO, logger="usetix.requests")
    for wsgi_app in (app, gate.wsgi_app):
        answer(wsgi_app, *GATE_ANSWERS["non-ASCII path"])
    through_gate, flask_alone = (r.getMessage() for r in caplog.records if r.name == "usetix.requests")
    without_duration = [line.split(" duration_ms=")[0] + line.split(" duration_ms=")[1].partition(" ")[2]
                        for line in (through_gate, flask_alone)]
    assert without_duration[0] == without_duration[1]
    assert through_gate.startswith('method=GET path="/admin/\\u00e9v\\u00e9nements" status=401 duration_ms=')


@pytest.mark.app_config(SESSION_COOKIE_SECURE=True)
def test_the_gate_adds_hsts_where_flask_would(app, gate):
    through_gate, flask_alone = both_answers(app, gate, GATE_ANSWERS["no token"])
    assert through_gate == flask_alone
    assert "Strict-Transport-Security" in dict(through_gate[1])


def test_the_hook_trusts_only_a_digest_the_gate_itself_left(app, client, read_token):
    """A digest planted in the WSGI environ (by a server or middleware before the gate)
    authenticates nothing: the gate clears the key and judges the header it was sent."""
    from usetix.web.credential_gate import SCREENED_DIGEST

    planted = {SCREENED_DIGEST: tokens.digest(read_token)}
    for headers in (json_request(), json_request(f"Bearer {BAD_CHECKSUM}"), json_request(f"Bearer {GOOD_SHAPE}")):
        response = client.get("/admin/events", headers=headers, environ_overrides=planted)
        assert response.status_code == 401


def test_a_lowercase_method_is_judged_as_werkzeug_reads_it(app, gate, flask_calls):
    """``head`` is HEAD to Flask (``request.method``): the gate leaves it to Flask, as HEAD."""
    headers = json_request(f"Bearer {BAD_CHECKSUM}")
    answers = []
    for wsgi_app in (app, gate.wsgi_app):
        with Client(wsgi_app).open("/admin/events", headers=headers,
                                   environ_overrides={"REQUEST_METHOD": "head"}) as response:
            answers.append((response.status, sorted(response.headers.items()), response.get_data()))
    assert answers[0] == answers[1] and answers[0][0] == "401 UNAUTHORIZED"
    assert flask_calls == ["/admin/events", "/admin/events"]


def test_when_the_gate_fails_flask_answers(app, client, flask_calls, monkeypatch):
    """A failure inside the gate (its rate-limit storage down, say) is not a bare server
    error page: the request goes on to Flask, which answers it by its own rules."""
    import usetix.web.credential_gate as gate_module

    def storage_down(*args):
        raise ConnectionError("rate-limit storage unreachable")

    monkeypatch.setattr(gate_module, "refusal_answer", storage_down)
    response = client.get("/admin/events", headers=json_request(f"Bearer {BAD_CHECKSUM}"))
    assert response.status_code == 401 and response.get_json()["error"] == "malformed_token"
    assert flask_calls == ["/admin/events"]
