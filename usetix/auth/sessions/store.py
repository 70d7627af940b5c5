"""What a session store does, the key it keeps a session under, and its failure (a 503)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Protocol

from werkzeug.exceptions import ServiceUnavailable

logger = logging.getLogger("usetix.sessions")
# What a 503 of the session store tells a client to wait (a restart of the database or Redis).
RETRY_AFTER_SECONDS = 5


class SessionStoreUnavailable(ServiceUnavailable):
    """The session store cannot be read or written (database table or Redis down)."""

    description = "Logins are unavailable for a moment: the session store does not answer. Try again shortly."

    def __init__(self) -> None:
        super().__init__(retry_after=RETRY_AFTER_SECONDS)


def record_key(sid: str) -> str:
    """The key a stored session is kept under: the digest of its cookie's id."""
    return hashlib.sha256(sid.encode("ascii")).hexdigest()


class SessionStore(Protocol):
    def load(self, key: str, now: datetime) -> tuple[str, datetime] | None: ...
    def create(self, key: str, data: str, expires_at: datetime) -> None: ...
    def update(self, key: str, data: str, expires_at: datetime, now: datetime) -> bool: ...
    def delete(self, key: str) -> None: ...
    def purge(self, now: datetime, batch_size: int) -> int: ...
    def check(self) -> bool: ...
    def still_stored(self, key: str, now: datetime) -> bool: ...


@contextmanager
def failures_as_unavailable(*errors: type[Exception]) -> Iterator[None]:
    try:
        yield
    except errors as exc:
        # The driver's message, not SQLAlchemy's: that one carries the statement's parameters.
        cause = getattr(exc, "orig", None) or exc
        logger.error("session store failed: %s: %s", type(cause).__name__, cause)
        raise SessionStoreUnavailable() from exc
