"""The door under concurrency, on real gunicorn (4 sync workers, one database): sixteen
scanners redeeming one code at once, one offline batch sent by two clients at once, and
batches interleaved with online redeems of the same tickets.

On PostgreSQL when USETIX_TEST_DATABASE_URL is set (a schema of this module's own), else
on one SQLite file. The schema is made by the migrations, as in production.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa

from usetix.database.engine import db
from usetix.database.models import Attendee, AuditEvent, Scan

from ..databases import database_kind
from ..servers import SeededServer, at_once, seeded_server

pytestmark = pytest.mark.gunicorn

TIMEOUT = 20  # seconds, for every HTTP request
WORKERS = 4


class Door(SeededServer):
    def scanner(self) -> str:
        return self.token("scanner", "check_in")[1]

    def codes(self, event_index: int) -> list[tuple[int, str]]:
        with self.app.app_context():
            rows = db.session.execute(sa.select(Attendee.id, Attendee.ticket_code)
                                      .where(Attendee.event_id == self.org.event_ids[event_index])
                                      .order_by(Attendee.id)).all()
            db.session.remove()
            return [tuple(row) for row in rows]


@pytest.fixture(scope="module")
def door(tmp_path_factory):
    with seeded_server(tmp_path_factory.mktemp("door"), "door", WORKERS, events=3, attendees_per_event=40,
                       server_class=Door) as served:
        yield served


def post(url: str, token: str, body: dict, http=requests, **headers: str) -> requests.Response:
    return http.post(url, json=body, timeout=TIMEOUT,
                     headers={"Authorization": f"Bearer {token}", "Accept": "application/json", **headers})


def assert_clean_log(door: Door) -> None:
    log = "\n".join(line for line in door.log.read_text().splitlines() if "Usage of token" not in line)
    assert "database is locked" not in log
    assert "Traceback" not in log, f"the server logged an error ({database_kind()}):\n{log[-3000:]}"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_sixteen_scanners_redeem_one_code_exactly_one_is_admitted(door):
    token = door.scanner()
    url = f"{door.base}/admin/events/{door.org.event_ids[0]}/check_ins"
    for attendee_id, code in door.codes(0)[:3]:  # three tickets, one round each
        answers = at_once(16, lambda n, http, code=code: post(url, token, {"code": code}, http))
        statuses = Counter(a.status_code for a in answers)
        assert statuses == {201: 1, 409: 15}, statuses
        assert {a.json()["error"] for a in answers if a.status_code == 409} == {"already_checked_in"}
        winner = next(a for a in answers if a.status_code == 201).json()["data"]
        assert {a.json()["checked_in_at"] for a in answers if a.status_code == 409} == {winner["checked_in_at"]}
        assert door.count(Scan, Scan.attendee_id == attendee_id) == 16
        assert door.count(Scan, Scan.attendee_id == attendee_id, Scan.result == "admitted") == 1
        assert door.count(AuditEvent, AuditEvent.object_id == attendee_id,
                          AuditEvent.action == "attendee.checked_in") == 1
    assert_clean_log(door)


def test_one_batch_sent_by_two_clients_at_once_is_written_once(door):
    token = door.scanner()
    url = f"{door.base}/admin/events/{door.org.event_ids[1]}/check_ins/batch"
    tickets = door.codes(1)[:30]
    start = datetime.now(UTC) - timedelta(hours=1)
    scans = [{"nonce": f"twin-{n}", "code": code, "scanned_at": iso(start + timedelta(seconds=n))}
             for n, (_, code) in enumerate(tickets)]
    answers = at_once(2, lambda n, http: post(url, token, {"scans": scans}, http))
    assert [a.status_code for a in answers] == [200, 200], [a.text[:300] for a in answers]
    for n in range(len(scans)):
        results = [a.json()["data"][n] for a in answers]
        assert {r["result"] for r in results} == {"admitted"}
        # One of the two wrote it, the other replayed it (which one may differ per scan).
        assert sorted(bool(r.get("replayed")) for r in results) == [False, True]
        assert results[0]["checked_in_at"] == results[1]["checked_in_at"] == scans[n]["scanned_at"]
    ids = [attendee_id for attendee_id, _ in tickets]
    assert door.count(Scan, Scan.attendee_id.in_(ids)) == 30
    assert door.count(AuditEvent, AuditEvent.object_id.in_(ids), AuditEvent.action == "attendee.checked_in") == 30
    assert_clean_log(door)


def test_batches_interleaved_with_online_redeems_admit_each_ticket_once(door):
    """Two offline scanners (their batches sent at once) and eight online scanners work the
    same ten tickets: each ticket ends with exactly one admitted scan, at the earliest time
    an offline scanner saw it unless an online redeem got there first."""
    token = door.scanner()
    event = door.org.event_ids[2]
    tickets = door.codes(2)[:10]
    before = datetime.now(UTC) - timedelta(minutes=30)
    batches = [[{"nonce": f"door-{door_n}-{n}", "code": code,
                 "scanned_at": iso(before + timedelta(minutes=n, seconds=door_n))}
                for n, (_, code) in enumerate(tickets)] for door_n in range(2)]

    def work(n: int, http):
        if n < 2:
            return post(f"{door.base}/admin/events/{event}/check_ins/batch", token, {"scans": batches[n]}, http)
        _, code = tickets[n % len(tickets)]
        return post(f"{door.base}/admin/events/{event}/check_ins", token, {"code": code}, http)

    answers = at_once(10, work)
    assert all(a.status_code in (200, 201, 409) for a in answers), [a.text[:200] for a in answers]
    ids = [attendee_id for attendee_id, _ in tickets]
    for attendee_id in ids:
        assert door.count(Scan, Scan.attendee_id == attendee_id, Scan.result == "admitted") == 1, attendee_id
        assert door.count(Scan, Scan.attendee_id == attendee_id, Scan.result == "already_checked_in") \
            == door.count(Scan, Scan.attendee_id == attendee_id) - 1
    with door.app.app_context():
        for attendee_id in ids:
            attendee = db.session.get(Attendee, attendee_id)
            admitted = db.session.scalar(sa.select(Scan).where(Scan.attendee_id == attendee_id,
                                                               Scan.result == "admitted"))
            assert attendee.checked_in_at == admitted.checked_in_at
            # The earliest scan of the ticket is its check-in, whichever came first.
            earliest = db.session.scalar(sa.select(sa.func.min(Scan.scanned_at)).where(Scan.attendee_id == attendee_id))
            assert attendee.checked_in_at == earliest
        db.session.remove()
    # Sent again, both batches are replays and change nothing.
    again = [post(f"{door.base}/admin/events/{event}/check_ins/batch", token, {"scans": b}) for b in batches]
    assert all(r.get("replayed") for a in again for r in a.json()["data"])
    assert door.count(Scan, Scan.attendee_id.in_(ids)) == 20 + 8
    assert_clean_log(door)
