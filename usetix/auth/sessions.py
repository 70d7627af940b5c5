"""Server-side sessions for the dashboard.

The cookie holds only a random session id; the data lives on the server, keyed by the
SHA-256 of that id, so a leaked table (or Redis dump) holds nothing usable as a cookie.
Why ours and not Flask-Session: see the README ("Why our own session store").

JSON API requests never open a session: they authenticate by bearer token only, and the
hot path must not touch the store.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from flask import Flask, Request, Response, request
from flask.sessions import SessionInterface, SessionMixin, session_json_serializer
from werkzeug.datastructures import CallbackDict

from ..extensions import db
from ..models import ServerSession

_SID_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
# Extending a session's life on every request would write on every page view; once a
# minute is enough for an idle timeout counted in hours.
_REFRESH_AFTER = timedelta(minutes=1)


def _new_sid() -> str:
    return secrets.token_urlsafe(32)  # 256 bits, 43 characters


def _key(sid: str) -> str:
    return hashlib.sha256(sid.encode("ascii")).hexdigest()


class ServerSideSession(CallbackDict, SessionMixin):
    """Session data plus its id; ``rotate()`` gives it a new id and drops the old record."""

    def __init__(self, data: dict | None = None, sid: str | None = None, expires_at: datetime | None = None):
        def on_update(session: ServerSideSession) -> None:
            session.modified = True

        super().__init__(data, on_update)
        self.sid = sid
        self.expires_at = expires_at
        self.modified = False
        self.stale_sid: str | None = None

    @property
    def new(self) -> bool:
        return self.expires_at is None

    def rotate(self) -> None:
        """Move the data to a fresh session id (at login and logout: no session fixation)."""
        if self.sid and not self.new and self.stale_sid is None:
            self.stale_sid = self.sid
        self.sid = _new_sid()
        self.expires_at = None
        self.modified = True


class SessionStore(Protocol):
    def load(self, key: str, now: datetime) -> tuple[str, datetime] | None: ...
    def save(self, key: str, data: str, expires_at: datetime) -> None: ...
    def delete(self, key: str) -> None: ...
    def purge(self, now: datetime) -> int: ...


class DatabaseSessionStore:
    """Sessions in the app's own database, on their own short transactions (never mixed
    with the request's unit of work in ``db.session``)."""

    table = ServerSession.__table__
    # New sessions sweep expired ones, but at most this often per process: a stream of
    # anonymous visitors must not turn into a stream of table-wide DELETEs.
    sweep_every = timedelta(minutes=5)

    def __init__(self) -> None:
        self.next_sweep = datetime.min.replace(tzinfo=UTC)

    def load(self, key: str, now: datetime) -> tuple[str, datetime] | None:
        with db.engine.connect() as conn:
            row = conn.execute(
                sa.select(self.table.c.data, self.table.c.expires_at).where(
                    self.table.c.key == key, self.table.c.expires_at > now
                )
            ).first()
        return (row.data, row.expires_at) if row else None

    def save(self, key: str, data: str, expires_at: datetime) -> None:
        with db.engine.begin() as conn:
            updated = conn.execute(
                sa.update(self.table).where(self.table.c.key == key).values(data=data, expires_at=expires_at)
            ).rowcount
            if not updated:
                now = datetime.now(UTC)
                if now >= self.next_sweep:
                    self.next_sweep = now + self.sweep_every
                    conn.execute(sa.delete(self.table).where(self.table.c.expires_at <= now))
                conn.execute(sa.insert(self.table).values(key=key, data=data, expires_at=expires_at))

    def delete(self, key: str) -> None:
        with db.engine.begin() as conn:
            conn.execute(sa.delete(self.table).where(self.table.c.key == key))

    def purge(self, now: datetime) -> int:
        with db.engine.begin() as conn:
            return conn.execute(sa.delete(self.table).where(self.table.c.expires_at <= now)).rowcount


class RedisSessionStore:
    """Sessions in Redis; Redis expires them itself."""

    prefix = "usetix:session:"

    def __init__(self, url: str):
        import redis

        self.redis = redis.Redis.from_url(url)

    def load(self, key: str, now: datetime) -> tuple[str, datetime] | None:
        with self.redis.pipeline() as pipe:
            data, ttl_ms = pipe.get(self.prefix + key).pttl(self.prefix + key).execute()
        if data is None or ttl_ms <= 0:
            return None
        return data.decode(), now + timedelta(milliseconds=ttl_ms)

    def save(self, key: str, data: str, expires_at: datetime) -> None:
        ttl = expires_at - datetime.now(UTC)
        self.redis.set(self.prefix + key, data, px=max(1, int(ttl.total_seconds() * 1000)))

    def delete(self, key: str) -> None:
        self.redis.delete(self.prefix + key)

    def purge(self, now: datetime) -> int:
        return 0


class ServerSideSessionInterface(SessionInterface):
    serializer = session_json_serializer

    def __init__(self, store: SessionStore):
        self.store = store

    def open_session(self, app: Flask, request: Request) -> ServerSideSession | None:
        if getattr(request, "wants_json", False):
            return None  # Flask substitutes a NullSession, which refuses writes
        sid = request.cookies.get(self.get_cookie_name(app), "")
        if _SID_SHAPE.fullmatch(sid):
            record = self.store.load(_key(sid), datetime.now(UTC))
            if record is not None:
                data, expires_at = record
                return ServerSideSession(self.serializer.loads(data), sid=sid, expires_at=expires_at)
        return ServerSideSession(sid=_new_sid())

    def save_session(self, app: Flask, session: ServerSideSession, response: Response) -> None:
        name = self.get_cookie_name(app)
        domain = self.get_cookie_domain(app)
        path = self.get_cookie_path(app)
        response.vary.add("Cookie")
        if session.stale_sid:
            self.store.delete(_key(session.stale_sid))
        if not session:
            if not session.new:
                self.store.delete(_key(session.sid))
            if name in request.cookies:
                response.delete_cookie(name, domain=domain, path=path, secure=self.get_cookie_secure(app),
                                       httponly=self.get_cookie_httponly(app), samesite=self.get_cookie_samesite(app))
            return
        now = datetime.now(UTC)
        lifetime = app.permanent_session_lifetime
        if not (session.modified or session.new or session.expires_at - now < lifetime - _REFRESH_AFTER):
            return
        self.store.save(_key(session.sid), self.serializer.dumps(dict(session)), now + lifetime)
        if session.new:
            response.set_cookie(
                name,
                session.sid,
                domain=domain,
                path=path,
                secure=self.get_cookie_secure(app),
                httponly=self.get_cookie_httponly(app),
                samesite=self.get_cookie_samesite(app),
                partitioned=self.get_cookie_partitioned(app),
            )


def make_session_interface(app: Flask) -> ServerSideSessionInterface:
    """Redis when USETIX_SESSION_REDIS_URL is set, else the app's database."""
    url = app.config.get("SESSION_REDIS_URL")
    return ServerSideSessionInterface(RedisSessionStore(url) if url else DatabaseSessionStore())


def purge_expired(app: Flask) -> int:
    """Delete expired sessions (the ``usetix purge-sessions`` command); returns how many."""
    return app.session_interface.store.purge(datetime.now(UTC))
