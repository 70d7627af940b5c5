"""One authentication policy: ``@public`` on the view, ``g.principal``, and rate limits that
honour Flask-Limiter's standard ``RATELIMIT_ENABLED`` switch (in-process; on gunicorn: tests/live/test_policy.py)."""

from __future__ import annotations

import pytest
from flask import g

from usetix.auth.policy import public
from usetix.web.responses import json_response

from ..helpers import PASSWORD, bearer, csrf_token_from

JSON = {"Accept": "application/json"}


def add_routes(app) -> None:
    """Two extra JSON routes under the API, before the app serves its first request: one
    ``@public``, one not (it answers who the request is)."""

    def whoami():
        principal = g.get("principal")
        return json_response({"account": principal.account_id, "token": principal.token.id})

    app.add_url_rule("/admin/ping", endpoint="api.ping", view_func=public(lambda: json_response({"pong": True})))
    app.add_url_rule("/admin/whoami", endpoint="api.whoami", view_func=whoami)


def test_a_public_view_needs_no_token_from_the_gate_or_the_hook(app, client, orgs, read_token):
    add_routes(app)
    # The gate lets the public path through, and the hook asks the same marker.
    assert client.get("/admin/ping", headers=JSON).json == {"pong": True}
    assert app.public_endpoints >= {"api.ping", "meta.healthz", "meta.openapi", "static"}
    assert "api.whoami" not in app.public_endpoints
    refused = client.get("/admin/whoami", headers=JSON)
    assert refused.status_code == 401 and refused.json["error"] == "missing_token"
    # With its token, the request is its token's account.
    response = client.get("/admin/whoami", headers=bearer(read_token))
    assert response.status_code == 200
    assert response.json["account"] == orgs["acme"].account_id


@pytest.mark.app_config(RATELIMIT_ENABLED=False, API_RATE_LIMIT="2 per minute", API_FAILED_AUTH_LIMIT="2 per minute",
                        LOGIN_RATE_LIMIT="2 per 15 minutes", LOGIN_ADDRESS_RATE_LIMIT="2 per 15 minutes",
                        LOGIN_EMAIL_RATE_LIMIT="2 per 15 minutes")
def test_ratelimit_enabled_false_switches_every_limit_off(app, client, orgs, read_token):
    for _ in range(5):
        response = client.get("/admin/events", headers=bearer(read_token))
        assert response.status_code == 200
        assert not [name for name, _ in response.headers if name.lower().startswith("ratelimit")]
    for _ in range(5):
        assert client.get("/admin/events", headers={**JSON, "Authorization": "Bearer utx_nope"}).status_code == 401
    for _ in range(5):
        page = client.get("/login")
        response = client.post("/login", data={"email": "admin@acme.example", "password": "wrong password",
                                               "csrf_token": csrf_token_from(page.text)})
        assert response.status_code == 200
    page = client.get("/login")
    assert client.post("/login", data={"email": "admin@acme.example", "password": PASSWORD,
                                       "csrf_token": csrf_token_from(page.text)}).status_code == 302
