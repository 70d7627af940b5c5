"""Flask's ``SessionInterface`` for the dashboard: which cookie, which record, when to write."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta

from flask import Flask, Request, Response, request
from flask.sessions import SecureCookieSessionInterface, SessionInterface, session_json_serializer
from itsdangerous import BadSignature

from .data import LOGGED_IN_KEY, ServerSideSession
from .database_store import DatabaseSessionStore
from .redis_store import RedisSessionStore
from .store import SessionStore, SessionStoreUnavailable, record_key

_SID_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
# Extending a session's life on every request would write on every page view; once a
# minute is enough for an idle timeout counted in hours.
_REFRESH_AFTER = timedelta(minutes=1)


def _new_sid() -> str:
    return secrets.token_urlsafe(32)  # 256 bits, 43 characters


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
            record = self.store.load(record_key(sid), now)
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
            self.store.delete(record_key(sid))
        session.ended.clear()
        if LOGGED_IN_KEY not in session:
            if session.sid is not None:  # logged out without a rotation (a refused client)
                self.store.delete(record_key(session.sid))
                session.sid = session.started_at = session.expires_at = None
                session.cookie_changed = True
            return
        if session.sid is None:  # a new login: the only way a record is ever created
            sid = _new_sid()
            expires_at = min(now + app.permanent_session_lifetime, now + absolute_lifetime(app))
            self.store.create(record_key(sid), self._payload(session, now), expires_at)
            session.sid, session.started_at, session.expires_at = sid, now, expires_at
            session.cookie_changed = True
        else:
            expires_at = min(now + app.permanent_session_lifetime, session.started_at + absolute_lifetime(app))
            due = session.modified or expires_at - session.expires_at >= _REFRESH_AFTER
            # update() is False when the record is gone (logged out meanwhile, expired): it stays gone.
            if due and self.store.update(record_key(session.sid), self._payload(session, session.started_at),
                                         expires_at, now):
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
