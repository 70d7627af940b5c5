"""Security headers on every kind of answer, and templates that need no inline script or style."""

from __future__ import annotations

import pytest

from ..helpers import bearer, csrf_token_from, inline_problems

# --- Helpers ------------------------------------------------------------------------------------


def csp_directives(response) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    directives = {}
    for part in policy.split(";"):
        name, *values = part.split()
        directives[name.lower()] = values
    return directives


def assert_html_headers(response, referrer: str = "same-origin") -> None:
    assert response.mimetype == "text/html", response.mimetype
    csp = csp_directives(response)
    assert csp["default-src"] == ["'self'"]
    for directive in ("script-src", "style-src"):
        sources = csp.get(directive, csp["default-src"])
        assert sources == ["'self'"], f"{directive}: {sources}"  # no 'unsafe-inline', no hashes, no hosts
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == referrer
    assert response.headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP by default


def assert_json_headers(response) -> None:
    assert response.mimetype == "application/json", response.mimetype
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Content-Security-Policy" not in response.headers
    assert "Set-Cookie" not in response.headers


# --- HTML answers -------------------------------------------------------------------------------

def test_login_page(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert_html_headers(response)
    assert inline_problems(response.text) == []


def test_every_dashboard_page(app, logged_in, orgs):
    event_id = orgs["acme"].event_ids[0]
    for path in ("/admin/events", f"/admin/events/{event_id}", "/admin/settings/api_tokens",
                 "/admin/settings/api_tokens/new", "/admin/settings/audit_log"):
        response = logged_in.get(path)
        assert response.status_code == 200, path
        assert_html_headers(response)
        assert inline_problems(response.text) == [], path


def test_reveal_page_keeps_same_origin_referrers_and_is_not_stored(logged_in):
    form = logged_in.get("/admin/settings/api_tokens/new")
    from ..helpers import NONCE_FIELD

    response = logged_in.post("/admin/settings/api_tokens", data={
        "description": "headers", "tier": "read", "csrf_token": csrf_token_from(form.text),
        "nonce": NONCE_FIELD.search(form.text).group(1)})
    assert response.status_code == 200
    # same-origin, not no-referrer: the header's Log out form needs its Referer over HTTPS,
    # and the value is never in a URL for a Referer to carry.
    assert_html_headers(response, referrer="same-origin")
    assert response.headers["Cache-Control"] == "no-store"
    assert inline_problems(response.text) == []


@pytest.mark.parametrize("method, path", [("GET", "/admin/nope"), ("GET", "/admin/events/999999"),
                                          ("DELETE", "/login"), ("GET", "/admin/events")])
def test_error_and_redirect_pages(client, orgs, method, path):
    response = client.open(path, method=method)
    assert response.status_code in (302, 404, 405)
    assert_html_headers(response)


def test_throttled_login_page(app, orgs):
    client = app.test_client()
    for _ in range(11):
        page = client.get("/login")
        response = client.post("/login", data={"email": "x@y.example", "password": "nope",
                                               "csrf_token": csrf_token_from(page.text)})
    assert response.status_code == 429
    assert_html_headers(response)


def test_server_error_page(app, client, read_token):
    def boom():
        raise RuntimeError("boom")

    app.add_url_rule("/boom", "boom", boom)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # answer 500 as in production, not re-raise
    response = client.get("/boom")
    assert response.status_code == 500
    assert_html_headers(response)
    assert "boom" not in response.text
    response = client.get("/boom", headers=bearer(read_token))
    assert response.status_code == 500
    assert_json_headers(response)


@pytest.mark.app_config(SESSION_COOKIE_SECURE=True)
def test_hsts_when_https_is_configured(app, client, read_token):
    for response in (client.get("/login"), client.get("/admin/account", headers=bearer(read_token)),
                     client.get("/admin/account", headers={"Accept": "application/json"})):
        hsts = response.headers["Strict-Transport-Security"]
        assert int(hsts.split("max-age=")[1].split(";")[0]) >= 180 * 24 * 3600
    cookies = app.test_client().get("/login").headers.getlist("Set-Cookie")
    session_cookie = next(c for c in cookies if c.startswith("usetix_session="))
    assert "Secure" in session_cookie and "HttpOnly" in session_cookie


# --- JSON answers -------------------------------------------------------------------------------

def test_every_kind_of_json_answer(app, client, orgs, read_token, write_token):
    event_id = orgs["acme"].event_ids[0]
    answers = [
        client.get("/admin/account", headers=bearer(read_token)),  # 200
        client.get("/admin/events", headers=bearer(read_token)),
        client.get(f"/admin/events/{event_id}", headers=bearer(read_token)),
        client.get(f"/admin/events/{event_id}/attendees", headers=bearer(read_token)),
        client.get("/admin/events?per_page=0", headers=bearer(read_token)),  # 400
        client.get("/admin/events", headers={"Accept": "application/json"}),  # 401
        client.post("/admin/events", headers=bearer(read_token)),  # 401 (read token)
        client.get("/admin/events/999999", headers=bearer(read_token)),  # 404
        client.put("/admin/events", headers=bearer(write_token)),  # 405
        client.post("/admin/events", headers=bearer(write_token), data=b"x" * (1024 * 1024 + 1)),  # 413
        client.get("/admin/openapi.json"),
        client.get("/healthz"),
        client.post("/admin/events", headers=bearer(write_token), json={  # 201
            "title": "T", "starts_at": "2026-07-01T10:00:00Z", "ends_at": "2026-07-01T12:00:00Z", "venue": "V"}),
        client.post("/admin/events", headers=bearer(write_token), data=b"{"),  # 415 (no Content-Type)
        client.post("/admin/events", headers=bearer(write_token), json={}),  # 422
        client.delete(f"/admin/events/{event_id}", headers=bearer(write_token)),  # 409 (it has attendees)
        client.patch(f"/admin/events/{event_id}", headers={**bearer(write_token), "If-Match": '"0.0"'},
                     json={"title": "T"}),  # 412
    ]
    assert [r.status_code for r in answers] == [200, 200, 200, 200, 400, 401, 401, 404, 405, 413, 200, 200,
                                                201, 415, 422, 409, 412]
    for response in answers:
        assert_json_headers(response)


@pytest.mark.app_config(API_RATE_LIMIT="1 per minute", API_FAILED_AUTH_LIMIT="1 per minute")
def test_json_429_answers(client, read_token):
    client.get("/admin/account", headers=bearer(read_token))
    throttled = client.get("/admin/account", headers=bearer(read_token))
    client.get("/admin/account", headers={"Accept": "application/json"})
    failed_too_often = client.get("/admin/account", headers={"Accept": "application/json"})
    for response in (throttled, failed_too_often):
        assert response.status_code == 429
        assert_json_headers(response)


def test_static_files_are_nosniff(client):
    for name in ("style.css", "reveal.js", "confirm.js"):
        with client.get(f"/static/{name}") as response:
            assert response.status_code == 200
            assert response.headers["X-Content-Type-Options"] == "nosniff"
