from pathlib import Path

import pytest

from usetix import create_app


def test_testing_config_is_applied(app):
    assert app.testing
    assert app.config["SQLALCHEMY_DATABASE_URI"] == app.config["DATABASE_URL"]


def test_production_refuses_placeholder_secret_key(tmp_path, monkeypatch):
    monkeypatch.delenv("USETIX_SECRET_KEY", raising=False)
    monkeypatch.delenv("FLASK_DEBUG", raising=False)
    with pytest.raises(RuntimeError, match="USETIX_SECRET_KEY"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"})


def test_production_refuses_short_secret_key(tmp_path):
    with pytest.raises(RuntimeError, match="real secret key"):
        create_app({"SECRET_KEY": "short", "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"})


def test_production_starts_with_a_real_secret_key(tmp_path):
    app = create_app({"SECRET_KEY": "x" * 32, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"})
    assert not app.testing


def test_environment_overrides_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("USETIX_SESSION_IDLE_HOURS", "2")
    monkeypatch.setenv("USETIX_SECRET_KEY", "y" * 32)
    monkeypatch.setenv("USETIX_DATABASE_URL", f"sqlite:///{tmp_path / 'env.sqlite3'}")
    app = create_app()
    assert app.config["PERMANENT_SESSION_LIFETIME"].total_seconds() == 2 * 3600
    assert app.config["SQLALCHEMY_DATABASE_URI"].endswith("env.sqlite3")


def test_sqlite_connections_use_wal_and_busy_timeout(tmp_path):
    from usetix.database.engine import db

    # Always a SQLite file, also when the suite runs on PostgreSQL: this is SQLite's setup.
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'wal.sqlite3'}"})
    with app.app_context(), db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000


@pytest.mark.parametrize(("setting", "level"), [(None, 1), ("full", 2), ("EXTRA", 3)])
def test_sqlite_commits_sync_as_sqlite_synchronous_says(tmp_path, setting, level):
    """NORMAL (1) by default: WAL synced at checkpoints; FULL (2) and EXTRA (3) on request."""
    from usetix.database.engine import db

    config = {"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'sync.sqlite3'}"}
    if setting:
        config["SQLITE_SYNCHRONOUS"] = setting
    app = create_app(config)
    with app.app_context():
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == level
        db.engine.dispose()


@pytest.mark.parametrize("setting", ["OFF", "fast", ""])
def test_an_unknown_sqlite_synchronous_level_is_refused(tmp_path, setting):
    with pytest.raises(ValueError, match="SQLITE_SYNCHRONOUS must be one of NORMAL, FULL, EXTRA"):
        create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}",
                    "SQLITE_SYNCHRONOUS": setting})


def test_the_suite_never_reads_the_checkouts_instance_folder(app, no_developer_instance_folder):
    """``make run`` writes instance/config.py (a real secret key) in the checkout: tests
    must not see it (tests/conftest.py gives the run an empty instance folder of its own)."""
    checkout_instance = Path(__file__).resolve().parents[2] / "instance"
    assert Path(app.instance_path) == no_developer_instance_folder != checkout_instance
    assert not (no_developer_instance_folder / "config.py").exists()
