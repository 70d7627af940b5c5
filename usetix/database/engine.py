"""The database itself: the ``db`` extension, the models' declarative base with its
constraint names, and how a SQLite connection is set up."""

import select

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event, exc
from sqlalchemy.engine import Engine
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


def check_server_connections(engine: Engine) -> None:
    """Replace, at checkout, a pooled connection the database server dropped (a restart, a
    failover, ``pg_terminate_backend``), as ``pool_pre_ping`` does, without its round trip.

    A server that ends a connection says so (an error, then end of file) on a socket the
    connection was not reading: an idle connection whose socket has something to read is
    pinged (one round trip, as ``pool_pre_ping`` on every checkout), and one that fails it
    is replaced, with every other connection of the pool made before it. Why: docs/performance.md.
    """
    if engine.dialect.name == "sqlite":
        return

    @event.listens_for(engine, "checkout")
    def ping_if_the_server_spoke(dbapi_connection, connection_record, connection_proxy):
        if not _has_input(dbapi_connection.fileno()):
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise exc.InvalidatePoolError(str(error)) from error
        if not alive:
            raise exc.InvalidatePoolError("the database server ended this connection")


def _has_input(fileno: int) -> bool:
    """Whether the socket ``fileno`` has something to read now (no waiting)."""
    poller = select.poll()
    poller.register(fileno, select.POLLIN)
    return bool(poller.poll(0))
