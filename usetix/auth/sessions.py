"""Dashboard sessions: a signed cookie while anonymous, a server-side record once logged in.

An anonymous visitor's session (the login form's CSRF secret, a flash message) lives in a
signed, HttpOnly cookie, signed by Flask's own cookie-session signer: no visit writes to
the store. A logged-in admin's session lives on the server: the cookie then holds only a
random id, and the data is kept under the SHA-256 of that id, so a leaked table (or Redis
dump) holds nothing usable as a cookie. Why ours and not Flask-Session: see the README
("Why our own session store").

A stored session is created once, at login, under a fresh id, and afterwards only ever
updated in place (UPDATE, Redis SET XX): a request still in flight when its session was
logged out, expired or ended elsewhere cannot bring it back.

JSON API requests never open a session: they authenticate by bearer token only, and the
hot path must not touch the store.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from flask import Flask, Request, Response, current_app, request, session
from flask.sessions import SecureCookieSessionInterface, SessionInterface, SessionMixin, session_json_serializer
from flask_login import logout_user
from itsdangerous import BadSignature
from werkzeug.datastructures import CallbackDict
from werkzeug.exceptions import ServiceUnavailable

from ..database.engine import db
from ..database.models import ServerSession

logger = logging.getLogger("usetix.sessions")

_SID_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
# Extending a session's life on every request would write on every page view; once a
# minute is enough for an idle timeout counted in hours.
_REFRESH_AFTER = timedelta(minutes=1)
# Flask-Login's key of the logged-in admin: the one thing worth a server-side record.
LOGGED_IN_KEY = "_user_id"
# The digest of the client address and User-Agent the session was logged in from.
CLIENT_KEY = "_client"
PURGE_BATCH_SIZE = 1000


class SessionStoreUnavailable(ServiceUnavailable):
    """The session store cannot be read or written (database table or Redis down)."""

    description = "Logins are unavailable for a moment: the session store does not answer. Try again shortly."


def _new_sid() -> str:
    return secrets.token_urlsafe(32)  # 256 bits, 43 characters


def _key(sid: str) -> str:
    return hashlib.sha256(sid.encode("ascii")).hexdigest()


def client_digest(req: Request) -> str:
    """What a logged-in session is bound to: the address the app trusts (``remote_addr``,
    after ProxyFix when it is configured, never a raw X-Forwarded-For) and the User-Agent."""
    client = f"{req.remote_addr or ''}\n{req.user_agent.string}"
    return hashlib.sha256(client.encode("utf-8", "surrogateescape")).hexdigest()


class ServerSideSession(CallbackDict, SessionMixin):
    """Session data; ``sid`` is its stored record's id, None while it lives in the cookie."""

    def __init__(self, data: dict | None = None, sid: str | None = None, started_at: datetime | None = None,
                 expires_at: datetime | None = None, unavailable: bool = False):
        def on_update(session: ServerSideSession) -> None:
            session.modified = True

        super().__init__(data, on_update)
        self.sid = sid
        self.started_at = started_at
        self.expires_at = expires_at
        self.modified = False
        # Stored records this request ended (login and logout rotate), deleted when saved.
        self.ended: list[str] = []
        # The cookie must name a different record (or none) than the request's did.
        self.cookie_changed = False
        # Read from a valid signed cookie (anonymous), so unchanged data need not be resent.
        self.from_cookie = False
        # The store failed when the session was opened: nothing is known, nothing is saved.
        self.unavailable = unavailable

    def rotate(self) -> None:
        """End the stored record, if any; a login later gets a fresh id (no session fixation)."""
        if self.sid is not None:
            self.ended.append(self.sid)
            self.sid = self.started_at = self.expires_at = None
            self.cookie_changed = True
        self.modified = True


class SessionStore(Protocol):
    def load(self, key: str, now: datetime) -> tuple[str, datetime] | None: ...
    def create(self, key: str, data: str, expires_at: datetime) -> None: ...
    def update(self, key: str, data: str, expires_at: datetime, now: datetime) -> bool: ...
    def delete(self, key: str) -> None: ...
    def purge(self, now: datetime, batch_size: int) -> int: ...
    def check(self) -> bool: ...
    def still_stored(self, key: str, now: datetime) -> bool: ...


@contextmanager
def _failures_as_unavailable(*errors: type[Exception]) -> Iterator[None]:
    try:
        yield
    except errors as exc:
        # The driver's message, not SQLAlchemy's: that one carries the statement's parameters.
        cause = getattr(exc, "orig", None) or exc
        logger.error("session store failed: %s: %s", type(cause).__name__, cause)
        raise SessionStoreUnavailable() from exc


class DatabaseSessionStore:
    """Sessions in the app's own database, on their own short transactions (never mixed
    with the request's unit of work in ``db.session``). No request sweeps the table:
    ``usetix purge-sessions`` (cron) deletes expired rows in bounded batches."""

    table = ServerSession.__table__

    def load(self, key: str, now: datetime) -> tuple[str, datetime] | None:
        t = self.table
        with _failures_as_unavailable(sa.exc.SQLAlchemyError), db.engine.connect() as conn:
            row = conn.execute(sa.select(t.c.data, t.c.expires_at).where(t.c.key == key, t.c.expires_at > now)).first()
        return (row.data, row.expires_at) if row else None

    def create(self, key: str, data: str, expires_at: datetime) -> None:
        with _failures_as_unavailable(sa.exc.SQLAlchemyError), db.engine.begin() as conn:
            conn.execute(sa.insert(self.table).values(key=key, data=data, expires_at=expires_at))

    def update(self, key: str, data: str, expires_at: datetime, now: datetime) -> bool:
        """Rewrite a live record; False (and nothing written) when it is gone or expired."""
        t = self.table
        with _failures_as_unavailable(sa.exc.SQLAlchemyError), db.engine.begin() as conn:
            return conn.execute(
                sa.update(t).where(t.c.key == key, t.c.expires_at > now).values(data=data, expires_at=expires_at)
            ).rowcount == 1

    def delete(self, key: str) -> None:
        with _failures_as_unavailable(sa.exc.SQLAlchemyError), db.engine.begin() as conn:
            conn.execute(sa.delete(self.table).where(self.table.c.key == key))

    def check(self) -> bool:
        """Whether the table answers a read (for /healthz: every login needs it)."""
        try:
            with db.engine.connect() as conn:
                conn.execute(sa.select(self.table.c.key).where(self.table.c.key == "").limit(1)).first()
        except sa.exc.SQLAlchemyError:
            return False
        return True
    def still_stored(self, key: str, now: datetime) -> bool:
        """Whether the live record is still there, read in ``db.session``'s transaction (the
        one exception to the rule above) with its row locked: a logout (DELETE) cannot commit
        between this check and the caller's commit. On SQLite the caller has written first,
        so its transaction holds the database's write lock, which a logout waits for too."""
        t = self.table
        return db.session.execute(
            sa.select(t.c.key).where(t.c.key == key, t.c.expires_at > now).with_for_update()
        ).first() is not None

    def purge(self, now: datetime, batch_size: int) -> int:
        """Delete expired rows, ``batch_size`` per transaction, so no lock is held long."""
        t = self.table
        batch = sa.select(t.c.key).where(t.c.expires_at <= now).limit(batch_size)
        total = 0
        while True:
            with _failures_as_unavailable(sa.exc.SQLAlchemyError), db.engine.begin() as conn:
                deleted = conn.execute(sa.delete(t).where(t.c.key.in_(batch))).rowcount
            total += deleted
            if deleted < batch_size:
                return total


class RedisSessionStore:
    """Sessions in Redis; Redis expires them itself."""

    prefix = "usetix:session:"

    def __init__(self, url: str):
        import redis

        # Bounded waits: a Redis that does not answer is a 503 page, not a hung worker.
        self.redis = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self.errors = (redis.RedisError,)

    def load(self, key: str, now: datetime) -> tuple[str, datetime] | None:
        with _failures_as_unavailable(*self.errors), self.redis.pipeline() as pipe:
            data, ttl_ms = pipe.get(self.prefix + key).pttl(self.prefix + key).execute()
        if data is None or ttl_ms <= 0:
            return None
        return data.decode(), now + timedelta(milliseconds=ttl_ms)

    def create(self, key: str, data: str, expires_at: datetime) -> None:
        with _failures_as_unavailable(*self.errors):
            self.redis.set(self.prefix + key, data, px=_ttl_ms(expires_at, datetime.now(UTC)), nx=True)

    def update(self, key: str, data: str, expires_at: datetime, now: datetime) -> bool:
        with _failures_as_unavailable(*self.errors):
            return bool(self.redis.set(self.prefix + key, data, px=_ttl_ms(expires_at, now), xx=True))

    def delete(self, key: str) -> None:
        with _failures_as_unavailable(*self.errors):
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
        with _failures_as_unavailable(*self.errors):
            return bool(self.redis.exists(self.prefix + key))


def _ttl_ms(expires_at: datetime, now: datetime) -> int:
    return max(1, int((expires_at - now).total_seconds() * 1000))


class ServerSideSessionInterface(SessionInterface):
    serializer = session_json_serializer
    # Flask's own cookie-session signer (SECRET_KEY, HMAC-SHA1 via itsdangerous) for anonymous data.
    _cookie_signer = SecureCookieSessionInterface()

    def __init__(self, store: SessionStore):
        self.store = store

    def open_session(self, app: Flask, request: Request) -> ServerSideSession | None:
        if getattr(request, "wants_json", False):
            return None  # Flask substitutes a NullSession, which refuses writes
        value = request.cookies.get(self.get_cookie_name(app), "")
        if not value:
            return ServerSideSession()
        if _SID_SHAPE.fullmatch(value):
            return self._open_stored(app, value)
        try:
            data = self._cookie_signer.get_signing_serializer(app).loads(
                value, max_age=int(app.permanent_session_lifetime.total_seconds()))
        except BadSignature:
            return ServerSideSession()
        if not isinstance(data, dict) or LOGGED_IN_KEY in data:
            return ServerSideSession()  # a login only ever lives in the store
        anonymous = ServerSideSession(data)
        anonymous.from_cookie = True
        return anonymous

    def _open_stored(self, app: Flask, sid: str) -> ServerSideSession:
        now = datetime.now(UTC)
        try:
            record = self.store.load(_key(sid), now)
        except SessionStoreUnavailable:
            # Never raise here: Flask would have no session at all, and even its error
            # page (Flask-Login's context processor reads the session) would fail.
            return ServerSideSession(unavailable=True)
        if record is not None:
            payload, expires_at = record
            try:
                stored = self.serializer.loads(payload)
                started_at = datetime.fromtimestamp(stored["started"], UTC)
                data = stored["data"]
            except (ValueError, KeyError, TypeError):
                data = None  # not written by this version: treated as logged out
            if data is not None and started_at + absolute_lifetime(app) > now:
                return ServerSideSession(data, sid=sid, started_at=started_at, expires_at=expires_at)
        expired = ServerSideSession()
        expired.cookie_changed = True  # the cookie names nothing any more
        return expired

    def save_now(self, app: Flask, session: ServerSideSession) -> None:
        """Write what the store must hold for ``session`` (raises SessionStoreUnavailable).

        Called at the end of every page request, and by login and logout before they
        answer, so that a store that fails shows as an error page and never as a login
        that did not happen or a logout that did not.
        """
        try:
            self._write(app, session, datetime.now(UTC))
        except SessionStoreUnavailable:
            session.unavailable = True  # what it holds is unknown now: never written again
            raise

    def _write(self, app: Flask, session: ServerSideSession, now: datetime) -> None:
        for sid in session.ended:
            self.store.delete(_key(sid))
        session.ended.clear()
        if LOGGED_IN_KEY not in session:
            if session.sid is not None:  # logged out without a rotation (a refused client)
                self.store.delete(_key(session.sid))
                session.sid = session.started_at = session.expires_at = None
                session.cookie_changed = True
            return
        if session.sid is None:  # a new login: the only way a record is ever created
            sid = _new_sid()
            expires_at = min(now + app.permanent_session_lifetime, now + absolute_lifetime(app))
            self.store.create(_key(sid), self._payload(session, now), expires_at)
            session.sid, session.started_at, session.expires_at = sid, now, expires_at
            session.cookie_changed = True
        else:
            expires_at = min(now + app.permanent_session_lifetime, session.started_at + absolute_lifetime(app))
            due = session.modified or expires_at - session.expires_at >= _REFRESH_AFTER
            # update() is False when the record is gone (logged out meanwhile, expired): it stays gone.
            if due and self.store.update(_key(session.sid), self._payload(session, session.started_at), expires_at,
                                         now):
                session.expires_at = expires_at
        session.modified = False

    def _payload(self, session: ServerSideSession, started_at: datetime) -> str:
        return self.serializer.dumps({"started": started_at.timestamp(), "data": dict(session)})

    def save_session(self, app: Flask, session: ServerSideSession, response: Response) -> None:
        if session.unavailable:
            return
        response.vary.add("Cookie")
        anonymous_changed = session.modified
        try:
            self.save_now(app, session)
        except SessionStoreUnavailable:
            # Logged already. Login, logout and a refused client saved before answering
            # (a 503 then); here only this request's changes to a live session are lost.
            return
        name = self.get_cookie_name(app)
        if session.sid is not None:
            if session.cookie_changed:
                self._set_cookie(app, response, session.sid)
        elif not session:
            if name in request.cookies:
                response.delete_cookie(name, domain=self.get_cookie_domain(app), path=self.get_cookie_path(app),
                                       secure=self.get_cookie_secure(app), httponly=self.get_cookie_httponly(app),
                                       samesite=self.get_cookie_samesite(app))
        elif anonymous_changed or session.cookie_changed or not session.from_cookie:
            self._set_cookie(app, response, self._cookie_signer.get_signing_serializer(app).dumps(dict(session)))

    def _set_cookie(self, app: Flask, response: Response, value: str) -> None:
        # A browser-session cookie: the server enforces the idle and absolute lifetimes.
        response.set_cookie(
            self.get_cookie_name(app),
            value,
            domain=self.get_cookie_domain(app),
            path=self.get_cookie_path(app),
            secure=self.get_cookie_secure(app),
            httponly=self.get_cookie_httponly(app),
            samesite=self.get_cookie_samesite(app),
            partitioned=self.get_cookie_partitioned(app),
        )


def absolute_lifetime(app: Flask) -> timedelta:
    """How long a login lasts however active it is (``SESSION_ABSOLUTE_HOURS``)."""
    return timedelta(hours=float(app.config["SESSION_ABSOLUTE_HOURS"]))


def make_session_interface(app: Flask) -> ServerSideSessionInterface:
    """Redis when USETIX_SESSION_REDIS_URL is set, else the app's database."""
    url = app.config.get("SESSION_REDIS_URL")
    return ServerSideSessionInterface(RedisSessionStore(url) if url else DatabaseSessionStore())


def save_now() -> None:
    """Store the current session before answering (login, logout); see ``save_now`` above."""
    current_app.session_interface.save_now(current_app._get_current_object(), session._get_current_object())


def still_logged_in() -> bool:
    """Whether this request's login is still stored: not logged out (by another request on
    the same cookie, from another tab) nor expired since the request began. For writes that
    must not outlive the login that asked for them (creating a token)."""
    current = session._get_current_object()
    if not isinstance(current, ServerSideSession) or current.sid is None:
        return False
    return current_app.session_interface.store.still_stored(_key(current.sid), datetime.now(UTC))


def bind_to_client() -> None:
    """Bind the logged-in session to this request's client (at login)."""
    session[CLIENT_KEY] = client_digest(request)


def check_session() -> None:
    """Before every dashboard and login page (a blueprint hook, so the API never runs it):
    a 503 when the store could not be read, and a logout when a logged-in session's
    cookie comes from another client than the one it was bound to at login."""
    current = session._get_current_object()
    if not isinstance(current, ServerSideSession):
        return  # a JSON request: no session
    if current.unavailable:
        raise SessionStoreUnavailable()
    if LOGGED_IN_KEY in current and current.get(CLIENT_KEY) != client_digest(request):
        # A stolen cookie ends the login for both: its record is deleted before we answer.
        logout_user()
        current.clear()
        save_now()


def purge_expired(app: Flask, batch_size: int = PURGE_BATCH_SIZE) -> int:
    """Delete expired sessions (the ``usetix purge-sessions`` command); returns how many."""
    return app.session_interface.store.purge(datetime.now(UTC), batch_size)
