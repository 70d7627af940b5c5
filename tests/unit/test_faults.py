"""A rate-limit storage that failed is left alone for a moment, so a hanging one
does not cost every request its timeout."""

from __future__ import annotations

import pytest

from ..helpers import DEVICE_LIMITS, closed_redis_url


def test_after_an_outage_the_storage_is_left_alone_for_a_moment(monkeypatch):
    """A storage that hangs must not cost every request its timeout: after a failure the
    API's limits skip it (fail open) and logins are refused (fail closed) without asking
    it, for OUTAGE_RETRY_SECONDS; then it is asked again."""
    from limits.errors import StorageError

    from usetix.ratelimit import limits as ratelimit

    limits = ratelimit.RateLimits({"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URL": closed_redis_url(),
                                   "LOGIN_RATE_LIMIT": "3/minute", "LOGIN_ADDRESS_RATE_LIMIT": "3/minute",
                                   "LOGIN_EMAIL_RATE_LIMIT": "3/minute", "API_RATE_LIMIT": "3/minute",
                                   "API_FAILED_AUTH_LIMIT": "3/minute", "LEAK_REPORT_RATE_LIMIT": "3/minute",
                                   **DEVICE_LIMITS})
    calls = []

    def incr(key, expiry, amount=1):
        calls.append(key)
        raise StorageError(ConnectionError("down"))

    monkeypatch.setattr(limits.storage, "incr", incr)
    clock = [1000.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: clock[0])
    assert limits.hit(limits.api, "api-token", "1") is None and len(calls) == 1
    assert limits.hit(limits.api, "api-token", "1") is None and len(calls) == 1  # not asked again
    with pytest.raises(ratelimit.LimitsUnavailable):
        limits.reserve_login_attempt("a@example.com", "192.0.2.1")
    assert len(calls) == 1
    clock[0] += ratelimit.OUTAGE_RETRY_SECONDS
    assert limits.hit_quietly(limits.failed_auth, "api-auth-failures", "192.0.2.1") is None
    assert len(calls) == 2  # asked again, once the moment has passed
