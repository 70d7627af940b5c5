"""SQLite's writers queued on a file lock, each going on as soon as the one before it is done.

SQLite lets one connection write at a time. A writer that finds the write lock taken waits
in SQLite's busy handler, which sleeps 1 ms, then 2, 5, 10 … between tries. The API's
writes hold the lock well under a millisecond, so under a stream of them from several
gunicorn workers a waiting worker mostly sleeps on past the moment the lock came free, while
the other takes it again: under load the write path's workers were busy 54 % of the time
(bench/RESULTS.md). So the API's write transactions on SQLite (``write_view``) first take
this lock: ``flock`` on a file beside the database (``<database>-writer.lock``), one open
file description per process and thread, so it excludes every other writer of the host
that takes it (a SQLite database has one host). A writer that finds it taken tries again
within a tenth of a millisecond or so, rising to half a millisecond.

The lock only shortens the waits; SQLite's own lock still decides. A writer that has waited
the busy timeout for it fails as one that waited that long for SQLite's lock (503, usetix/web/database_failures.py):
going on would wait a busy timeout more behind a writer that is itself stuck. One that
cannot open the file goes on without it. The dashboard's writes and the webhook
worker's do not take it (they are rare beside the API's).

Why not the ``filelock`` library: it polls every 50 ms, longer than the busy handler's
first sleeps. Why not a blocking ``flock``: it has no timeout.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator

import sqlalchemy as sa

from .locks import WriterQueueTimedOut

# The first pause between tries, and the longest (seconds): the pause doubles up to it.
FIRST_PAUSE = 0.00005
LONGEST_PAUSE = 0.0005
LOCK_FILE_SUFFIX = "-writer.lock"
# A connection's info keys: its lock file and timeout while in writer_turn, and whether it holds the lock.
_WAITING = "usetix_writer_waiting"
_HELD = "usetix_writer_held"


class _Descriptors(dict):
    """Lock files by path, open file descriptors closed with the thread that opened them: a
    server that starts a thread per request (``flask run``) would otherwise leave one open
    for each of its writes."""

    def __del__(self, close=os.close) -> None:  # close bound now: at exit the module may be gone
        for descriptor in self.values():
            with contextlib.suppress(OSError):
                close(descriptor)


class _Opened(threading.local):
    """This thread's open lock files, by path; a file description of its own for each thread
    and process (``flock`` is per open file description: one shared with a sibling process
    or thread would not exclude it)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.files = _Descriptors()
        self.turns = 0  # writer_turns under way in this thread


_opened = _Opened()


def lock_path(connection: sa.Connection) -> str | None:
    """The writer lock file of ``connection``'s database, or None (not SQLite, or a database
    in memory: one connection, nothing to queue)."""
    url = connection.engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return url.database + LOCK_FILE_SUFFIX


def _descriptor(path: str) -> int | None:
    if _opened.pid != os.getpid():
        # A forked child: the parent's descriptions are shared with it (closing the child's
        # copies leaves the parent's locks alone).
        _opened.pid, _opened.files, _opened.turns = os.getpid(), _Descriptors(), 0
    files = _opened.files
    descriptor = files.get(path)
    if descriptor is None:
        if not _opened.turns:  # another database's lock file, not in use: a process writes one (a test run, many)
            for other in list(files):
                with contextlib.suppress(OSError):
                    os.close(files.pop(other))
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return None
        files[path] = descriptor
    return descriptor


def _acquire(descriptor: int, timeout: float) -> bool:
    pause, deadline = FIRST_PAUSE, None
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        now = time.monotonic()
        if deadline is None:
            deadline = now + timeout
        elif now >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, LONGEST_PAUSE)


@contextlib.contextmanager
def writer_turn(connection: sa.Connection, timeout: float, reads_first: bool = False) -> Iterator[None]:
    """Queue the writes of ``connection``'s SQLite database while the block runs (a write
    transaction, to its commit or rollback): from the start, or, when it ``reads_first``,
    from its call of :func:`take_turn` before its first write, so that what it reads
    first runs beside another worker's write, as under SQLite's own lock. On any other
    database, nothing."""
    path = lock_path(connection)
    descriptor = None if path is None else _descriptor(path)
    if descriptor is None:
        yield
        return
    info = connection.info
    info[_WAITING] = (descriptor, timeout)
    _opened.turns += 1
    try:
        if not reads_first:
            take_turn(connection)
        yield
    finally:
        _opened.turns -= 1
        info.pop(_WAITING, None)
        if info.pop(_HELD, False):
            fcntl.flock(descriptor, fcntl.LOCK_UN)


def take_turn(connection: sa.Connection) -> None:
    """Wait for the writer lock of a connection in :func:`writer_turn`, before its first write
    (nothing if it holds it already, or is not in one)."""
    info = connection.info
    waiting = info.get(_WAITING)
    if waiting is None or _HELD in info:
        return
    if not _acquire(*waiting):
        raise WriterQueueTimedOut("the writer lock was held by other writers past the busy timeout")
    info[_HELD] = True
