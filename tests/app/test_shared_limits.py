"""The login throttle holds exactly across workers and hosts: counted in Redis when
USETIX_RATELIMIT_STORAGE_URL names one, else in the app's database (usetix-database://,
usetix/ratelimit/database_storage.py). The API's limits stay per worker without Redis.

Here: the database storage, and the storage each limit is counted in. Two real gunicorn
workers sharing the throttle: tests/live/test_shared_limits.py.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from freezegun import freeze_time
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from usetix import create_app
from usetix.database.engine import db
from usetix.database.models import RateLimitCounter
from usetix.ratelimit import rate_limits
from usetix.ratelimit.database_storage import DatabaseStorage
from usetix.ratelimit.worker_memory import WorkerMemoryStorage

from ..helpers import PASSWORD, csrf_token_from, make_test_config


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
