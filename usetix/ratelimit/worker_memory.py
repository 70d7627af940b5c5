"""Rate-limit counters in the worker's own memory, with no background thread.

limits' ``memory://`` storage drops expired counters from a ``threading.Timer`` started
anew whenever a counter changes (why that matters: docs/performance.md). This storage keeps
the same fixed-window counters and drops expired ones lazily instead: a counter read after
its window is a new one, and the others are swept inline at most once every ``SWEEP_SECONDS``.

The default storage (``RATELIMIT_STORAGE_URL = "worker-memory://"``). Like ``memory://``
its counts are per worker process; a Redis URL shares them between workers and hosts. It
serves the fixed-window strategy (the default); limits refuses the others with it at
startup.
"""

from __future__ import annotations

import threading
import time

from limits.storage import Storage


class WorkerMemoryStorage(Storage):
    STORAGE_SCHEME = ["worker-memory"]  # limits registers the scheme when this class is defined
    SWEEP_SECONDS = 10.0

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: float | str | bool):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._counters: dict[str, list[float]] = {}  # key -> [count, expires at]
        self._lock = threading.Lock()
        self._next_sweep = time.time() + self.SWEEP_SECONDS

    @property
    def base_exceptions(self) -> type[Exception]:
        return ValueError

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        return self.incr_with_expiry(key, expiry, amount)[0]

    def incr_with_expiry(self, key: str, expiry: float, amount: int = 1) -> tuple[int, float]:
        """:meth:`incr`, with the time the window ends (what :meth:`get_expiry` would answer
        next): one lookup for the two, on every API request (docs/performance.md)."""
        now = time.time()
        with self._lock:
            if now >= self._next_sweep:
                self._sweep(now)
            counter = self._counters.get(key)
            if counter is None or counter[1] <= now:
                counter = self._counters[key] = [0, now + expiry]
            counter[0] += amount
            return int(counter[0]), counter[1]

    def get(self, key: str) -> int:
        counter = self._counters.get(key)
        return int(counter[0]) if counter is not None and counter[1] > time.time() else 0

    def get_expiry(self, key: str) -> float:
        now = time.time()
        counter = self._counters.get(key)
        return counter[1] if counter is not None and counter[1] > now else now

    def check(self) -> bool:
        return True

    def reset(self) -> int:
        with self._lock:
            count = len(self._counters)
            self._counters.clear()
        return count

    def clear(self, key: str) -> None:
        with self._lock:
            self._counters.pop(key, None)

    def _sweep(self, now: float) -> None:
        for key in [key for key, (_, expires_at) in self._counters.items() if expires_at <= now]:
            del self._counters[key]
        self._next_sweep = now + self.SWEEP_SECONDS
