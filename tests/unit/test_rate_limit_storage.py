"""The default rate-limit storage (worker-memory://): limits' fixed-window counters in the
worker's memory, with no background thread."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from freezegun import freeze_time
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from usetix import config
from usetix.ratelimit.worker_memory import WorkerMemoryStorage

from ..helpers import DEVICE_LIMITS


def test_it_is_the_default_storage(tmp_path):
    assert config.defaults(str(tmp_path))["RATELIMIT_STORAGE_URL"] == "worker-memory://"
    assert isinstance(storage_from_string("worker-memory://"), WorkerMemoryStorage)


def test_counts_in_fixed_windows_like_limits_memory_storage():
    with freeze_time("2026-06-01 09:00:00") as clock:
        limiter_ = FixedWindowRateLimiter(WorkerMemoryStorage())
        item = parse("2 per minute")
        assert limiter_.hit(item, "token", "1") and limiter_.hit(item, "token", "1")
        assert not limiter_.hit(item, "token", "1")
        assert limiter_.hit(item, "token", "2")  # another key has its own budget
        stats = limiter_.get_window_stats(item, "token", "1")
        assert stats.remaining == 0 and stats.reset_time == datetime(2026, 6, 1, 9, 1, tzinfo=UTC).timestamp()
        clock.tick(60)
        assert limiter_.get_window_stats(item, "token", "1").remaining == 2
        assert limiter_.hit(item, "token", "1")


def test_starts_no_thread_and_sweeps_expired_counters():
    # The threads alive before, not their count: limits' memory:// storage of another test
    # leaves a timer thread that may end meanwhile.
    before = set(threading.enumerate())
    with freeze_time("2026-06-01 09:00:00") as clock:
        storage = WorkerMemoryStorage()
        for n in range(100):
            storage.incr(f"address-{n}", 60)
        assert set(threading.enumerate()) - before == set()
        clock.tick(61)
        storage.incr("late", 60)  # past the sweep time: the 100 expired counters go
        assert list(storage._counters) == ["late"]


def test_clear_and_reset():
    storage = WorkerMemoryStorage()
    storage.incr("a", 60)
    storage.incr("b", 60, amount=3)
    storage.clear("a")
    assert (storage.get("a"), storage.get("b")) == (0, 3)
    assert storage.reset() == 1 and storage.get("b") == 0
    assert storage.check()


@pytest.mark.parametrize("uri", ["worker-memory://", "memory://"])
def test_our_counting_is_fixed_window_rate_limiters_own(uri):
    """usetix.ratelimit counts on the storage's interface, not through FixedWindowRateLimiter:
    on the same storage, limits' own limiter must see exactly our counts (a change of limits'
    keys or window algorithm fails here)."""
    from usetix.ratelimit import RateLimits, email_key

    with freeze_time("2026-06-01 09:00:00"):
        limits = RateLimits({"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URL": uri, "LOGIN_RATE_LIMIT": "3/minute",
                             "LOGIN_ADDRESS_RATE_LIMIT": "5/minute", "LOGIN_EMAIL_RATE_LIMIT": "7/minute",
                             "API_RATE_LIMIT": "3 per minute", "API_FAILED_AUTH_LIMIT": "3 per minute",
                             "LEAK_REPORT_RATE_LIMIT": "3 per minute", **DEVICE_LIMITS})
        reference = FixedWindowRateLimiter(limits.storage)
        for expected_remaining in (2, 1, 0):
            verdict = limits.hit(limits.api, "api-token", "7")
            assert verdict.allowed
            assert verdict.headers["RateLimit-Remaining"] == str(expected_remaining)
            stats = reference.get_window_stats(limits.api, "api-token", "7")
            assert stats.remaining == expected_remaining
            assert int(verdict.headers["RateLimit-Reset"]) == round(stats.reset_time - datetime.now(UTC).timestamp())
        assert not limits.hit(limits.api, "api-token", "7").allowed
        assert not reference.test(limits.api, "api-token", "7")
        # A login attempt that is given back leaves limits' count where it was.
        windows = ((limits.login, ("login-pair", email_key("someone@example.com"), "192.0.2.1"), 3),
                   (limits.login_address, ("login-address", "192.0.2.1"), 5),
                   (limits.login_email, ("login-email", email_key("someone@example.com")), 7))
        attempt = limits.reserve_login_attempt("Someone@Example.com ", "192.0.2.1")
        for item, key, amount in windows:
            assert reference.get_window_stats(item, *key).remaining == amount - 1
        attempt.release()
        for item, key, amount in windows:
            assert reference.get_window_stats(item, *key).remaining == amount
