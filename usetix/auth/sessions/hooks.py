"""What the login and dashboard blueprints and the commands call: save before answering,
check the session before each page, purge expired ones."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask, current_app, request, session
from flask_login import logout_user

from .data import CLIENT_KEY, LOGGED_IN_KEY, ServerSideSession, client_digest
from .store import SessionStoreUnavailable, record_key

PURGE_BATCH_SIZE = 1000


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
    return current_app.session_interface.store.still_stored(record_key(current.sid), datetime.now(UTC))


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
