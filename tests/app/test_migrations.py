"""Schema migrations: upgrading an empty database gives exactly the schema the models
declare, and downgrade/upgrade round-trips. On the suite's database kind: a new SQLite
file, or a PostgreSQL schema of its own (tests/databases.py)."""

from __future__ import annotations

import logging
import re
import shutil
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, migrate, upgrade

import usetix
from usetix import create_app
from usetix.database.engine import db

from ..databases import database_kind, scratch_database
from ..helpers import make_test_config

MIGRATIONS = Path(usetix.__file__).parent / "migrations"
# Alembic's own table, and what the models declare.
EXPECTED_TABLES = {t.name for t in db.metadata.sorted_tables} | {"alembic_version"}
T = datetime(2026, 1, 1, 9, 0)  # a stored (naive UTC) time for rows written in SQL


@pytest.fixture
def empty_app(tmp_path):
    """An app on a new, empty database (no create_all: the migrations make the schema)."""
    with scratch_database(tmp_path, "migrations") as url:
        app = create_app({**make_test_config(tmp_path), "DATABASE_URL": url})
        yield app
        with app.app_context():
            db.engine.dispose()


def schema_drift(app, metadata: sa.MetaData = db.metadata) -> list:
    """What autogenerate would put in a new migration: the differences between the
    database and the models (``metadata``), comparing column types too."""
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return compare_metadata(context, metadata)


def table_names(app) -> set[str]:
    with app.app_context():
        return set(sa.inspect(db.engine).get_table_names())


def head_revision() -> str:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def current_revision(app) -> str | None:
    with app.app_context(), db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_upgrade_from_empty_gives_exactly_the_models_schema(empty_app):
    assert table_names(empty_app) == set()
    with empty_app.app_context():
        upgrade()
    assert table_names(empty_app) == EXPECTED_TABLES
    assert current_revision(empty_app) == head_revision()
    assert schema_drift(empty_app) == [], f"models and migrations differ on {database_kind()}"


def test_the_drift_check_sees_a_missing_index(empty_app):
    """The comparison is not vacuous: a schema one index short is reported."""
    with empty_app.app_context():
        upgrade()
        with db.engine.begin() as conn:
            conn.execute(sa.text("DROP INDEX ix_api_tokens_account_id"))
    drift = schema_drift(empty_app)
    assert [d[0] for d in drift] == ["add_index"]
    assert drift[0][1].name == "ix_api_tokens_account_id"


def test_the_drift_check_compares_column_types(empty_app):
    """A model whose column type differs from the migrated one is reported too."""
    with empty_app.app_context():
        upgrade()
    changed = sa.MetaData(naming_convention=db.metadata.naming_convention)
    for table in db.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["events"].c.title.type = sa.String(100)
    drift = schema_drift(empty_app, changed)
    assert len(drift) == 1 and drift[0][0][0] == "modify_type"
    assert drift[0][0][2:4] == ("events", "title")


def test_downgrade_to_base_and_upgrade_again(empty_app):
    with empty_app.app_context():
        upgrade()
        downgrade(revision="base")
    assert table_names(empty_app) == {"alembic_version"}
    assert current_revision(empty_app) is None
    with empty_app.app_context():
        upgrade()
    assert current_revision(empty_app) == head_revision()
    assert schema_drift(empty_app) == []


def test_upgraded_schema_holds_data_and_init_db_is_idempotent(empty_app):
    runner = empty_app.test_cli_runner()
    for _ in range(2):
        result = runner.invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
    result = runner.invoke(args=["seed-demo", "--password", "a-long-demo-password"])
    assert result.exit_code == 0, result.output
    with empty_app.app_context():
        assert db.session.scalar(sa.text("SELECT count(*) FROM events")) > 0
        db.session.remove()


def test_autogenerate_writes_migrations_that_need_only_alembic_and_sqlalchemy(empty_app, tmp_path):
    """``flask db migrate`` (through our env.py) on an empty database writes the whole
    schema, with UTCDateTime columns as plain sa.DateTime: no import of the app."""
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, directory, ignore=shutil.ignore_patterns("__pycache__"))
    for old in (directory / "versions").glob("*.py"):
        old.unlink()
    with empty_app.app_context():
        migrate(directory=str(directory), message="everything")
    [generated] = (directory / "versions").glob("*.py")
    code = generated.read_text()
    assert "sa.Column('expires_at', sa.DateTime(), nullable=False)" in code
    assert "usetix" not in code and "UTCDateTime" not in code
    imports = {line for line in code.splitlines() if line.startswith(("import ", "from "))}
    assert imports == {"from alembic import op", "import sqlalchemy as sa"}


def test_running_migrations_leaves_the_apps_loggers_alone(empty_app):
    """Alembic's logging setup must not disable loggers made before it (the request log)."""
    logger = logging.getLogger("usetix.requests")
    with empty_app.app_context():
        upgrade()
    assert not logger.disabled


def test_ids_are_never_given_twice_after_the_upgrade_and_rows_are_kept(empty_app):
    """The upgrade that stops SQLite reusing ids keeps every row (ids included), and the
    next event gets an id above the newest one deleted before it, whose tombstone a client
    may have synced (PostgreSQL's sequences never reused one). A token's fractional expiry
    becomes its whole second."""
    new_event = sa.text("INSERT INTO events (account_id, title, starts_at, ends_at, venue, status, created_at, "
                        "updated_at, version) VALUES (:account, :title, :t, :t, 'Hall', 'draft', :t, :t, 1) "
                        "RETURNING id")
    with empty_app.app_context():
        upgrade(revision="c14a11fe0001")
        with db.engine.begin() as conn:
            account = conn.execute(sa.text("INSERT INTO accounts (name, created_at) VALUES ('Acme', :t) RETURNING id"),
                                   {"t": T}).scalar_one()
            kept = conn.execute(new_event, {"account": account, "title": "kept", "t": T}).scalar_one()
            newest = conn.execute(new_event, {"account": account, "title": "newest", "t": T}).scalar_one()
            attendee = conn.execute(sa.text(
                "INSERT INTO attendees (account_id, event_id, name, email, ticket_type, checked_in, created_at, "
                "updated_at, version) VALUES (:account, :event, 'Ada', 'ada@example.com', 'VIP', false, :t, :t, 1) "
                "RETURNING id"), {"account": account, "event": kept, "t": T}).scalar_one()
            admin = conn.execute(sa.text(
                "INSERT INTO admins (account_id, email, password_hash, created_at) "
                "VALUES (:account, 'a@example.com', 'x', :t) RETURNING id"), {"account": account, "t": T}).scalar_one()
            conn.execute(sa.text(
                "INSERT INTO api_tokens (account_id, created_by_id, description, tier, digest, created_at, expires_at, "
                "use_count) VALUES (:account, :admin, 'sync', 'read', :digest, :t, :expires, 0)"),
                {"account": account, "admin": admin, "digest": "0" * 64, "t": T,
                 "expires": datetime(2027, 1, 1, 12, 0, 5, 690_000)})
            # The API deleted the newest event: its id lives on in a tombstone.
            conn.execute(sa.text("DELETE FROM events WHERE id = :id"), {"id": newest})
            conn.execute(sa.text("INSERT INTO tombstones (account_id, object_type, object_id, deleted_at) "
                                 "VALUES (:account, 'event', :id, :t)"), {"account": account, "id": newest, "t": T})
        upgrade()
        with db.engine.begin() as conn:
            if conn.dialect.name == "sqlite":  # the migrations ran with them off, on a pooled connection
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.execute(sa.text("SELECT id, title FROM events")).all() == [(kept, "kept")]
            assert conn.execute(sa.text("SELECT id, event_id FROM attendees")).all() == [(attendee, kept)]
            # A token's expiry is kept to the second its header states.
            assert conn.execute(sa.text("SELECT expires_at FROM api_tokens").columns(expires_at=sa.DateTime)) \
                .scalar_one() == datetime(2027, 1, 1, 12, 0, 5)
            created = conn.execute(new_event, {"account": account, "title": "new", "t": T}).scalar_one()
            assert created > newest
            conn.execute(sa.text("DELETE FROM events WHERE id = :id"), {"id": created})
            assert conn.execute(new_event, {"account": account, "title": "again", "t": T}).scalar_one() > created
    assert schema_drift(empty_app) == []


def test_existing_tokens_keep_what_their_tier_allowed(empty_app):
    """The permissions' upgrade (issue 22): a read token becomes the read preset, a write
    token the write preset; neither is limited to some events."""
    with empty_app.app_context():
        upgrade(revision="e27a0d170001")  # the head before the permissions' revision
        with db.engine.begin() as conn:
            account = conn.execute(sa.text("INSERT INTO accounts (name, created_at) VALUES ('Acme', :t) RETURNING id"),
                                   {"t": T}).scalar_one()
            admin = conn.execute(sa.text(
                "INSERT INTO admins (account_id, email, password_hash, created_at) "
                "VALUES (:account, 'a@example.com', 'x', :t) RETURNING id"), {"account": account, "t": T}).scalar_one()
            for tier in ("read", "write"):
                conn.execute(sa.text(
                    "INSERT INTO api_tokens (account_id, created_by_id, description, tier, digest, created_at, "
                    "use_count) VALUES (:account, :admin, :tier, :tier, :digest, :t, 0)"),
                    {"account": account, "admin": admin, "tier": tier, "digest": tier[0] * 64, "t": T})
        upgrade()
        with db.engine.begin() as conn:
            rows = conn.execute(sa.text("SELECT tier, events_permission, attendees_permission, check_in_permission, "
                                        "event_ids FROM api_tokens ORDER BY tier")).all()
    assert [tuple(row) for row in rows] == [("read", "read", "read", "none", None),
                                            ("write", "write", "write", "write", None)]


def test_existing_attendees_get_ticket_codes_of_their_own(empty_app):
    """The door's upgrade (issue 23): every attendee gets a ticket code (Crockford base32,
    24 characters), each its own."""
    attendee = sa.text(
        "INSERT INTO attendees (account_id, event_id, name, email, ticket_type, checked_in, created_at, updated_at, "
        "version) VALUES (:account, :event, :name, 'a@example.com', 'VIP', false, :t, :t, 1)")
    with empty_app.app_context():
        upgrade(revision="e22a11fe0001")  # the head before the door's revision
        with db.engine.begin() as conn:
            account = conn.execute(sa.text("INSERT INTO accounts (name, created_at) VALUES ('Acme', :t) RETURNING id"),
                                   {"t": T}).scalar_one()
            event = conn.execute(sa.text(
                "INSERT INTO events (account_id, title, starts_at, ends_at, venue, status, created_at, updated_at, "
                "version) VALUES (:account, 'Gala', :t, :t, 'Hall', 'published', :t, :t, 1) RETURNING id"),
                {"account": account, "t": T}).scalar_one()
            for n in range(50):
                conn.execute(attendee, {"account": account, "event": event, "name": f"Guest {n}", "t": T})
        upgrade()
        with db.engine.begin() as conn:
            codes = conn.execute(sa.text("SELECT ticket_code FROM attendees")).scalars().all()
        assert len(codes) == len(set(codes)) == 50
        assert all(re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{24}", code) for code in codes)
        assert schema_drift(empty_app) == []
