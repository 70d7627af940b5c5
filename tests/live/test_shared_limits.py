"""The login throttle holds exactly across two gunicorn workers, counted in the suite's
database (SQLite or PostgreSQL) or in Redis."""

from __future__ import annotations

import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest
import requests

from usetix.database.engine import db
from usetix.ratelimit.database_storage import DatabaseStorage

from ..databases import REDIS_URL, redis_client_or_skip, scratch_database
from ..helpers import PASSWORD, csrf_token_from
from ..servers import HeldRequest, gunicorn, prepare_database

TIMEOUT = 10


@pytest.fixture
def storage(app):
    with app.app_context():
        return DatabaseStorage(engine=db.engine)


# --- Real gunicorn, two workers -----------------------------------------------------------------

def login_attempt(base: str, email: str, password: str, address: str) -> int:
    """One login through the real form, as a client at ``address`` (via the proxy's header)."""
    http = requests.Session()
    forwarded = {"X-Forwarded-For": address}
    page = http.get(base + "/login", headers=forwarded, timeout=TIMEOUT)
    response = http.post(base + "/login", headers=forwarded, allow_redirects=False, timeout=TIMEOUT,
                         data={"email": email, "password": password, "csrf_token": csrf_token_from(page.text)})
    return response.status_code


def held_login_attempt(base: str, email: str, password: str, address: str) -> HeldRequest:
    """:func:`login_attempt`, its POST held by one worker until ``finish()``."""
    http = requests.Session()
    forwarded = {"X-Forwarded-For": address}
    page = http.get(base + "/login", headers=forwarded, timeout=TIMEOUT)
    body = urlencode({"email": email, "password": password, "csrf_token": csrf_token_from(page.text)})
    cookies = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
    headers = {**forwarded, "Content-Type": "application/x-www-form-urlencoded",
               **({"Cookie": cookies} if cookies else {})}
    return HeldRequest(base, "POST", "/login", headers, body.encode())


def redis_or_skip():
    client = redis_client_or_skip()
    return client


@pytest.fixture(scope="module")
def database_url(tmp_path_factory):
    """A fresh database of the suite's kind, made by the migrations and seeded."""
    with scratch_database(tmp_path_factory.mktemp("shared-limits"), "shared_limits") as url:
        prepare_database(url, PASSWORD)
        yield url


@pytest.mark.gunicorn
@pytest.mark.parametrize("storage_kind", ["database", "redis"])
def test_two_gunicorn_workers_share_the_login_throttle(database_url, tmp_path, storage_kind):
    """Ten wrong passwords for one email from one address, on both workers: all 200; the
    eleventh is 429, whichever worker answers, while another address may still try the
    email. Likewise for one address across emails, and for the email's loose bound (the
    limits made small here: counting is what is tested)."""
    settings = {"PROXY_FIX": "true", "LOGIN_ADDRESS_RATE_LIMIT": "10 per 15 minutes",
                "LOGIN_EMAIL_RATE_LIMIT": "12 per 15 minutes"}
    redis = None
    if storage_kind == "redis":
        redis = redis_or_skip()
        settings["RATELIMIT_STORAGE_URL"] = REDIS_URL
    run = secrets.token_hex(4)
    email = f"attacker-{run}@example.com"
    address = f"2001:db8:{run[:4]}::1"
    log = tmp_path / "gunicorn.log"
    # gunicorn's access log, off by default, here names the worker (pid) of each answer.
    access = ["--access-logfile", "-", "--access-logformat", "pid=%(p)s %(m)s %(U)s %(s)s"]
    try:
        with gunicorn(database_url, workers=2, log_path=log, extra_args=access, **settings) as base:
            # The first attempt is held by one worker while the other nine go to the other
            # worker, four at a time, so that both answer whatever the race for connections.
            pair_address = f"2001:db8:{run[:4]}::a"
            held = held_login_attempt(base, email, "wrong", pair_address)
            with ThreadPoolExecutor(4) as pool:
                by_pair = list(pool.map(lambda _: login_attempt(base, email, "wrong", pair_address), range(9)))
                by_pair.append(held.finish())
                by_address = list(pool.map(lambda n: login_attempt(base, f"{n}-{email}", "wrong", address),
                                           range(10)))
            assert by_pair == [200] * 10 and by_address == [200] * 10
            assert login_attempt(base, email, "wrong", pair_address) == 429
            assert login_attempt(base, f"other-{email}", "wrong", address) == 429
            # The email from another address is still tried: its eleventh failure counts...
            assert login_attempt(base, email, "wrong", f"2001:db8:{run[:4]}::f1") == 200
            # ...and of four more at once, on both workers, exactly one reaches the loose bound (12).
            with ThreadPoolExecutor(4) as pool:
                assert sorted(pool.map(lambda n: login_attempt(base, email, "wrong", f"2001:db8:{run[:4]}::f{n + 2:x}"),
                                       range(4))) == [200, 429, 429, 429]
            # Someone else, elsewhere, logs in.
            assert login_attempt(base, "admin@acme.example", PASSWORD, f"2001:db8:{run[:4]}::f9") == 302
    finally:
        if redis is not None:
            mine = (run[:4], *_email_digests(email))
            for key in redis.scan_iter(match="*LIMITER/login-*"):
                if any(part in key.decode() for part in mine):
                    redis.delete(key)
            redis.close()
    workers = set(re.findall(r"pid=<(\d+)> POST /login (?:200|429)", log.read_text()))
    assert len(workers) == 2, "both workers should have answered logins"


def _email_digests(email: str):
    from usetix.ratelimit import email_key

    return [email_key(email), *(email_key(f"{n}-{email}") for n in range(10)), email_key(f"other-{email}")]
