"""SQLite's API writers queued on a file lock (usetix/database/writer_queue.py): a write waits
for the lock another writer holds and goes on once it is free, or answers 503 after the
busy timeout; the lock is let go after every write, however it ended; each process and
thread has its own open file description; the door reads before it takes its turn, and
takes its timestamp after. On PostgreSQL (and a database in memory) there is no lock."""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import threading
import time
import types
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from usetix.blueprints.api import idempotency_key
from usetix.database import writer_queue
from usetix.database.engine import db
from usetix.database.models import Attendee, Scan

from ..databases import TEST_DATABASE_URL
from ..helpers import bearer, issue

sqlite_only = pytest.mark.skipif(TEST_DATABASE_URL is not None,
                                 reason="the writer lock is SQLite's (PostgreSQL: see the last test)")
PROC_FD = "/proc/self/fd"


def lock_file(app) -> str:
    with app.app_context(), db.engine.connect() as connection:
        path = writer_queue.lock_path(connection)
    assert path is not None
    return path


@contextlib.contextmanager
def held(path: str) -> Iterator[None]:
    """The writer lock, held by an open file description of the test's own."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(descriptor)


def free(path: str) -> bool:
    """Whether nobody holds the writer lock (tried from a description of its own)."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)
    return True


class Waiting:
    """What the test sees of a writer waiting for the lock: ``found`` is set once it found the
    lock taken (at ``since``); ``pauses`` counts its pauses between tries since."""

    def __init__(self) -> None:
        self.found = threading.Event()
        self.since: datetime | None = None
        self.pauses = 0


def waiting_for_the_lock(monkeypatch) -> Waiting:
    waiting = Waiting()
    real_acquire = writer_queue._acquire

    def acquire(descriptor, timeout):
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            waiting.since = datetime.now(UTC)
            waiting.found.set()
        return real_acquire(descriptor, timeout)

    def pause(seconds: float) -> None:
        waiting.pauses += 1
        time.sleep(seconds)

    monkeypatch.setattr(writer_queue, "_acquire", acquire)
    monkeypatch.setattr(writer_queue, "time", types.SimpleNamespace(monotonic=time.monotonic, sleep=pause))
    return waiting


def in_thread(app, send) -> tuple[threading.Thread, dict]:
    """``send(client)`` in a thread of its own (a request of another worker); its answer in the dict."""
    answered: dict = {}

    def run():
        answered["response"] = send(app.test_client())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, answered


def checked_in(app, attendee_id: int) -> bool:
    with app.app_context():
        return db.session.scalar(sa.select(Attendee.checked_in).where(Attendee.id == attendee_id))


def check_in_path(org, n: int = 0) -> str:
    return f"/admin/events/{org.event_ids[0]}/attendees/{org.attendee_ids[n]}/check_in"


def lock_file_descriptors(path: str) -> int:
    """How many of this process's file descriptors are open on ``path``."""
    count = 0
    for name in os.listdir(PROC_FD):
        with contextlib.suppress(OSError):
            count += os.readlink(os.path.join(PROC_FD, name)) == path
    return count


@sqlite_only
def test_a_write_waits_while_another_writer_holds_the_lock_and_goes_on_once_it_is_free(app, write_token, orgs,
                                                                                       monkeypatch):
    acme = orgs["acme"]
    path = lock_file(app)
    waiting = waiting_for_the_lock(monkeypatch)
    with held(path):
        thread, answered = in_thread(app, lambda c: c.post(check_in_path(acme), headers=bearer(write_token)))
        assert waiting.found.wait(10)
        deadline = time.monotonic() + 10
        while waiting.pauses < 5:  # the writer tried five times more, and still waits
            assert time.monotonic() < deadline
            assert thread.is_alive() and not checked_in(app, acme.attendee_ids[0])
        assert thread.is_alive() and not checked_in(app, acme.attendee_ids[0])
    thread.join(10)
    assert not thread.is_alive()
    assert answered["response"].status_code == 201
    assert checked_in(app, acme.attendee_ids[0])
    assert free(path)


@sqlite_only
@pytest.mark.app_config(SQLITE_BUSY_TIMEOUT_MS=300)
def test_a_writer_that_waited_the_busy_timeout_for_the_lock_answers_503(app, write_token, orgs):
    """As one that waited that long for SQLite's own lock: not a second busy timeout more."""
    acme = orgs["acme"]
    path = lock_file(app)
    with held(path):
        thread, answered = in_thread(app, lambda c: c.post(check_in_path(acme), headers=bearer(write_token)))
        thread.join(10)  # a bound on a hang, not what is tested
        assert not thread.is_alive()
        response = answered["response"]
        assert response.status_code == 503, response.get_data()
        assert response.headers["Retry-After"] == "5"
        assert response.get_json()["error"] == "unavailable"
        assert not checked_in(app, acme.attendee_ids[0])
        assert not free(path)  # still the test's


@sqlite_only
def test_the_lock_is_let_go_after_every_write_however_it_ended(app, client, write_token, orgs, monkeypatch):
    acme = orgs["acme"]
    path = lock_file(app)
    assert client.post(check_in_path(acme), headers=bearer(write_token)).status_code == 201
    assert free(path)
    refused = client.post(check_in_path(acme), headers=bearer(write_token))
    assert refused.status_code == 409 and refused.json["error"] == "already_checked_in"
    assert free(path)
    bad_key = client.post(check_in_path(acme, 1), headers={**bearer(write_token), "Idempotency-Key": "\x7f"})
    assert bad_key.status_code == 400  # answered from the claim, before the view
    assert free(path)

    def settle_fails(*args, **kwargs):
        raise RuntimeError("the stored answer could not be written")

    monkeypatch.setattr(idempotency_key, "settle", settle_fails)
    with pytest.raises(RuntimeError):
        client.post(check_in_path(acme, 1), headers={**bearer(write_token), "Idempotency-Key": "fails"})
    assert free(path)
    assert not checked_in(app, acme.attendee_ids[1])  # rolled back


@sqlite_only
def test_a_forked_child_opens_a_description_of_its_own(app):
    path = lock_file(app)
    parent = writer_queue._descriptor(path)
    assert parent is not None and writer_queue._descriptor(path) == parent  # kept for the thread's next writes
    locked_read, locked_write = os.pipe()
    done_read, done_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            os.close(locked_read)
            os.close(done_write)
            fcntl.flock(writer_queue._descriptor(path), fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(locked_write, b"x")
            os.read(done_read, 1)  # hold it until the parent has tried
            status = 0
        finally:
            os._exit(status)
    os.close(locked_write)
    os.close(done_read)
    try:
        assert os.read(locked_read, 1) == b"x"
        with pytest.raises(BlockingIOError):  # the child's lock excludes the parent's description
            fcntl.flock(parent, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.write(done_write, b"x")
        os.close(done_write)
        os.close(locked_read)
        assert os.waitpid(pid, 0)[1] == 0


@sqlite_only
def test_each_thread_has_a_description_of_its_own_closed_when_the_thread_ends(app):
    path = lock_file(app)
    locked, release = threading.Event(), threading.Event()
    opened = []

    def other_thread():
        descriptor = writer_queue._descriptor(path)
        opened.append(descriptor)
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        locked.set()
        release.wait(10)
        fcntl.flock(descriptor, fcntl.LOCK_UN)

    thread = threading.Thread(target=other_thread, daemon=True)
    thread.start()
    try:
        assert locked.wait(10)
        with pytest.raises(BlockingIOError):
            fcntl.flock(writer_queue._descriptor(path), fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        release.set()
        thread.join(10)
    if os.path.isdir(PROC_FD):
        gc.collect()
        assert lock_file_descriptors(path) == 1  # this thread's; the other's went with it


@sqlite_only
@pytest.mark.skipif(not os.path.isdir(PROC_FD), reason="counts open files in /proc")
def test_writes_from_short_lived_threads_leave_no_lock_file_open(app, write_token, orgs):
    """A server that starts a thread per request (``flask run``): each thread's description
    is closed with it."""
    acme = orgs["acme"]
    path = lock_file(app)
    for method, status in [("POST", 201), ("DELETE", 204)] * 2:  # check in, undo
        thread, answered = in_thread(app, lambda c, method=method: c.open(check_in_path(acme), method=method,
                                                                         headers=bearer(write_token)))
        thread.join(10)
        assert answered["response"].status_code == status
    gc.collect()
    assert lock_file_descriptors(path) == 0


@sqlite_only
@pytest.mark.skipif(not os.path.isdir(PROC_FD), reason="counts open files in /proc")
def test_a_thread_keeps_the_lock_file_of_one_database_open(app, tmp_path):
    first, second = str(tmp_path / "one.sqlite3-writer.lock"), str(tmp_path / "two.sqlite3-writer.lock")
    assert writer_queue._descriptor(first) is not None
    assert writer_queue._descriptor(second) is not None
    assert lock_file_descriptors(first) == 0 and lock_file_descriptors(second) == 1


@sqlite_only
def test_the_door_reads_before_it_takes_its_turn_and_writes_in_it(app, client, orgs):
    acme = orgs["acme"]
    scanner = issue(app, acme, "check_in", description="Door A scanner")
    with app.app_context():
        code = db.session.get(Attendee, acme.attendee_ids[0]).ticket_code
        engine = db.engine
    path = lock_file(app)
    seen = []

    def statement(conn, cursor, sql, parameters, context, executemany):
        kind = sql.lstrip().split(None, 1)[0].upper()
        if kind == "WITH":
            kind = "SELECT" if "INSERT" not in sql and "UPDATE" not in sql else "WRITE"
        seen.append((kind, "attendees" in sql, free(path)))

    sa.event.listen(engine, "before_cursor_execute", statement)
    try:
        response = client.post(f"/admin/events/{acme.event_ids[0]}/check_ins", headers=bearer(scanner),
                               json={"code": code})
    finally:
        sa.event.remove(engine, "before_cursor_execute", statement)
    assert response.status_code == 201
    first_write = next(n for n, (kind, _, _) in enumerate(seen) if kind in ("INSERT", "UPDATE", "WRITE"))
    lookups = [lock_free for kind, attendees, lock_free in seen[:first_write] if kind == "SELECT" and attendees]
    assert lookups and all(lookups)  # the door's lookup ran with the lock free
    assert not any(lock_free for kind, _, lock_free in seen[first_write:] if kind != "SELECT")  # its writes in its turn


@sqlite_only
def test_the_door_takes_its_timestamp_once_its_turn_came(app, orgs, monkeypatch):
    """A sync's horizon covers the wait for SQLite's lock between a write's timestamp and its
    commit, not a wait for the writer lock before it too (list_queries.sync_bounds)."""
    acme = orgs["acme"]
    scanner = issue(app, acme, "check_in", description="Door A scanner")
    with app.app_context():
        code = db.session.get(Attendee, acme.attendee_ids[0]).ticket_code
    path = lock_file(app)
    waiting = waiting_for_the_lock(monkeypatch)
    with held(path):
        thread, answered = in_thread(app, lambda c: c.post(f"/admin/events/{acme.event_ids[0]}/check_ins",
                                                           headers=bearer(scanner), json={"code": code}))
        assert waiting.found.wait(10)
        turn_given = waiting.since  # any timestamp taken before the wait is earlier
    thread.join(10)
    assert answered["response"].status_code == 201
    with app.app_context():
        assert db.session.get(Attendee, acme.attendee_ids[0]).updated_at >= turn_given
        assert db.session.scalars(sa.select(Scan.received_at)).one() >= turn_given


def test_a_batch_with_an_idempotency_key_replays_the_answer_stored_with_it(app, client, orgs):
    """The batch's answer is built after its commit, except with a key: then it is stored with the write."""
    acme = orgs["acme"]
    scanner = issue(app, acme, "check_in", description="Door A scanner")
    with app.app_context():
        code = db.session.get(Attendee, acme.attendee_ids[0]).ticket_code
    body = {"scans": [{"nonce": "key-1", "code": code, "scanned_at": "2026-06-01T18:00:00Z"},
                      {"nonce": "key-2", "code": "UNKNOWN", "scanned_at": "2026-06-01T18:01:00Z"}]}
    headers = {**bearer(scanner), "Idempotency-Key": "batch-key"}
    path = f"/admin/events/{acme.event_ids[0]}/check_ins/batch"
    first = client.post(path, headers=headers, json=body)
    again = client.post(path, headers=headers, json=body)
    assert first.status_code == again.status_code == 200
    assert [scan["result"] for scan in first.json["data"]] == ["admitted", "unknown_code"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_data() == first.get_data()


def test_without_a_sqlite_file_there_is_no_writer_lock(app):
    memory = sa.create_engine("sqlite://")
    try:
        with memory.connect() as connection:
            assert writer_queue.lock_path(connection) is None
    finally:
        memory.dispose()
    with app.app_context(), db.engine.connect() as connection:
        if TEST_DATABASE_URL is None:
            return
        assert writer_queue.lock_path(connection) is None  # PostgreSQL
        with writer_queue.writer_turn(connection, 1.0):
            writer_queue.take_turn(connection)
            assert writer_queue._WAITING not in connection.info and writer_queue._HELD not in connection.info
