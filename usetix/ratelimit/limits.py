"""The app's rate limits: what each one counts, in which storage, and what happens when
that storage fails (the overview is in ``__init__.py``)."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from flask import Flask
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import Storage

from ..database.engine import db
from . import database_storage
from .counting import Verdict, count, headers, window
from .keys import address_key, email_key
from .storage_uri import PER_WORKER_STORAGES, describe, open_storage

EXTENSION_KEY = "usetix.ratelimit"
OUTAGE_LOG_SECONDS = 60.0
OUTAGE_RETRY_SECONDS = 2.0
# What a storage outage means for the limits that fail open, as its log line says it.
OPEN_OUTAGE = "the API's limits are not counted until it is back"

logger = logging.getLogger("usetix.ratelimit")


class LimitsUnavailable(Exception):
    """A limit that fails closed could not be counted: its storage is down."""


class StorageHealth:
    """A storage, and what this worker knows of its health: after a failure it is left
    alone for OUTAGE_RETRY_SECONDS, and an outage is logged at most every OUTAGE_LOG_SECONDS."""

    def __init__(self, storage: Storage, name: str) -> None:
        self.storage = storage
        self.name = name
        self._lock = threading.Lock()
        self.down_until = 0.0  # 0 while the storage is not known to be down (hit() tests it first)
        self._logged_at = -math.inf

    def available(self) -> bool:
        if not self.down_until:  # no outage: no clock read on the hot path
            return True
        if time.monotonic() < self.down_until:
            return False
        self.down_until = 0.0
        return True

    def failed(self, exc: BaseException, consequence: str) -> None:
        """Remember an outage; log it unless it was logged within OUTAGE_LOG_SECONDS."""
        now = time.monotonic()
        with self._lock:
            self.down_until = now + OUTAGE_RETRY_SECONDS
            if now - self._logged_at < OUTAGE_LOG_SECONDS:
                return
            self._logged_at = now
        logger.error("rate-limit storage %s unavailable (%s): %s; logged at most every %d s",
                     self.name, exc.__cause__ or exc, consequence, OUTAGE_LOG_SECONDS)


class RateLimits:
    """The app's limits and the storages that count them."""

    def __init__(self, config: Mapping[str, Any], engine: sa.Engine | None = None) -> None:
        self.enabled = bool(config["RATELIMIT_ENABLED"])
        uri = config["RATELIMIT_STORAGE_URL"]
        self.storage: Storage = open_storage(uri, engine)
        self._counter = StorageHealth(self.storage, describe(uri))
        if isinstance(self.storage, PER_WORKER_STORAGES) and engine is not None:
            shared = open_storage(f"{database_storage.SCHEME}://", engine)
            self._shared = StorageHealth(shared, "usetix-database:// (the app's database)")
        else:
            self._shared = self._counter
        self.shared_storage: Storage = self._shared.storage
        self.login = parse(config["LOGIN_RATE_LIMIT"])
        self.login_address = parse(config["LOGIN_ADDRESS_RATE_LIMIT"])
        self.login_email = parse(config["LOGIN_EMAIL_RATE_LIMIT"])
        self.api = parse(config["API_RATE_LIMIT"])
        self.failed_auth = parse(config["API_FAILED_AUTH_LIMIT"])
        self.leak_report = parse(config["LEAK_REPORT_RATE_LIMIT"])
        self.device_authorization = parse(config["DEVICE_AUTHORIZATION_RATE_LIMIT"])
        self.device_code = parse(config["DEVICE_CODE_RATE_LIMIT"])
        self.device_code_address = parse(config["DEVICE_CODE_ADDRESS_RATE_LIMIT"])

    # --- Limits that shed load: per worker without Redis, fail open -----------------------

    def hit(self, item: RateLimitItem, *key: str) -> Verdict | None:
        """Count one request against ``item`` for ``key``; None when limits are off or
        the storage is down (fails open)."""
        # Not through a shared helper with hit_quietly: this runs on every API request.
        if not self.enabled or (self._counter.down_until and not self._counter.available()):
            return None
        try:
            return count(self.storage, item, key, True)
        except StorageError as exc:
            self._counter.failed(exc, OPEN_OUTAGE)
            return None

    def hit_quietly(self, item: RateLimitItem, *key: str) -> Verdict | None:
        """Like :meth:`hit`, but the headers are read only for a refusal (a failed
        authentication's 401 carries none, so it spares the window's read)."""
        if not self.enabled or not self._counter.available():
            return None
        try:
            return count(self.storage, item, key, False)
        except StorageError as exc:
            self._counter.failed(exc, OPEN_OUTAGE)
            return None

    # --- Limits that must hold exactly: shared by every worker and host, fail closed -------

    def hit_shared(self, item: RateLimitItem, *key: str) -> Verdict | None:
        """Count one request against ``item`` for ``key`` in the storage every worker and
        host shares; None when limits are off. Raises :class:`LimitsUnavailable` when that
        storage is down (fails closed)."""
        if not self.enabled:
            return None
        try:
            return count(self._shared_storage(), item, key, always_headers=True)
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
                name, expiry = window(item, *key)
                count = storage.incr(name, expiry)
                counted.append((name, expiry))
                if count > item.amount:
                    attempt = LoginAttempt(self, tuple(counted), headers(storage, item, name, count, False),
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


def init_app(app: Flask) -> RateLimits:
    with app.app_context():
        engine = db.engine  # made by db.init_app; each worker makes its own after the fork
    limits = app.extensions[EXTENSION_KEY] = RateLimits(app.config, engine)
    return limits


def rate_limits(app: Flask) -> RateLimits:
    """The limits bound to ``app`` (by :func:`init_app`)."""
    return app.extensions[EXTENSION_KEY]
