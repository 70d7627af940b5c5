"""Fixtures: a fresh app and database per test, clients, the CLI runner, login helpers.

Tests run on SQLite (a new file per test) unless USETIX_TEST_DATABASE_URL names a
PostgreSQL database; then the run gets a schema of its own in that database (see
tests/databases.py), its tables are created once and every table is emptied after each
test.
"""

from __future__ import annotations

import os
import re
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import flask
import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from usetix import create_app
from usetix.auth.passwords import hash_password
from usetix.auth.token_service import issue_token
from usetix.database.engine import db
from usetix.database.models import Account, Admin, Attendee, Event
from usetix.web.app import Usetix

from .databases import (
    POSTGRES_URL,
    create_schema,
    drop_schema,
    in_schema,
    new_schema_name,
)

PASSWORD = "correct horse battery"
# On PostgreSQL: this run's own schema (made and dropped by the postgres_schema fixture).
POSTGRES_SCHEMA = new_schema_name("test") if POSTGRES_URL else None
TEST_DATABASE_URL = in_schema(POSTGRES_URL, POSTGRES_SCHEMA) if POSTGRES_URL else None
CSRF_FIELD = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')
NONCE_FIELD = re.compile(r'<input[^>]*name="nonce"[^>]*value="([^"]+)"')
TOKEN_VALUE = re.compile(r'id="token-value">([^<]+)<')


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
    }


def empty_all_tables() -> None:
    tables = ", ".join(t.name for t in db.metadata.sorted_tables)
    with db.engine.begin() as conn:
        # A connection left open by a test fails the run here instead of hanging it.
        conn.execute(sa.text("SET LOCAL lock_timeout = '10s'"))
        conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="session", autouse=True)
def postgres_schema():
    """On PostgreSQL, this run's schema exists for the whole run and is dropped after it."""
    if not POSTGRES_URL:
        yield None
        return
    create_schema(POSTGRES_URL, POSTGRES_SCHEMA)
    yield POSTGRES_SCHEMA
    drop_schema(POSTGRES_URL, POSTGRES_SCHEMA)


# Apps on PostgreSQL that were used during the current test: apps a test makes itself
# (create_app(make_test_config(...))) are never disposed, and a pooled connection that is
# garbage-collected open is a ResourceWarning, which this suite turns into an error. Every
# use of an engine happens inside an app context, so Flask's appcontext_pushed signal
# finds them. (Not an engine event on the Engine class: that would set SQLAlchemy's
# _has_events flag on every engine, and PreparedSelect would run its listener branch in
# every test instead of production's.)
_postgres_apps: weakref.WeakSet = weakref.WeakSet()


def _remember_postgres_app(app, **extra) -> None:
    if str(app.config.get("SQLALCHEMY_DATABASE_URI", "")).startswith("postgresql"):
        _postgres_apps.add(app)


flask.appcontext_pushed.connect(_remember_postgres_app)


@pytest.fixture(autouse=True)
def close_postgres_connections():
    """After each test, close the pooled connections of every PostgreSQL app it used."""
    yield
    apps = list(_postgres_apps)
    for each in apps:
        with each.app_context():
            for engine in db.engines.values():
                engine.dispose()
    _postgres_apps.clear()


@pytest.fixture(scope="session", autouse=True)
def no_developer_environment():
    """The suite never reads the developer's USETIX_* settings (CI's USETIX_TEST_* stay:
    they choose the test databases). tests/servers.py builds its servers' environment
    from scratch too."""
    saved = {name: value for name, value in os.environ.items()
             if name.startswith("USETIX_") and not name.startswith("USETIX_TEST_")}
    for name in saved:
        del os.environ[name]
    yield
    os.environ.update(saved)


@pytest.fixture(scope="session", autouse=True)
def no_developer_instance_folder(tmp_path_factory):
    """Apps made in tests get an empty instance folder of the run's own, never the
    checkout's instance/ (where ``make run`` writes a config.py with a real secret key).
    Session-wide, so that apps made by module-scoped fixtures get it too."""
    instance = tmp_path_factory.mktemp("instance")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Usetix, "auto_find_instance_path", lambda self: str(instance))
        yield instance


@pytest.fixture
def app(request, tmp_path):
    """A fresh app and database; ``@pytest.mark.app_config(NAME=value)`` adds settings, and so
    does a mapping given as the fixture's parameter (``indirect=True``: one app per variant)."""
    marker = request.node.get_closest_marker("app_config")
    app = create_app({**make_test_config(tmp_path), **getattr(request, "param", {}),
                      **(marker.kwargs if marker else {})})
    app.test_client_class = ClosingClient
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        if TEST_DATABASE_URL:
            empty_all_tables()
        db.engine.dispose()


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


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


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


@pytest.fixture
def orgs(app):
    """Two accounts: "acme" and "globex", each with an admin, 3 events and 6 attendees."""
    with app.app_context():
        return {
            "acme": make_org("Acme Events", "admin@acme.example"),
            "globex": make_org("Globex Live", "admin@globex.example"),
        }


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


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def logged_in(client, auth, orgs):
    """A client logged in as Acme's admin."""
    response = auth.login()
    assert response.status_code == 302
    return client


def create_token_via_form(client, description: str = "Mailchimp sync", tier: str = "read") -> str:
    """Create a token through Settings → API Tokens; returns the raw value from the reveal page."""
    form = client.get("/admin/settings/api_tokens/new")
    response = client.post("/admin/settings/api_tokens", data={
        "description": description, "tier": tier,
        "csrf_token": csrf_token_from(form.text), "nonce": NONCE_FIELD.search(form.text).group(1),
    })
    assert response.status_code == 200, response.text
    return TOKEN_VALUE.search(response.text).group(1)


def issue(app, org: Org, tier: str = "read", description: str = "test token") -> str:
    """A raw token for ``org``, issued directly (no dashboard round trip)."""
    with app.app_context():
        admin = db.session.get(Admin, org.admin_id)
        return issue_token(admin, description, tier, "127.0.0.1")[1]


@pytest.fixture
def read_token(app, orgs):
    return issue(app, orgs["acme"], "read")


@pytest.fixture
def write_token(app, orgs):
    return issue(app, orgs["acme"], "write")


def bearer(token: str) -> dict:
    """Headers of a JSON API request with ``token``."""
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}
