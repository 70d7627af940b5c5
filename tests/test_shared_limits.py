"""The login throttle holds exactly across workers and hosts: counted in Redis when
USETIX_RATELIMIT_STORAGE_URL names one, else in the app's database (usetix-database://,
usetix/ratelimit/database_storage.py). The API's limits stay per worker without Redis.

Unit tests of the database storage, the storage each limit is counted in, bounded keys,
and real gunicorn with two workers on the suite's database (SQLite or PostgreSQL) and on
Redis.
"""

from __future__ import annotations

import re
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
import requests
import sqlalchemy as sa
from freezegun import freeze_time
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from usetix import create_app
from usetix.extensions import db
from usetix.models import RateLimitCounter
from usetix.ratelimit import address_key, rate_limits
from usetix.ratelimit.database_storage import DatabaseStorage
from usetix.ratelimit.storage import WorkerMemoryStorage

from .databases import REDIS_URL, redis_client_or_skip, scratch_database
from .helpers import PASSWORD, csrf_token_from, make_test_config
from .servers import HeldRequest, gunicorn, prepare_database

TIMEOUT = 10


def counters(app) -> dict[str, int]:
    with app.app_context():
        return dict(db.session.execute(sa.select(RateLimitCounter.key, RateLimitCounter.count)).all())


@pytest.fixture
def storage(app):
    with app.app_context():
        return DatabaseStorage(engine=db.engine)


# --- The database storage ---------------------------------------------------------------------

def test_counts_in_fixed_windows(storage):
    with freeze_time("2026-06-01 09:00:00") as clock:
        limiter = FixedWindowRateLimiter(storage)
        item = parse("2 per minute")
        assert limiter.hit(item, "a") and limiter.hit(item, "a")
        assert not limiter.hit(item, "a")
        assert limiter.hit(item, "b")  # another key, its own window
        stats = limiter.get_window_stats(item, "a")
        assert stats.remaining == 0
        assert stats.reset_time == datetime(2026, 6, 1, 9, 1, tzinfo=UTC).timestamp()
        clock.tick(60)
        assert limiter.get_window_stats(item, "a").remaining == 2
        assert limiter.hit(item, "a")
        assert storage.get(item.key_for("a")) == 1


def test_it_is_registered_with_limits_under_its_own_scheme(app):
    with app.app_context():
        assert isinstance(storage_from_string("usetix-database://", engine=db.engine), DatabaseStorage)
    with pytest.raises(ValueError, match="engine"):
        storage_from_string("usetix-database://")


def test_concurrent_increments_are_atomic(app, storage):
    """Eight threads, 25 increments each, on one key: every count is seen exactly once."""
    seen: list[int] = []
    lock = threading.Lock()

    def count():
        for _ in range(25):
            value = storage.incr("busy", 60)
            with lock:
                seen.append(value)

    threads = [threading.Thread(target=count) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == list(range(1, 201))
    assert storage.get("busy") == 200


def test_expired_counters_are_swept_in_batches(app, storage, monkeypatch):
    monkeypatch.setattr(DatabaseStorage, "SWEEP_BATCH", 3)
    with freeze_time("2026-06-01 09:00:00") as clock:
        for n in range(7):
            storage.incr(f"old-{n}", 60)
        clock.tick(61)
        storage.incr("new", 60)  # sweeps a full batch, so the next count sweeps again
        assert len(counters(app)) == 1 + 7 - 3
        storage.incr("new", 60)
        assert len(counters(app)) == 1 + 7 - 6
        storage.incr("new", 60)  # the last expired row: the backlog is gone
        assert counters(app) == {"new": 3}
        clock.tick(1)
        storage.incr("new", 60)
        assert storage._next_sweep >= clock().timestamp() + 59  # no sweep for a minute now


def test_a_long_key_is_stored_as_its_digest(app, storage):
    key = "LIMITER/x/" + "a" * 10_000
    assert storage.incr(key, 60) == 1 and storage.incr(key, 60) == 2
    [stored] = counters(app)
    assert len(stored) <= 255 and stored.startswith("sha256:")
    storage.clear(key)
    assert counters(app) == {}


def test_clear_reset_and_check(app, storage):
    storage.incr("a", 60)
    storage.incr("b", 60, amount=3)
    storage.clear("a")
    assert (storage.get("a"), storage.get("b")) == (0, 3)
    assert storage.reset() == 1 and storage.get("b") == 0
    assert storage.check()


# --- Which storage counts which limit ---------------------------------------------------------

def test_without_redis_the_login_throttle_is_counted_in_the_database(app, client, orgs):
    limits = rate_limits(app)
    assert isinstance(limits.storage, WorkerMemoryStorage)  # the API's limits: per worker
    assert isinstance(limits.shared_storage, DatabaseStorage)
    page = client.get("/login")
    response = client.post("/login", data={"email": "admin@acme.example", "password": "wrong",
                                           "csrf_token": csrf_token_from(page.text)})
    assert response.status_code == 200
    assert sorted(counters(app).values()) == [1, 1, 1]  # the email from the address, the address, the email


def test_two_apps_on_one_database_share_the_login_throttle(app, tmp_path, orgs):
    """Two workers are two apps on one database: failures on either count for both."""
    other = create_app({**make_test_config(tmp_path), "DATABASE_URL": app.config["DATABASE_URL"]})
    for n in range(10):
        worker = (app, other)[n % 2]
        client = worker.test_client()
        page = client.get("/login")
        assert client.post("/login", data={"email": "admin@acme.example", "password": "wrong",
                                           "csrf_token": csrf_token_from(page.text)},
                           environ_base={"REMOTE_ADDR": "192.0.2.1"}).status_code == 200
    for worker in (app, other):
        client = worker.test_client()
        page = client.get("/login")
        response = client.post("/login", data={"email": "admin@acme.example", "password": PASSWORD,
                                               "csrf_token": csrf_token_from(page.text)},
                               environ_base={"REMOTE_ADDR": "192.0.2.1"})
        assert response.status_code == 429
    with other.app_context():
        db.engine.dispose()


@pytest.mark.app_config(RATELIMIT_STORAGE_URL="memory://")
def test_limits_own_memory_storage_is_per_worker_too(app):
    assert isinstance(rate_limits(app).shared_storage, DatabaseStorage)


@pytest.mark.app_config(RATELIMIT_STORAGE_URL="usetix-database://")
def test_every_limit_can_be_counted_in_the_database(app):
    limits = rate_limits(app)
    assert isinstance(limits.storage, DatabaseStorage) and limits.shared_storage is limits.storage


# --- Bounded keys -----------------------------------------------------------------------------

def test_a_450_kb_email_is_a_form_error_and_stores_no_key(app, client, orgs):
    page = client.get("/login")
    huge = "a" * (450 * 1024) + "@example.com"
    response = client.post("/login", data={"email": huge, "password": "x", "csrf_token": csrf_token_from(page.text)})
    assert response.status_code == 200
    assert "Field cannot be longer than 254 characters." in response.text
    assert counters(app) == {}  # refused before anything was counted
    assert rate_limits(app).storage.reset() == 0  # nor in the worker's memory


def test_address_keys_are_bounded():
    assert address_key("2001:db8::1") == "2001:db8::1"
    assert address_key(None) == ""
    long = address_key("x" * 10_000)
    assert long.startswith("sha256:") and len(long) < 64


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
