"""Databases for tests: SQLite files, or PostgreSQL schemas of their own.

On PostgreSQL (``USETIX_TEST_DATABASE_URL`` set) a test run, or a test that needs an empty
database (migrations, real gunicorn servers), gets a schema of its own in that database,
chosen by the URL (``options=-csearch_path=...``). Two runs at once, a developer's and
CI's, then never empty or drop each other's tables.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

POSTGRES_URL = os.environ.get("USETIX_TEST_DATABASE_URL") or None
# A lock held by a leaked connection fails the DDL after this, instead of hanging the run.
LOCK_TIMEOUT = "10s"


def in_schema(url: str, schema: str) -> str:
    """``url`` with ``schema`` as the connection's search path (where tables are made and found)."""
    return sa.engine.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}) \
        .render_as_string(hide_password=False)


def _schema_ddl(url: str, statement: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def create_schema(url: str, schema: str) -> None:
    _schema_ddl(url, f'CREATE SCHEMA "{schema}"')


def drop_schema(url: str, schema: str) -> None:
    _schema_ddl(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def new_schema_name(purpose: str) -> str:
    return f"usetix_{purpose}_{os.getpid()}_{secrets.token_hex(3)}"


# On PostgreSQL: this run's own schema (made and dropped by conftest's postgres_schema fixture)
# and the URL of every test app (on SQLite, each test app gets a file of its own instead).
POSTGRES_SCHEMA = new_schema_name("test") if POSTGRES_URL else None
TEST_DATABASE_URL = in_schema(POSTGRES_URL, POSTGRES_SCHEMA) if POSTGRES_URL else None


@contextmanager
def scratch_database(directory: Path, purpose: str) -> Iterator[str]:
    """The URL of a new, empty database on the suite's kind of database; gone afterwards.

    SQLite: a file in ``directory``. PostgreSQL: a new schema, dropped at the end.
    """
    if POSTGRES_URL is None:
        yield f"sqlite:///{directory / (purpose + '.sqlite3')}"
        return
    schema = new_schema_name(purpose)
    create_schema(POSTGRES_URL, schema)
    try:
        yield in_schema(POSTGRES_URL, schema)
    finally:
        drop_schema(POSTGRES_URL, schema)


def database_kind() -> str:
    return "postgresql" if POSTGRES_URL else "sqlite"


# The test Redis (CI starts one; USETIX_TEST_REDIS_URL names it).
REDIS_URL = os.environ.get("USETIX_TEST_REDIS_URL") or "redis://127.0.0.1:6379/15"


def redis_client_or_skip():
    """A client of the test Redis. Skipped only where nothing asks for Redis: CI (CI=true)
    and a set USETIX_TEST_REDIS_URL make an unreachable Redis a failure."""
    import pytest
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        if os.environ.get("USETIX_TEST_REDIS_URL") or os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"Redis at {REDIS_URL} is required here and cannot be reached: {exc}")
        pytest.skip(f"no Redis at {REDIS_URL} (set USETIX_TEST_REDIS_URL to require one)")
    return client
