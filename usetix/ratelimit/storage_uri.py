"""The storage a ``RATELIMIT_STORAGE_URL`` names: Redis with bounded waits, the worker's
memory, or the app's database."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from limits.storage import MemoryStorage, Storage, storage_from_string

from . import database_storage
from .worker_memory import WorkerMemoryStorage  # importing it registers the worker-memory:// scheme with limits

# Bounded waits on Redis: a storage that does not answer must not hold a worker for long.
REDIS_TIMEOUTS = {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}
_REDIS_SCHEMES = frozenset({"redis", "rediss", "redis+unix", "valkey", "valkeys", "valkey+unix"})
# Counters in one process's memory: every worker (and host) counts on its own.
PER_WORKER_STORAGES = (WorkerMemoryStorage, MemoryStorage)


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


def describe(uri: str) -> str:
    """The storage's URL without its password, for the log."""
    parts = urlsplit(uri)
    netloc = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{netloc}{parts.path}"


