"""What the tests share that is not a fixture: test settings, seeding, forms, tokens, polling.

Fixtures live in tests/conftest.py; servers, databases, query counting and a dashboard over
HTTP in tests/servers.py, tests/databases.py, tests/queries.py and tests/dashboard_client.py.
"""

from __future__ import annotations

import re
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import TypeVar

import sqlalchemy as sa
from flask.testing import FlaskClient

from usetix.auth.passwords import hash_password
from usetix.auth.token_service import issue_token
from usetix.database.engine import db
from usetix.database.models import Account, Admin, Attendee, Event

from .databases import TEST_DATABASE_URL, scratch_database

PASSWORD = "correct horse battery"
CSRF_FIELD = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')
NONCE_FIELD = re.compile(r'<input[^>]*name="nonce"[^>]*value="([^"]+)"')
TOKEN_VALUE = re.compile(r'id="token-value">([^<]+)<')

# The Accept rule as the issue pins it: test_negotiation.py checks it on the rule,
# test_api.py the same cases end to end.
PINNED_CASES = [
    ("application/json", True),
    ("application/json; charset=utf-8", True),
    ("application/json, text/html", True),
    ("text/html, application/json;q=0.9", False),
    ("*/*", False),
    (None, False),
]

T = TypeVar("T")

# The device-pairing limits, for a RateLimits made from a config of the limits alone.
DEVICE_LIMITS = {"DEVICE_AUTHORIZATION_RATE_LIMIT": "3/minute", "DEVICE_CODE_RATE_LIMIT": "3/minute",
                 "DEVICE_CODE_ADDRESS_RATE_LIMIT": "3/minute"}


def wait_until(predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.01,
               message: str = "", pause: Callable[[float], object] = time.sleep) -> T:
    """Poll ``predicate`` until it returns something true; that value. Fails the test when
    ``timeout`` seconds pass first (the deadline is generous: it bounds a hang, it is not
    what a test asserts). ``pause`` waits between polls: a Playwright page's own wait lets
    the page's callbacks run meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {message or predicate}")
        pause(interval)


def make_test_config(tmp_path) -> dict:
    """Settings of a test app: its own database, CSRF on, a cheap password hash."""
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "DATABASE_URL": TEST_DATABASE_URL or f"sqlite:///{tmp_path / 'test.sqlite3'}",
        # scrypt with a small cost: same code path as production, fast enough for many logins.
        "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
        "SESSION_REDIS_URL": None,
        "RATELIMIT_STORAGE_URL": "worker-memory://",  # the default: tests exercise what production runs
        # The webhooks' task queue: Huey's SQLite storage (the default's kind), a file of the test's own.
        "WEBHOOKS_QUEUE_URL": f"sqlite:///{tmp_path / 'webhook-queue.sqlite3'}",
    }


def empty_all_tables() -> None:
    tables = ", ".join(t.name for t in db.metadata.sorted_tables)
    with db.engine.begin() as conn:
        # A connection left open by a test fails the run here instead of hanging it.
        conn.execute(sa.text("SET LOCAL lock_timeout = '10s'"))
        conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


class ClosingClient(FlaskClient):
    """Flask's test client, closing each request's body stream once it has answered.

    Werkzeug's test client writes a multipart body over 500 KB to a temporary file and
    leaves it open; the ResourceWarning it raises when collected (an error in this suite)
    lands in whichever test runs then.
    """

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        for answered in (*response.history, response):
            answered.request.environ["wsgi.input"].close()
        return response


@dataclass
class Org:
    """An account with one admin, events and attendees, as ids (no ORM objects leak out)."""

    account_id: int
    admin_id: int
    email: str
    event_ids: list[int]
    attendee_ids: list[int]


def make_org(name: str, email: str, events: int = 3, attendees_per_event: int = 2) -> Org:
    account = Account(name=name)
    db.session.add(account)
    db.session.flush()
    admin = Admin(account_id=account.id, email=email, password_hash=hash_password(PASSWORD))
    db.session.add(admin)
    start = datetime(2026, 6, 1, 18, 30, tzinfo=UTC)
    event_rows = []
    for n in range(events):
        event = Event(account_id=account.id, title=f"{name} event {n}", venue="Main Hall", status="published",
                      starts_at=start + timedelta(days=n), ends_at=start + timedelta(days=n, hours=2))
        db.session.add(event)
        event_rows.append(event)
    db.session.flush()
    attendee_rows = []
    for event in event_rows:
        for n in range(attendees_per_event):
            attendee = Attendee(account_id=account.id, event_id=event.id, name=f"Guest {n}",
                                email=f"guest{n}@{event.id}.example", ticket_type="General")
            db.session.add(attendee)
            attendee_rows.append(attendee)
    db.session.commit()
    return Org(account.id, admin.id, email, [e.id for e in event_rows], [a.id for a in attendee_rows])


def csrf_token_from(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "no csrf_token field in the page"
    return match.group(1)


class AuthActions:
    """Log in and out through the real forms, CSRF token and all."""

    def __init__(self, client):
        self.client = client

    def login(self, email: str = "admin@acme.example", password: str = PASSWORD, next: str | None = None):
        page = self.client.get("/login")
        url = "/login" + (f"?next={next}" if next else "")
        return self.client.post(url, data={"email": email, "password": password,
                                           "csrf_token": csrf_token_from(page.text)})

    def logout(self):
        page = self.client.get("/admin/events")
        return self.client.post("/logout", data={"csrf_token": csrf_token_from(page.text)})


def create_token_via_form(client, description: str = "Mailchimp sync", tier: str = "read") -> str:
    """Create a token through Settings → API Tokens; returns the raw value from the reveal page."""
    form = client.get("/admin/settings/api_tokens/new")
    response = client.post("/admin/settings/api_tokens", data={
        "description": description, "tier": tier,
        "csrf_token": csrf_token_from(form.text), "nonce": NONCE_FIELD.search(form.text).group(1),
    })
    assert response.status_code == 200, response.text
    return TOKEN_VALUE.search(response.text).group(1)


@contextmanager
def seeded_database(directory, name: str, events: int = 3, attendees_per_event: int = 2) -> Iterator[tuple]:
    """(URL, app, org) of a scratch database (tests/databases.py) migrated to the head and
    holding one account, "Acme Events", for a server to serve; its connections closed at the end."""
    from flask_migrate import upgrade

    from usetix import create_app

    with scratch_database(directory, name) as url:
        app = create_app({**make_test_config(directory), "DATABASE_URL": url})
        with app.app_context():
            upgrade()
            org = make_org("Acme Events", "admin@acme.example", events=events, attendees_per_event=attendees_per_event)
            db.session.remove()  # its connection back first, so dispose() closes it
        try:
            yield url, app, org
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()


def issue(app, org: Org, tier: str = "read", description: str = "test token", **options) -> str:
    """A raw token for ``org``, issued directly (no dashboard round trip); ``tier`` names a
    preset, ``options`` are issue_token's (``permissions=``, ``event_ids=``)."""
    with app.app_context():
        admin = db.session.get(Admin, org.admin_id)
        return issue_token(admin, description, tier, "127.0.0.1", **options)[1]


def bearer(token: str) -> dict:
    """Headers of a JSON API request with ``token``."""
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


LINK = re.compile(r'<([^>]*)>; rel="(\w+)"')


def links(response) -> dict[str, str]:
    """The targets of a response's RFC 8288 Link header, by relation."""
    return {rel: target for target, rel in LINK.findall(response.headers.get("Link", ""))}


def walk(client, path: str, token: str) -> list[dict]:
    """Every page of a list, from ``path`` on by ``rel="next"``: their JSON bodies."""
    pages = []
    while path is not None:
        response = client.get(path, headers=bearer(token))
        assert response.status_code == 200, response.json
        pages.append(response.json)
        path = links(response).get("next")
    return pages


# A valid event body for a write test.
NEW_EVENT = {"title": "Launch party", "starts_at": "2026-09-01T18:00:00+02:00", "ends_at": "2026-09-01T23:00:00+02:00",
             "venue": "Rooftop"}


@contextmanager
def write_lock_holder(database_url: str) -> Iterator[sqlite3.Connection]:
    """(SQLite) Another process's connection to the database, to take its write lock with
    ``BEGIN IMMEDIATE`` and hold it until ``ROLLBACK``."""
    holder = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        yield holder
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()


@contextmanager
def held_write_lock(database_url: str) -> Iterator[None]:
    with write_lock_holder(database_url) as holder:
        holder.execute("BEGIN IMMEDIATE")
        yield


class WriteLock:
    """Another connection holding the database's write lock (SQLite) or the token row's
    lock (PostgreSQL), as a long migration or a stuck transaction would."""

    def __init__(self, app):
        self.app = app

    def __enter__(self):
        url = self.app.config["DATABASE_URL"]
        if url.startswith("sqlite:///"):
            self.connection = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            self.connection.execute("BEGIN IMMEDIATE")  # the one writer, until rollback
        else:
            engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
            self.connection = engine.connect()
            self.connection.execute(sa.text("SELECT id FROM api_tokens FOR UPDATE"))
            self.engine = engine
        return self

    def __exit__(self, *exc):
        if isinstance(self.connection, sqlite3.Connection):
            self.connection.rollback()
        else:
            self.connection.rollback()
            self.connection.close()
            self.engine.dispose()
        self.connection.close()


class InlineFinder(HTMLParser):
    """Collects what a strict CSP would block: inline script and style, event handler
    attributes, javascript: URLs."""

    def __init__(self):
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script" and not attributes.get("src"):
            self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("<style> element")
        for name, value in attrs:
            if name == "style":
                self.problems.append(f"style attribute on <{tag}>")
            if name.startswith("on"):
                self.problems.append(f"{name} handler on <{tag}>")
            if name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                    "javascript:"):
                self.problems.append(f"javascript: URL in <{tag} {name}>")


def inline_problems(html: str) -> list[str]:
    finder = InlineFinder()
    finder.feed(html)
    finder.close()
    return finder.problems


def free_port() -> int:
    """A loopback port nothing listens on (at the moment of asking)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def closed_redis_url() -> str:
    """A Redis URL at a port where nothing listens: a Redis that is down."""
    return f"redis://127.0.0.1:{free_port()}/0"


def login_with_form(client, email: str = "admin@acme.example", password: str = PASSWORD, **kwargs):
    """Log in through the form with any client that has Flask's or requests' get/post."""
    page = client.get("/login", **kwargs)
    return client.post("/login", data={"email": email, "password": password,
                                        "csrf_token": csrf_token_from(page.text)}, **kwargs)
