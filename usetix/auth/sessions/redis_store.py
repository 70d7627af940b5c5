"""Sessions in Redis (``USETIX_SESSION_REDIS_URL``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .store import failures_as_unavailable


class RedisSessionStore:
    """Sessions in Redis; Redis expires them itself."""

    prefix = "usetix:session:"

    def __init__(self, url: str):
        import redis

        # Bounded waits: a Redis that does not answer is a 503 page, not a hung worker.
        self.redis = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self.errors = (redis.RedisError,)

    def load(self, key: str, now: datetime) -> tuple[str, datetime] | None:
        with failures_as_unavailable(*self.errors), self.redis.pipeline() as pipe:
            data, ttl_ms = pipe.get(self.prefix + key).pttl(self.prefix + key).execute()
        if data is None or ttl_ms <= 0:
            return None
        return data.decode(), now + timedelta(milliseconds=ttl_ms)

    def create(self, key: str, data: str, expires_at: datetime) -> None:
        with failures_as_unavailable(*self.errors):
            self.redis.set(self.prefix + key, data, px=_ttl_ms(expires_at, datetime.now(UTC)), nx=True)

    def update(self, key: str, data: str, expires_at: datetime, now: datetime) -> bool:
        with failures_as_unavailable(*self.errors):
            return bool(self.redis.set(self.prefix + key, data, px=_ttl_ms(expires_at, now), xx=True))

    def delete(self, key: str) -> None:
        with failures_as_unavailable(*self.errors):
            self.redis.delete(self.prefix + key)

    def purge(self, now: datetime, batch_size: int) -> int:
        return 0

    def check(self) -> bool:
        try:
            return bool(self.redis.ping())
        except self.errors:
            return False
    def still_stored(self, key: str, now: datetime) -> bool:
        """Whether the record is still there (Redis expires it itself). Redis shares no
        transaction with the database: a logout in the moment after this check is missed."""
        with failures_as_unavailable(*self.errors):
            return bool(self.redis.exists(self.prefix + key))


def _ttl_ms(expires_at: datetime, now: datetime) -> int:
    return max(1, int((expires_at - now).total_seconds() * 1000))
