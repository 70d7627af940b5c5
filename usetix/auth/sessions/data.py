"""A dashboard session's data, and the client a login is bound to."""

from __future__ import annotations

import hashlib
from datetime import datetime

from flask import Request
from flask.sessions import SessionMixin
from werkzeug.datastructures import CallbackDict

# Flask-Login's key of the logged-in admin: the one thing worth a server-side record.
LOGGED_IN_KEY = "_user_id"
# The digest of the client address and User-Agent the session was logged in from.
CLIENT_KEY = "_client"


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
