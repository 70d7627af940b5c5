"""Fixtures (only fixtures: the helpers they use are in tests/helpers.py): a fresh app and
database per test, clients, the CLI runner, a logged-in client, tokens.

Tests run on SQLite (a new file per test) unless USETIX_TEST_DATABASE_URL names a
PostgreSQL database; then the run gets a schema of its own in that database (see
tests/databases.py), its tables are created once and every table is emptied after each
test.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path

import flask
import pytest
from hypothesis import settings

from usetix import create_app
from usetix.database.engine import db
from usetix.web.app import Usetix

from . import servers
from .databases import POSTGRES_SCHEMA, POSTGRES_URL, TEST_DATABASE_URL, create_schema, drop_schema
from .helpers import AuthActions, ClosingClient, empty_all_tables, issue, make_org, make_test_config

# `--hypothesis-profile=thorough`: more examples for the properties that take the profile's count
# (the pure parsers'); the default profile keeps `pytest tests/unit` to seconds.
settings.register_profile("thorough", max_examples=500)

TESTS = Path(__file__).parent
# Each test module lives in the folder of its layer, and gets the layer's marker from it.
LAYERS = ("unit", "app", "live")
# What only tests/live may do: start gunicorn (the gunicorn marker) or a browser.
SERVER_MARKERS = ("gunicorn", "browser")


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items):
    """Marks each test with its folder's layer, and refuses a test outside the layers, a
    unit test that asks for an app, or a server test outside tests/live."""
    for item in items:
        if TESTS not in item.path.parents:
            continue
        layer = item.path.relative_to(TESTS).parts[0]
        if layer not in LAYERS:
            raise pytest.UsageError(f"{item.nodeid}: test modules live in tests/unit, tests/app or tests/live")
        item.add_marker(layer)
        if layer == "unit" and "app" in item.fixturenames:
            raise pytest.UsageError(f"{item.nodeid}: a unit test runs without an app: move it to tests/app")
        if layer != "live" and any(item.get_closest_marker(name) for name in SERVER_MARKERS):
            raise pytest.UsageError(f"{item.nodeid}: a test that starts a server belongs in tests/live")


@pytest.hookimpl(tryfirst=True)  # before the test's fixtures, a module-scoped server among them
def pytest_runtest_setup(item):
    # servers.gunicorn() serves only a test marked gunicorn (all in tests/live): so
    # `-m "not live"` (or "not gunicorn") starts no server, and an unmarked one fails.
    servers.serving_test = item.nodeid if item.get_closest_marker("gunicorn") else None


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


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def orgs(app):
    """Two accounts: "acme" and "globex", each with an admin, 3 events and 6 attendees."""
    with app.app_context():
        return {
            "acme": make_org("Acme Events", "admin@acme.example"),
            "globex": make_org("Globex Live", "admin@globex.example"),
        }


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def logged_in(client, auth, orgs):
    """A client logged in as Acme's admin."""
    response = auth.login()
    assert response.status_code == 302
    return client


@pytest.fixture
def read_token(app, orgs):
    return issue(app, orgs["acme"], "read")


@pytest.fixture
def write_token(app, orgs):
    return issue(app, orgs["acme"], "write")

