"""The database itself: the ``db`` extension, the models' declarative base with its
constraint names, how a SQLite connection is set up, and how a database server's pooled
connections are checked at checkout."""

from contextvars import ContextVar

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event, exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    # Named constraints, so migrations can refer to (and drop) them on every database.
    metadata = MetaData(naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })


db = SQLAlchemy(model_class=Base)


# How long a SQLite commit waits for the disk (PRAGMA synchronous; USETIX_SQLITE_SYNCHRONOUS).
# OFF is not offered: an operating-system crash could then corrupt the database.
SQLITE_SYNCHRONOUS_LEVELS = ("NORMAL", "FULL", "EXTRA")


def configure_sqlite(engine: Engine, synchronous: str, busy_timeout_ms: int = 10000) -> None:
    """Set up each new connection of ``engine`` when it is SQLite's.

    WAL lets readers run beside one writer; the busy timeout waits instead of failing with
    "database is locked" when two gunicorn workers write at once. ``synchronous`` NORMAL,
    the default (SQLite's advice for WAL, and Rails' production default), syncs the journal
    at checkpoints rather than at every commit: a commit survives a crash of the app or of
    gunicorn, but a power cut or an operating-system crash loses what was committed since
    the last checkpoint (answered writes included), though it never corrupts the file.
    FULL syncs every commit (README, "Configuration").
    """
    synchronous = str(synchronous).upper()
    if synchronous not in SQLITE_SYNCHRONOUS_LEVELS:
        raise ValueError(f"SQLITE_SYNCHRONOUS must be one of {', '.join(SQLITE_SYNCHRONOUS_LEVELS)}, "
                         f"not {synchronous!r}")
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def set_pragmas(dbapi_connection, connection_record):
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", f"busy_timeout={int(busy_timeout_ms)}", "foreign_keys=ON",
                       f"synchronous={synchronous}"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()


# Set while a checkout needs no ping: its caller's first statement is a read it runs again
# on a new connection if this one turned out lost (usetix/database/connection.py, first_read).
_first_statement_pings: ContextVar[bool] = ContextVar("usetix_first_statement_pings", default=False)


def connect_without_ping(engine: Engine) -> Connection:
    """``engine.connect()``, its connection checked out without a ping (see :func:`ping_at_checkout`).

    A function, not a context manager: it runs on every API request (docs/performance.md)."""
    token = _first_statement_pings.set(True)
    try:
        return engine.connect()
    finally:
        _first_statement_pings.reset(token)


def ping_at_checkout(engine: Engine) -> None:
    """On a database server, ping each pooled connection as it is checked out, as
    ``pool_pre_ping`` does, except in :func:`connect_without_ping`: a connection the server
    dropped (a restart, a failover, ``pg_terminate_backend``) is replaced, and with it every
    connection of the pool made before it. Why not ``pool_pre_ping`` itself: its round trip
    cannot be left out for the API's reads (docs/performance.md, "PostgreSQL: round trips").
    """
    if engine.dialect.name == "sqlite":
        return

    @event.listens_for(engine, "connect")
    def made_now(dbapi_connection, connection_record):
        connection_record.info["usetix_fresh"] = True  # nothing to ping yet, as pool_pre_ping

    @event.listens_for(engine, "checkout")
    def ping(dbapi_connection, connection_record, connection_proxy):
        if connection_record.info.pop("usetix_fresh", False) or _first_statement_pings.get():
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise exc.InvalidatePoolError(str(error)) from error
        if not alive:
            raise exc.InvalidatePoolError("the database server ended this connection")
