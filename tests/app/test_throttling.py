"""Abuse: login throttling, the API's per-token rate limit and per-address failed-auth
limit (Flask-Limiter, memory or Redis storage), and logins that cost the same whether
or not the email exists."""

from __future__ import annotations

import os
import re
import secrets
from datetime import UTC, datetime

import jsonschema
import pytest
from freezegun import freeze_time
from werkzeug.security import check_password_hash as real_check_password_hash

from usetix import create_app
from usetix.api_contract.openapi import build_document
from usetix.auth import passwords as passwords_module
from usetix.blueprints import login as login_module
from usetix.database.engine import db
from usetix.database.models import Admin
from usetix.ratelimit import email_key

from ..helpers import PASSWORD, bearer, csrf_token_from, issue, make_test_config

REDIS_URL = os.environ.get("USETIX_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="USETIX_TEST_REDIS_URL is not set (CI sets it)")

ERROR_SCHEMA = build_document(2**31 - 1)["components"]["schemas"]["Error"]


def login_from(client, address: str, email: str, password: str):
    """A login through the real form, as a client at ``address``."""
    environ = {"REMOTE_ADDR": address}
    page = client.get("/login", environ_base=environ)
    return client.post("/login", environ_base=environ,
                       data={"email": email, "password": password, "csrf_token": csrf_token_from(page.text)})


def fail_logins(app, count: int, email: str, address: str | None = None) -> None:
    """``count`` failed logins for ``email``, each from its own address unless one is given."""
    for n in range(count):
        response = login_from(app.test_client(), address or f"198.51.100.{n + 1}", email, "wrong password")
        assert response.status_code == 200, f"attempt {n + 1} got {response.status_code}"


def assert_login_throttled(response) -> None:
    assert response.status_code == 429
    assert response.mimetype == "text/html"
    assert 0 < int(response.headers["Retry-After"]) <= 15 * 60
    assert "Too many failed logins" in response.text
    assert "Set-Cookie" not in response.headers or "usetix_session=;" not in response.headers["Set-Cookie"]


# --- Login throttling ---------------------------------------------------------------------------

def test_failures_from_one_address_never_refuse_the_right_password_from_another(app, orgs):
    # The lockout of issue 19: anyone who knew the email could lock its admin out.
    fail_logins(app, 10, "admin@acme.example", address="192.0.2.10")
    assert_login_throttled(login_from(app.test_client(), "192.0.2.10", "admin@acme.example", PASSWORD))
    response = login_from(app.test_client(), "203.0.113.7", "admin@acme.example", PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/events")


def test_ten_failures_for_one_email_from_one_address_throttle_that_pair(app, orgs):
    fail_logins(app, 10, "admin@acme.example", address="192.0.2.10")
    # Even the right password, from that address, for that email.
    assert_login_throttled(login_from(app.test_client(), "192.0.2.10", "admin@acme.example", PASSWORD))
    assert_login_throttled(login_from(app.test_client(), "192.0.2.10", "admin@acme.example", "wrong password"))
    # Another email from that address is still tried (a colleague behind the same NAT).
    assert login_from(app.test_client(), "192.0.2.10", "admin@globex.example", PASSWORD).status_code == 302


def test_the_pair_limit_ignores_case_and_spaces(app, orgs):
    fail_logins(app, 10, " Admin@ACME.example ", address="192.0.2.10")
    assert_login_throttled(login_from(app.test_client(), "192.0.2.10", "admin@acme.example", PASSWORD))


def test_spraying_many_emails_from_one_address_is_throttled(app, orgs):
    limit = int(app.config["LOGIN_ADDRESS_RATE_LIMIT"].split()[0])
    for n in range(limit):
        response = login_from(app.test_client(), "192.0.2.10", f"nobody{n}@example.com", "wrong password")
        assert response.status_code == 200, f"attempt {n + 1} got {response.status_code}"
    assert_login_throttled(login_from(app.test_client(), "192.0.2.10", "nobody-else@example.com", "password"))
    assert_login_throttled(login_from(app.test_client(), "192.0.2.10", "admin@acme.example", PASSWORD))
    # The admin, elsewhere, is not affected.
    assert login_from(app.test_client(), "192.0.2.11", "admin@acme.example", PASSWORD).status_code == 302


def test_one_email_from_many_addresses_is_throttled_only_at_the_loose_bound(app, orgs):
    limit = int(app.config["LOGIN_EMAIL_RATE_LIMIT"].split()[0])
    assert limit >= 10 * int(app.config["LOGIN_RATE_LIMIT"].split()[0])  # locking out takes >= 10 addresses
    fail_logins(app, limit - 1, "admin@acme.example")  # each from an address of its own
    # Below the bound, the right password from a fresh address still logs in (and gives its place back).
    assert login_from(app.test_client(), "203.0.113.1", "admin@acme.example", PASSWORD).status_code == 302
    fail_logins(app, 1, "admin@acme.example", address="203.0.113.2")
    assert_login_throttled(login_from(app.test_client(), "203.0.113.3", "admin@acme.example", PASSWORD))
    # Other emails from those addresses are not affected.
    assert login_from(app.test_client(), "198.51.100.1", "admin@globex.example", PASSWORD).status_code == 302


def test_nine_failures_do_not_throttle(app, orgs):
    fail_logins(app, 9, "admin@acme.example", address="192.0.2.10")
    assert login_from(app.test_client(), "192.0.2.10", "admin@acme.example", PASSWORD).status_code == 302


def test_other_peoples_failures_do_not_block_a_login(app, orgs):
    # Globex's email throttled from one address, and one address throttled: Acme's admin elsewhere logs in.
    fail_logins(app, 10, "admin@globex.example", address="192.0.2.1")
    for n in range(int(app.config["LOGIN_ADDRESS_RATE_LIMIT"].split()[0])):
        login_from(app.test_client(), "192.0.2.66", f"someone{n}@else.example", "wrong password")
    assert_login_throttled(login_from(app.test_client(), "192.0.2.1", "admin@globex.example", "whatever"))
    assert_login_throttled(login_from(app.test_client(), "192.0.2.66", "x@y.example", "whatever"))
    response = login_from(app.test_client(), "192.0.2.99", "admin@acme.example", PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/events")


def test_successful_logins_are_not_counted(app, orgs):
    client = app.test_client()
    here = {"REMOTE_ADDR": "192.0.2.10"}
    for _ in range(12):
        assert login_from(client, "192.0.2.10", "admin@acme.example", PASSWORD).status_code == 302
        page = client.get("/admin/events", environ_base=here)
        assert client.post("/logout", data={"csrf_token": csrf_token_from(page.text)},
                           environ_base=here).status_code == 302


def test_the_login_page_itself_is_never_throttled(app, orgs):
    fail_logins(app, 10, "admin@acme.example", address="192.0.2.10")
    response = app.test_client().get("/login", environ_base={"REMOTE_ADDR": "192.0.2.10"})
    assert response.status_code == 200


def test_the_throttle_lifts_after_fifteen_minutes(app, orgs):
    with freeze_time(datetime.now(UTC)) as clock:
        fail_logins(app, 10, "admin@acme.example", address="192.0.2.10")
        response = login_from(app.test_client(), "192.0.2.10", "admin@acme.example", PASSWORD)
        assert_login_throttled(response)
        clock.tick(int(response.headers["Retry-After"]) + 1)
        assert login_from(app.test_client(), "192.0.2.10", "admin@acme.example", PASSWORD).status_code == 302


# --- The admin is told ----------------------------------------------------------------------------

def throttle_notice(page) -> str | None:
    match = re.search(r'<section class="notice throttle-notice".*?</section>', page.text, re.S)
    return " ".join(match.group(0).split()) if match else None


def test_the_admin_is_told_on_the_dashboard_until_dismissed(app, orgs):
    fail_logins(app, 10, "admin@acme.example", address="192.0.2.10")
    with app.app_context():
        assert db.session.get(Admin, orgs["acme"].admin_id).throttled_logins == 0  # failures alone: no notice
    before = datetime.now(UTC).replace(microsecond=0)
    for _ in range(2):
        assert_login_throttled(login_from(app.test_client(), "192.0.2.10", "admin@acme.example", "guess"))
    # Told later, on another client, whichever worker it reaches: the count is on the admin's row.
    with app.app_context():
        admin = db.session.get(Admin, orgs["acme"].admin_id)
        assert admin.throttled_logins == 2
        at = admin.last_throttled_login_at
        assert before <= at <= datetime.now(UTC)
    client = app.test_client()
    here = {"REMOTE_ADDR": "203.0.113.7"}
    assert login_from(client, "203.0.113.7", "admin@acme.example", PASSWORD).status_code == 302
    page = client.get("/admin/settings/api_tokens", environ_base=here)
    notice = throttle_notice(page)
    assert notice is not None
    assert "2 logins for admin@acme.example were refused" in notice
    assert at.strftime("%Y-%m-%d %H:%M UTC") in notice
    assert throttle_notice(client.get("/admin/events", environ_base=here)) is not None  # on every page
    # Globex's admin was not throttled: no notice.
    other = app.test_client()
    assert login_from(other, "203.0.113.8", "admin@globex.example", PASSWORD).status_code == 302
    assert throttle_notice(other.get("/admin/events", environ_base={"REMOTE_ADDR": "203.0.113.8"})) is None
    # Dismissed (CSRF-protected), back to the page it was on, and gone from every page.
    assert client.post("/admin/notices/throttled_logins/dismiss", environ_base=here,
                       data={"next": "/admin/settings/api_tokens"}).status_code == 400
    dismissed = client.post("/admin/notices/throttled_logins/dismiss", environ_base=here,
                            data={"csrf_token": csrf_token_from(page.text), "next": "/admin/settings/api_tokens"})
    assert dismissed.status_code == 302 and dismissed.headers["Location"].endswith("/admin/settings/api_tokens")
    assert throttle_notice(client.get("/admin/events", environ_base=here)) is None
    # A new refusal brings it back.
    assert_login_throttled(login_from(app.test_client(), "192.0.2.10", "admin@acme.example", "guess"))
    assert "1 login for admin@acme.example was refused" in throttle_notice(
        client.get("/admin/events", environ_base=here))


def test_the_loose_email_bound_tells_the_admin_and_spraying_alone_does_not(app, orgs):
    limit = int(app.config["LOGIN_ADDRESS_RATE_LIMIT"].split()[0])
    for n in range(limit):  # one address, many emails (one of them the admin's)
        login_from(app.test_client(), "192.0.2.10", "admin@acme.example" if n == 0 else f"n{n}@example.com", "x")
    assert_login_throttled(login_from(app.test_client(), "192.0.2.10", "admin@acme.example", PASSWORD))
    with app.app_context():
        assert db.session.get(Admin, orgs["acme"].admin_id).throttled_logins == 0  # the address was throttled
    fail_logins(app, int(app.config["LOGIN_EMAIL_RATE_LIMIT"].split()[0]) - 1, "admin@acme.example")
    assert_login_throttled(login_from(app.test_client(), "203.0.113.9", "admin@acme.example", PASSWORD))
    with app.app_context():
        assert db.session.get(Admin, orgs["acme"].admin_id).throttled_logins == 1


@pytest.mark.app_config(LOGIN_RATE_LIMIT="3 per 15 minutes", LOGIN_ADDRESS_RATE_LIMIT="5 per 15 minutes",
                        LOGIN_EMAIL_RATE_LIMIT="7 per 15 minutes")
def test_the_login_limits_are_configurable(app, orgs):
    fail_logins(app, 3, "admin@acme.example", address="192.0.2.1")
    assert_login_throttled(login_from(app.test_client(), "192.0.2.1", "admin@acme.example", PASSWORD))
    fail_logins(app, 2, "other@acme.example", address="192.0.2.1")
    assert_login_throttled(login_from(app.test_client(), "192.0.2.1", "admin@globex.example", PASSWORD))
    fail_logins(app, 4, "admin@acme.example")
    assert_login_throttled(login_from(app.test_client(), "203.0.113.1", "admin@acme.example", PASSWORD))


# --- Unknown emails cost a password hash too --------------------------------------------------

@pytest.fixture
def kdf_calls(monkeypatch):
    """Every check_password_hash the login view makes: (hash, result). The real function runs."""
    calls = []

    def spy(pwhash: str, password: str) -> bool:
        result = real_check_password_hash(pwhash, password)
        calls.append((pwhash, result))
        return result

    monkeypatch.setattr(passwords_module, "check_password_hash", spy)
    return calls


def test_unknown_email_runs_the_same_kdf_as_a_wrong_password(app, client, orgs, kdf_calls):
    with app.app_context():
        admin_hash = db.session.get(Admin, orgs["acme"].admin_id).password_hash
    method = admin_hash.split("$", 1)[0]
    assert method == app.config["PASSWORD_HASH_METHOD"]

    assert login_from(client, "192.0.2.1", "admin@acme.example", "wrong password").status_code == 200
    assert kdf_calls == [(admin_hash, False)]

    kdf_calls.clear()
    for _ in range(2):  # the dummy hash is made once; each attempt still checks against it
        assert login_from(client, "192.0.2.1", "nobody@acme.example", "wrong password").status_code == 200
    assert len(kdf_calls) == 2
    for pwhash, result in kdf_calls:
        assert result is False
        assert pwhash != admin_hash
        assert pwhash.split("$", 1)[0] == method  # same algorithm and cost parameters


def test_no_login_makes_a_password_hash(app, client, orgs, monkeypatch):
    # The dummy hash is made with the app: the first unknown email costs one hash check
    # like every other attempt, not a hash generation on top.
    generated = []
    real = passwords_module.generate_password_hash
    monkeypatch.setattr(passwords_module, "generate_password_hash",
                        lambda *a, **k: generated.append(1) or real(*a, **k))
    for email in ("nobody@acme.example", "admin@acme.example", "other@acme.example"):
        assert login_from(client, "192.0.2.1", email, "wrong password").status_code == 200
    assert generated == []


def test_both_failures_give_the_same_answer(app, orgs):
    unknown = login_from(app.test_client(), "192.0.2.1", "nobody@acme.example", "wrong password")
    wrong = login_from(app.test_client(), "192.0.2.2", "admin@acme.example", "wrong password")
    assert unknown.status_code == wrong.status_code == 200
    assert login_module.BAD_CREDENTIALS in unknown.text and login_module.BAD_CREDENTIALS in wrong.text


# --- API: per-token rate limit ----------------------------------------------------------------

def assert_api_throttled(response, limit: int) -> None:
    assert response.status_code == 429
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    jsonschema.validate(response.json, ERROR_SCHEMA)
    assert response.json["error"] == "rate_limited"
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= 60
    assert response.headers["RateLimit-Limit"] == str(limit)
    assert response.headers["RateLimit-Remaining"] == "0"
    assert int(response.headers["RateLimit-Reset"]) == retry_after
    for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After"):
        assert len(response.headers.getlist(name)) == 1, name  # once, not again from the after_request hook


def test_default_api_limits(app):
    assert app.config["API_RATE_LIMIT"] == "600 per minute"
    assert app.config["LOGIN_RATE_LIMIT"] == "10 per 15 minutes"
    assert app.config["LOGIN_ADDRESS_RATE_LIMIT"] == "30 per 15 minutes"
    assert app.config["LOGIN_EMAIL_RATE_LIMIT"] == "100 per 15 minutes"


@pytest.mark.app_config(API_RATE_LIMIT="3 per minute")
def test_api_rate_limit_per_token(app, client, orgs, read_token):
    for remaining in (2, 1, 0):
        response = client.get("/admin/events", headers=bearer(read_token))
        assert response.status_code == 200
        assert response.headers["RateLimit-Limit"] == "3"
        assert response.headers["RateLimit-Remaining"] == str(remaining)
        assert 0 < int(response.headers["RateLimit-Reset"]) <= 60
    assert_api_throttled(client.get("/admin/events", headers=bearer(read_token)), 3)
    # Another token of the same account has its own budget.
    other = issue(app, orgs["acme"], "read")
    assert client.get("/admin/events", headers=bearer(other)).status_code == 200


@pytest.mark.app_config(API_RATE_LIMIT="2 per minute")
def test_api_rate_limit_window_resets(app, client, read_token):
    with freeze_time(datetime.now(UTC)) as clock:
        for _ in range(2):
            assert client.get("/admin/account", headers=bearer(read_token)).status_code == 200
        response = client.get("/admin/account", headers=bearer(read_token))
        assert_api_throttled(response, 2)
        clock.tick(int(response.headers["Retry-After"]) + 1)
        assert client.get("/admin/account", headers=bearer(read_token)).status_code == 200


# --- API: failed authentications per address --------------------------------------------------

@pytest.mark.app_config(API_FAILED_AUTH_LIMIT="5 per minute")
def test_failed_authentications_are_limited_per_address(app, client, orgs, read_token):
    bad = {"Authorization": "Bearer utx_not-a-token", "Accept": "application/json"}
    for _ in range(5):
        assert client.get("/admin/events", headers=bad, environ_base={"REMOTE_ADDR": "192.0.2.5"}).status_code == 401
    # The sixth failure from that address, whatever its kind (missing, malformed, unknown).
    for headers in (bad, {"Accept": "application/json"}):
        assert_api_throttled(client.get("/admin/events", headers=headers, environ_base={"REMOTE_ADDR": "192.0.2.5"}),
                             5)
    # Another address still gets its 401.
    assert client.get("/admin/events", headers=bad, environ_base={"REMOTE_ADDR": "192.0.2.6"}).status_code == 401
    # A valid token from the throttled address (a NAT shared with a misconfigured script) is served.
    assert client.get("/admin/events", headers=bearer(read_token),
                      environ_base={"REMOTE_ADDR": "192.0.2.5"}).status_code == 200


# --- Redis storage (what production uses with several gunicorn workers) -----------------------

class RedisRun:
    """Names unique to one test, so runs sharing the Redis database never meet, and cleanup."""

    def __init__(self):
        self.group = secrets.token_hex(2)
        self.email = f"throttle-{secrets.token_hex(6)}@example.com"
        self.token_id = 10**9 + secrets.randbelow(10**9)

    def address(self, n: int) -> str:
        return f"2001:db8:{self.group}::{n + 1:x}"  # IPv6 documentation range

    def stored_keys(self):
        import redis

        server = redis.Redis.from_url(REDIS_URL)
        # The email is keyed by its digest: a client's raw value never becomes a key.
        for pattern in (f"*{email_key(self.email)}*", f"*2001:db8:{self.group}::*", f"*api-token/{self.token_id}/*"):
            yield from ((server, key) for key in server.scan_iter(match=pattern))


@pytest.fixture
def redis_app(tmp_path, monkeypatch):
    """A factory of apps whose limits live in Redis, configured the operator's way (the
    environment), on one database; and the names this test may use there."""
    monkeypatch.setenv("USETIX_RATELIMIT_STORAGE_URL", REDIS_URL)
    settings = make_test_config(tmp_path)
    del settings["RATELIMIT_STORAGE_URL"]
    settings.update(API_RATE_LIMIT="3 per minute")
    apps = []

    def make():
        app = create_app(settings)
        with app.app_context():
            db.create_all()
        apps.append(app)
        return app

    run = RedisRun()
    yield make, run
    for server, key in list(run.stored_keys()):
        server.delete(key)
    for app in apps:
        with app.app_context():
            db.engine.dispose()


@needs_redis
def test_login_failures_are_counted_in_redis_and_outlive_the_app(redis_app):
    make, run = redis_app
    app = make()
    assert app.config["RATELIMIT_STORAGE_URL"] == REDIS_URL
    for _ in range(10):
        assert login_from(app.test_client(), run.address(0), run.email, "wrong password").status_code == 200
    assert any(email_key(run.email) in key.decode() for _, key in run.stored_keys()), "no counter in Redis"
    # A new app (another worker, or this one restarted) sees the same counters.
    assert_login_throttled(login_from(make().test_client(), run.address(0), run.email, "wrong password"))
    # From another address the email is still tried.
    assert login_from(make().test_client(), run.address(99), run.email, "wrong password").status_code == 200


@needs_redis
def test_api_rate_limit_is_shared_through_redis(redis_app):
    from usetix.core import token_format as tokens
    from usetix.database.models import Account, ApiToken

    make, run = redis_app
    app = make()
    raw = tokens.generate()
    with app.app_context():
        account = Account(name="Redis")
        db.session.add(account)
        db.session.flush()
        admin = Admin(account_id=account.id, email=run.email, password_hash="x")
        db.session.add(admin)
        db.session.flush()
        # An id no other run uses: the limit is keyed by token id.
        db.session.add(ApiToken(id=run.token_id, account_id=account.id, created_by_id=admin.id,
                                description="redis", tier="read", digest=tokens.digest(raw)))
        db.session.commit()
    for _ in range(3):
        assert app.test_client().get("/admin/account", headers=bearer(raw)).status_code == 200
    assert_api_throttled(make().test_client().get("/admin/account", headers=bearer(raw)), 3)


def test_a_json_client_cannot_reach_the_login_form(app, orgs):
    # /login is a page, not an API endpoint: a JSON request never tries a password there,
    # so it can neither bypass the login throttle nor be counted by it.
    client = app.test_client()
    for _ in range(12):
        response = client.post("/login", headers={"Accept": "application/json"},
                               data={"email": "admin@acme.example", "password": "wrong password"})
        assert response.status_code == 401
        assert response.json["error"] == "missing_token"
    assert login_from(client, "127.0.0.1", "admin@acme.example", PASSWORD).status_code == 302
