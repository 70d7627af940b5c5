"""Every rate limit of Usetix, counted through the ``limits`` library's public API.

Four limits, each a fixed window (``FixedWindowRateLimiter``'s algorithm, below):

- failed logins: per email and client address together (``LOGIN_RATE_LIMIT``), per client
  address across emails (``LOGIN_ADDRESS_RATE_LIMIT``: spraying), and per email from every
  address at a much looser bound (``LOGIN_EMAIL_RATE_LIMIT``), so that failures from one
  address never refuse the right password from another;
- API requests, per token (``API_RATE_LIMIT``);
- failed API authentications, per client address (``API_FAILED_AUTH_LIMIT``);
- leak reports (``POST /admin/credentials/revoke``), per client address (``LEAK_REPORT_RATE_LIMIT``).

Where they are counted. ``RATELIMIT_STORAGE_URI`` (``USETIX_RATELIMIT_STORAGE_URL``; see
``storage_from_string``) names the storage. A Redis URL counts every limit there, shared
by every worker and host. The default, ``worker-memory://``, counts in each worker's
memory: right for the two API limits, which exist to shed load (a client gets at most
workers times hosts times the limit), and wrong for the login throttle, which must hold
exactly. So when the configured storage is per worker, the login throttle (and any other
limit counted with :meth:`RateLimits.hit_shared`) is counted in the app's database
instead (``usetix-database://``, ``database_storage.py``).

When the storage fails (Redis down). The API's limits fail open: the request is served
uncounted, without ``RateLimit-*`` headers, and the outage is logged as an error at most
once per ``OUTAGE_LOG_SECONDS`` per worker. The login throttle fails closed: the login
form answers 503 (:class:`LimitsUnavailable`) until the storage is back. After a failure
a storage is left alone for ``OUTAGE_RETRY_SECONDS``, so a storage that hangs costs a
request its timeout at most that often.

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
import logging
import math
import threading
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Flask
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, Storage, storage_from_string

from ..database.engine import db
from . import database_storage
from .storage import WorkerMemoryStorage  # importing it registers the worker-memory:// scheme with limits

EXTENSION_KEY = "usetix.ratelimit"
OUTAGE_LOG_SECONDS = 60.0
OUTAGE_RETRY_SECONDS = 2.0
# Bounded waits on Redis: a storage that does not answer must not hold a worker for long.
REDIS_TIMEOUTS = {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}
_REDIS_SCHEMES = frozenset({"redis", "rediss", "redis+unix", "valkey", "valkeys", "valkey+unix"})
# Counters in one process's memory: every worker (and host) counts on its own.
PER_WORKER_STORAGES = (WorkerMemoryStorage, MemoryStorage)
# An IPv6 address with a zone fits; a longer "address" (a forwarded header's junk) is digested.
MAX_ADDRESS_KEY = 64

logger = logging.getLogger("usetix.ratelimit")


class Verdict(NamedTuple):
    """One counted request: whether it may go on, and its ``RateLimit-*`` headers
    (with ``Retry-After`` when refused)."""

    allowed: bool
    headers: dict[str, str]


class LimitsUnavailable(Exception):
    """A limit that fails closed could not be counted: its storage is down."""


class _Counter:
    """A storage, and what this worker knows of its health."""

    def __init__(self, storage: Storage, name: str) -> None:
        self.storage = storage
        self.name = name
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._logged_at = -math.inf

    def available(self) -> bool:
        if not self._down_until:  # no outage: no clock read on the hot path
            return True
        if time.monotonic() < self._down_until:
            return False
        self._down_until = 0.0
        return True

    def failed(self, exc: BaseException, consequence: str) -> None:
        """Remember an outage; log it unless it was logged within OUTAGE_LOG_SECONDS."""
        now = time.monotonic()
        with self._lock:
            self._down_until = now + OUTAGE_RETRY_SECONDS
            if now - self._logged_at < OUTAGE_LOG_SECONDS:
                return
            self._logged_at = now
        logger.error("rate-limit storage %s unavailable (%s): %s; logged at most every %d s",
                     self.name, exc.__cause__ or exc, consequence, OUTAGE_LOG_SECONDS)


class RateLimits:
    """The app's limits and the storages that count them."""

    def __init__(self, config: Mapping[str, Any], engine: sa.Engine | None = None) -> None:
        self.enabled = bool(config["RATELIMIT_ENABLED"])
        uri = config["RATELIMIT_STORAGE_URI"]
        self.storage: Storage = open_storage(uri, engine)
        self._counter = _Counter(self.storage, _describe(uri))
        if isinstance(self.storage, PER_WORKER_STORAGES) and engine is not None:
            shared = open_storage(f"{database_storage.SCHEME}://", engine)
            self._shared = _Counter(shared, "usetix-database:// (the app's database)")
        else:
            self._shared = self._counter
        self.shared_storage: Storage = self._shared.storage
        self.login = parse(config["LOGIN_RATE_LIMIT"])
        self.login_address = parse(config["LOGIN_ADDRESS_RATE_LIMIT"])
        self.login_email = parse(config["LOGIN_EMAIL_RATE_LIMIT"])
        self.api = parse(config["API_RATE_LIMIT"])
        self.failed_auth = parse(config["API_FAILED_AUTH_LIMIT"])
        self.leak_report = parse(config["LEAK_REPORT_RATE_LIMIT"])

    # --- Limits that shed load: per worker without Redis, fail open -----------------------

    def hit(self, item: RateLimitItem, *key: str) -> Verdict | None:
        """Count one request against ``item`` for ``key``; None when limits are off or
        the storage is down (fails open)."""
        return self._hit_open(item, key, always_headers=True)

    def hit_quietly(self, item: RateLimitItem, *key: str) -> Verdict | None:
        """Like :meth:`hit`, but the headers are read only for a refusal (a failed
        authentication's 401 carries none, so it spares the window's read)."""
        return self._hit_open(item, key, always_headers=False)

    def _hit_open(self, item: RateLimitItem, key: tuple[str, ...], always_headers: bool) -> Verdict | None:
        if not self.enabled or not self._counter.available():
            return None
        try:
            return _count(self.storage, item, key, always_headers)
        except StorageError as exc:
            self._counter.failed(exc, "the API's limits are not counted until it is back")
            return None

    # --- Limits that must hold exactly: shared by every worker and host, fail closed -------

    def hit_shared(self, item: RateLimitItem, *key: str) -> Verdict | None:
        """Count one request against ``item`` for ``key`` in the storage every worker and
        host shares; None when limits are off. Raises :class:`LimitsUnavailable` when that
        storage is down (fails closed)."""
        if not self.enabled:
            return None
        try:
            return _count(self._shared_storage(), item, key, always_headers=True)
        except StorageError as exc:
            self._shared.failed(exc, "logins are refused (503) until it is back")
            raise LimitsUnavailable() from exc

    def reserve_login_attempt(self, email: str, address: str | None) -> LoginAttempt:
        """Count a login attempt in its three windows (this email from this address, this
        address, this email) before its password is checked, so that concurrent attempts
        on any worker or host cannot exceed a limit; a successful or refused attempt gives
        its places back (:meth:`LoginAttempt.release`). Raises :class:`LimitsUnavailable`
        when the shared storage is down: no password is checked uncounted."""
        if not self.enabled:
            return LoginAttempt(self, (), None)
        storage = self._shared_storage()
        email_part, address_part = email_key(email), address_key(address)
        windows = ((self.login, ("login-pair", email_part, address_part), True),
                   (self.login_address, ("login-address", address_part), False),
                   (self.login_email, ("login-email", email_part), True))
        counted = []
        try:
            for item, key, for_email in windows:
                name, expiry = _window(item, *key)
                count = storage.incr(name, expiry)
                counted.append((name, expiry))
                if count > item.amount:
                    attempt = LoginAttempt(self, tuple(counted), _headers(storage, item, name, count, False),
                                           email_throttled=for_email)
                    attempt.release()
                    return attempt
        except StorageError as exc:
            self._shared.failed(exc, "logins are refused (503) until it is back")
            raise LimitsUnavailable() from exc
        return LoginAttempt(self, tuple(counted), None)

    def _shared_storage(self) -> Storage:
        if not self._shared.available():
            raise LimitsUnavailable()
        return self._shared.storage

    def _give_back(self, counted: tuple[tuple[str, int], ...]) -> None:
        try:
            for name, expiry in counted:
                self._shared.storage.incr(name, expiry, amount=-1)
        except StorageError as exc:  # the places stay taken until their window ends
            self._shared.failed(exc, "a login's place in the throttle could not be given back")

    def shared_storage_answers(self) -> bool | None:
        """Whether the storage of the limits that must hold (the login throttle: Redis, or
        the app's database table) answers; None when limits are off."""
        return bool(self.shared_storage.check()) if self.enabled else None


class LoginAttempt:
    """A login attempt's places in the failed-login windows: kept if the password was
    wrong, given back otherwise. ``refused`` holds the 429's headers when a window was
    already full (its places are given back at once); ``email_throttled`` says that the
    full window was one of the email's (with this address, or from everywhere), not the
    address's alone."""

    def __init__(self, limits: RateLimits, counted: tuple[tuple[str, int], ...], refused: dict[str, str] | None,
                 email_throttled: bool = False):
        self._limits = limits
        self._counted = counted
        self.refused = refused
        self.email_throttled = email_throttled

    def release(self) -> None:
        """Give the counted places back: only failed logins count against the limit."""
        counted, self._counted = self._counted, ()
        self._limits._give_back(counted)


def _count(storage: Storage, item: RateLimitItem, key: tuple[str, ...], always_headers: bool) -> Verdict:
    """One request counted in ``item``'s current window for ``key`` (raises StorageError)."""
    name, expiry = _window(item, *key)
    count = storage.incr(name, expiry)
    allowed = count <= item.amount
    if allowed and not always_headers:
        return Verdict(True, {})
    return Verdict(allowed, _headers(storage, item, name, count, allowed))


def _headers(storage: Storage, item: RateLimitItem, name: str, count: int, allowed: bool) -> dict[str, str]:
    reset = str(max(1, math.ceil(storage.get_expiry(name) - time.time())))
    headers = {"RateLimit-Limit": str(item.amount), "RateLimit-Remaining": str(max(0, item.amount - count)),
               "RateLimit-Reset": reset}
    if not allowed:
        headers["Retry-After"] = reset
    return headers


@lru_cache(maxsize=4096)
def _window(item: RateLimitItem, *key: str) -> tuple[str, int]:
    """The storage key of ``item``'s window for ``key``, as limits names it, and its length."""
    return item.key_for(*key), item.get_expiry()


def open_storage(uri: str, engine: sa.Engine | None = None) -> Storage:
    """The storage ``uri`` names, raising :class:`limits.errors.StorageError` for its
    failures whatever it is; Redis with bounded waits, ours with the app's engine."""
    scheme = urlsplit(uri).scheme
    options: dict[str, Any] = {}
    if scheme in _REDIS_SCHEMES:
        options.update(REDIS_TIMEOUTS)
    elif scheme == database_storage.SCHEME:
        options["engine"] = engine
    return storage_from_string(uri, wrap_exceptions=True, **options)


def _describe(uri: str) -> str:
    """The storage's URL without its password, for the log."""
    parts = urlsplit(uri)
    netloc = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{netloc}{parts.path}"


def email_key(email: str) -> str:
    """A bounded key for an email as typed: the digest of its normalized form (the raw
    value may be anything a client sends)."""
    return hashlib.sha256(email.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()[:32]


def address_key(address: str | None) -> str:
    """A bounded key for a client address: itself, or its digest if it is too long to be
    one (behind a misconfigured proxy, the address comes from a header)."""
    address = address or ""
    if len(address) <= MAX_ADDRESS_KEY:
        return address
    return "sha256:" + hashlib.sha256(address.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def init_app(app: Flask) -> RateLimits:
    with app.app_context():
        engine = db.engine  # made by db.init_app; each worker makes its own after the fork
    limits = app.extensions[EXTENSION_KEY] = RateLimits(app.config, engine)
    return limits


def rate_limits(app: Flask) -> RateLimits:
    """The limits bound to ``app`` (by :func:`init_app`)."""
    return app.extensions[EXTENSION_KEY]
