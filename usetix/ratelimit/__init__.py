"""Every rate limit of Usetix, counted through the ``limits`` library's public API.

Three kinds of limit, each a fixed window (``FixedWindowRateLimiter``) in the storage
that ``RATELIMIT_STORAGE_URI`` names (``USETIX_RATELIMIT_STORAGE_URL``; see
``storage_from_string``):

- failed logins, per email and per client address (``LOGIN_RATE_LIMIT``);
- API requests, per token (``API_RATE_LIMIT``);
- failed API authentications, per client address (``API_FAILED_AUTH_LIMIT``).
- leak reports (``POST /admin/credentials/revoke``), per client address (``LEAK_REPORT_RATE_LIMIT``).

The settings keep the names and meaning Flask-Limiter gave them, which operators know:
``RATELIMIT_ENABLED = False`` (for a deployment behind a rate-limiting gateway) switches
every limit off: nothing is counted, no ``RateLimit-*`` header is sent, no request is
refused with 429. The app is bound once, in ``create_app``, through :func:`init_app`.

Counting is ``FixedWindowRateLimiter``'s algorithm (``Storage.incr`` of the limit's key with
the window's expiry), written against the storage's public interface so that one counter
update gives both the verdict and the ``RateLimit-Remaining`` count, and the key is built
once per token: through ``hit`` and ``get_window_stats`` the per-token limit cost several
times as much (bench/RESULTS.md). tests/test_rate_limit_storage.py holds the counts to
``FixedWindowRateLimiter``'s own on the same storage.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple

from flask import Flask
from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string

from . import storage as _storage  # noqa: F401  (registers the worker-memory:// scheme with limits)

EXTENSION_KEY = "usetix.ratelimit"


class Verdict(NamedTuple):
    """One counted request: whether it may go on, and its ``RateLimit-*`` headers
    (with ``Retry-After`` when refused)."""

    allowed: bool
    headers: dict[str, str]


class RateLimits:
    """The app's limits and the one storage that counts them."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.enabled = bool(config["RATELIMIT_ENABLED"])
        self.storage: Storage = storage_from_string(config["RATELIMIT_STORAGE_URI"])
        self.login = parse(config["LOGIN_RATE_LIMIT"])
        self.api = parse(config["API_RATE_LIMIT"])
        self.failed_auth = parse(config["API_FAILED_AUTH_LIMIT"])
        self.leak_report = parse(config["LEAK_REPORT_RATE_LIMIT"])

    def hit(self, item: RateLimitItem, *key: str) -> Verdict | None:
        """Count one request against ``item`` for ``key``; None when limits are off."""
        if not self.enabled:
            return None
        name, expiry = _window(item, *key)
        count = self.storage.incr(name, expiry)
        allowed = count <= item.amount
        return Verdict(allowed, self._headers(item, name, count, allowed))

    def hit_quietly(self, item: RateLimitItem, *key: str) -> Verdict | None:
        """Like :meth:`hit`, but the headers are read only for a refusal (a failed
        authentication's 401 carries none, so it spares the window's read)."""
        if not self.enabled:
            return None
        name, expiry = _window(item, *key)
        count = self.storage.incr(name, expiry)
        if count <= item.amount:
            return Verdict(True, {})
        return Verdict(False, self._headers(item, name, count, False))

    def reserve_login_attempt(self, email: str, address: str | None) -> LoginAttempt:
        """Count a login attempt for this email and address before its password is
        checked, so that concurrent attempts on any worker cannot exceed the limit; a
        successful or refused attempt gives its place back (:meth:`LoginAttempt.release`)."""
        if not self.enabled:
            return LoginAttempt(self, (), None)
        item = self.login
        counted = []
        for key in (("login-email", email_key(email)), ("login-address", address or "")):
            name, expiry = _window(item, *key)
            count = self.storage.incr(name, expiry)
            counted.append((name, expiry))
            if count > item.amount:
                attempt = LoginAttempt(self, tuple(counted), self._headers(item, name, count, False))
                attempt.release()
                return attempt
        return LoginAttempt(self, tuple(counted), None)

    def _headers(self, item: RateLimitItem, name: str, count: int, allowed: bool) -> dict[str, str]:
        reset = str(max(1, math.ceil(self.storage.get_expiry(name) - time.time())))
        headers = {"RateLimit-Limit": str(item.amount), "RateLimit-Remaining": str(max(0, item.amount - count)),
                   "RateLimit-Reset": reset}
        if not allowed:
            headers["Retry-After"] = reset
        return headers


@lru_cache(maxsize=4096)
def _window(item: RateLimitItem, *key: str) -> tuple[str, int]:
    """The storage key of ``item``'s window for ``key``, as limits names it, and its length."""
    return item.key_for(*key), item.get_expiry()


class LoginAttempt:
    """A login attempt's places in the failed-login windows: kept if the password was
    wrong, given back otherwise. ``refused`` holds the 429's headers when a window was
    already full (its place is given back at once)."""

    def __init__(self, limits: RateLimits, counted: tuple[tuple[str, int], ...], refused: dict[str, str] | None):
        self._limits = limits
        self._counted = counted
        self.refused = refused

    def release(self) -> None:
        """Give the counted places back: only failed logins count against the limit."""
        for name, expiry in self._counted:
            self._limits.storage.incr(name, expiry, amount=-1)
        self._counted = ()


def email_key(email: str) -> str:
    """A bounded key for an email as typed: the digest of its normalized form (the raw
    value may be anything a client sends)."""
    return hashlib.sha256(email.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()[:32]


def init_app(app: Flask) -> RateLimits:
    limits = app.extensions[EXTENSION_KEY] = RateLimits(app.config)
    return limits


def rate_limits(app: Flask) -> RateLimits:
    """The limits bound to ``app`` (by :func:`init_app`)."""
    return app.extensions[EXTENSION_KEY]
