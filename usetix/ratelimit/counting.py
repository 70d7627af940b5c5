"""Counting one request in a fixed window, on a ``limits`` storage's public interface.

This is ``FixedWindowRateLimiter``'s algorithm (``Storage.incr`` of the limit's key with the
window's expiry), written so that one counter update gives both the verdict and the
``RateLimit-Remaining`` count (why: docs/performance.md). tests/unit/test_rate_limit_storage.py
holds the counts to ``FixedWindowRateLimiter``'s own on the same storage.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache
from typing import NamedTuple

from limits import RateLimitItem
from limits.storage import Storage

from .worker_memory import WorkerMemoryStorage


class Verdict(NamedTuple):
    """One counted request: whether it may go on, and its ``RateLimit-*`` headers
    (with ``Retry-After`` when refused)."""

    allowed: bool
    headers: dict[str, str]


class LimitsUnavailable(Exception):
    """A limit that fails closed could not be counted: its storage is down."""


def count(storage: Storage, item: RateLimitItem, key: tuple[str, ...], always_headers: bool) -> Verdict:
    """One request counted in ``item``'s current window for ``key`` (raises StorageError)."""
    name, expiry = window(item, *key)
    if type(storage) is WorkerMemoryStorage:  # the default: the count and the window's end in one lookup
        count, expires_at = storage.incr_with_expiry(name, expiry)
    else:
        count, expires_at = storage.incr(name, expiry), None
    allowed = count <= item.amount
    if allowed and not always_headers:
        return Verdict(True, {})
    if expires_at is None:
        expires_at = storage.get_expiry(name)
    return Verdict(allowed, _headers(item.amount, count, expires_at, allowed))


def headers(storage: Storage, item: RateLimitItem, name: str, count: int, allowed: bool) -> dict[str, str]:
    return _headers(item.amount, count, storage.get_expiry(name), allowed)


def _headers(amount: int, count: int, expires_at: float, allowed: bool) -> dict[str, str]:
    reset = f"{max(1, math.ceil(expires_at - time.time()))}"  # f-strings: no call of str() (every API request)
    headers = {"RateLimit-Limit": f"{amount}", "RateLimit-Remaining": f"{max(0, amount - count)}",
               "RateLimit-Reset": reset}
    if not allowed:
        headers["Retry-After"] = reset
    return headers


@lru_cache(maxsize=4096)
def window(item: RateLimitItem, *key: str) -> tuple[str, int]:
    """The storage key of ``item``'s window for ``key``, as limits names it, and its length."""
    return item.key_for(*key), item.get_expiry()


