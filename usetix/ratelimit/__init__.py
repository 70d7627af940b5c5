"""Every rate limit of Usetix, counted through the ``limits`` library's public API.

Three kinds of limit, each a fixed window (``FixedWindowRateLimiter``) in the storage
that ``RATELIMIT_STORAGE_URI`` names (``USETIX_RATELIMIT_STORAGE_URL``; see
``storage_from_string``):

- failed logins, per email and per client address (``LOGIN_RATE_LIMIT``);
- API requests, per token (``API_RATE_LIMIT``);
- failed API authentications, per client address (``API_FAILED_AUTH_LIMIT``).

The settings keep the names and meaning Flask-Limiter gave them, which operators know:
``RATELIMIT_ENABLED = False`` (for a deployment behind a rate-limiting gateway) switches
every limit off: nothing is counted, no ``RateLimit-*`` header is sent, no request is
refused with 429. The app is bound once, in ``create_app``, through :func:`init_app`.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from flask import Flask
from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

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
        self.limiter = FixedWindowRateLimiter(self.storage)
        self.login = parse(config["LOGIN_RATE_LIMIT"])
        self.api = parse(config["API_RATE_LIMIT"])
        self.failed_auth = parse(config["API_FAILED_AUTH_LIMIT"])

    def hit(self, item: RateLimitItem, *key: str) -> Verdict | None:
        """Count one request against ``item`` for ``key``; None when limits are off."""
        if not self.enabled:
            return None
        allowed = self.limiter.hit(item, *key)
        return Verdict(allowed, self._headers(item, key, allowed))

    def hit_quietly(self, item: RateLimitItem, *key: str) -> Verdict | None:
        """Like :meth:`hit`, but the headers are read only for a refusal (a failed
        authentication's 401 carries none, so it spares the window's read)."""
        if not self.enabled:
            return None
        if self.limiter.hit(item, *key):
            return Verdict(True, {})
        return Verdict(False, self._headers(item, key, False))

    def reserve_login_attempt(self, email: str, address: str | None) -> LoginAttempt:
        """Count a login attempt for this email and address before its password is
        checked, so that concurrent attempts on any worker cannot exceed the limit; a
        successful or refused attempt gives its place back (:meth:`LoginAttempt.release`)."""
        keys = (("login-email", email_key(email)), ("login-address", address or ""))
        if not self.enabled:
            return LoginAttempt(self, (), None)
        item = self.login
        counted = []
        for key in keys:
            allowed = self.limiter.hit(item, *key)
            counted.append(key)
            if not allowed:
                attempt = LoginAttempt(self, tuple(counted), self._headers(item, key, False))
                attempt.release()
                return attempt
        return LoginAttempt(self, tuple(counted), None)

    def _headers(self, item: RateLimitItem, key: tuple[str, ...], allowed: bool) -> dict[str, str]:
        reset_at, remaining = self.limiter.get_window_stats(item, *key)
        reset = str(max(1, math.ceil(reset_at - time.time())))
        headers = {"RateLimit-Limit": str(item.amount), "RateLimit-Remaining": str(remaining),
                   "RateLimit-Reset": reset}
        if not allowed:
            headers["Retry-After"] = reset
        return headers


class LoginAttempt:
    """A login attempt's places in the failed-login windows: kept if the password was
    wrong, given back otherwise. ``refused`` holds the 429's headers when a window was
    already full (its place is given back at once)."""

    def __init__(self, limits: RateLimits, counted: tuple[tuple[str, ...], ...], refused: dict[str, str] | None):
        self._limits = limits
        self._counted = counted
        self.refused = refused

    def release(self) -> None:
        """Give the counted places back: only failed logins count against the limit."""
        for key in self._counted:
            self._limits.limiter.hit(self._limits.login, *key, cost=-1)
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
