"""The write API under concurrency, on real gunicorn (4 sync workers, one database):
racing check-ins, racing retries with one Idempotency-Key, racing PATCHes with one ETag,
writes while tokens are revoked, and a write (or a token's creation) still arriving when
its token is revoked or expires (or its admin logs out).

On PostgreSQL when USETIX_TEST_DATABASE_URL is set (a schema of this module's own), else
on one SQLite file. The schema is made by the migrations, as in production.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
import requests
import sqlalchemy as sa

from usetix.auth.token_service import revoke_token
from usetix.database.engine import db
from usetix.database.models import ApiToken, Attendee, AuditEvent, IdempotencyKey

from ..databases import database_kind
from ..helpers import NONCE_FIELD, PASSWORD, csrf_token_from, wait_until
from ..servers import HeldRequest, SeededServer, at_once, seeded_server

pytestmark = pytest.mark.gunicorn

TIMEOUT = 20  # seconds, for every HTTP request
WORKERS = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with seeded_server(tmp_path_factory.mktemp("writes"), "writes", WORKERS, events=4,
                       attendees_per_event=40) as served:
        yield served


def call(method: str, url: str, token: str, http=requests, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", **kwargs.pop("headers", {})}
    return http.request(method, url, headers=headers, timeout=TIMEOUT, **kwargs)


def assert_clean_log(server: SeededServer) -> None:
    # Recording a token's use is best-effort (usetix/auth/usage.py): a write it skips under
    # a lock is logged as a warning and is no failure. Every other line must be clean.
    log = "\n".join(line for line in server.log.read_text().splitlines()
                     if "Usage of token" not in line)
    assert "database is locked" not in log
    assert "Traceback" not in log, f"the server logged an error ({database_kind()}):\n{log[-3000:]}"


def test_sixteen_scanners_check_in_one_attendee(server):
    _, token = server.token()
    attendee = server.org.attendee_ids[0]
    url = f"{server.base}/admin/events/{server.org.event_ids[0]}/attendees/{attendee}/check_in"
    for _ in range(3):  # three rounds: check in at once, then undo
        answers = at_once(16, lambda n, http: call("POST", url, token, http))
        statuses = Counter(a.status_code for a in answers)
        assert statuses == {201: 1, 409: 15}, statuses
        times = {a.json().get("checked_in_at") or a.json()["data"]["checked_in_at"] for a in answers}
        assert len(times) == 1  # every 409 names the one winner's time
        assert call("DELETE", url, token).status_code == 204
    assert_clean_log(server)


def test_eight_retries_with_one_key_make_one_attendee(server):
    _, token = server.token()
    url = f"{server.base}/admin/events/{server.org.event_ids[1]}/attendees"
    for round_ in range(3):
        name = f"Retried {round_}"
        body = {"name": name, "email": f"retried{round_}@example.com", "ticket_type": "GA"}
        key = {"Idempotency-Key": f"import-{round_}"}
        answers = at_once(8, lambda n, http, body=body, key=key: call("POST", url, token, http, json=body,
                                                                      headers=key))
        assert all(isinstance(a, requests.Response) for a in answers), answers
        assert server.count(Attendee, Attendee.name == name) == 1
        created = [a for a in answers if a.status_code == 201 and "Idempotent-Replayed" not in a.headers]
        replayed = [a for a in answers if a.status_code == 201 and a.headers.get("Idempotent-Replayed") == "true"]
        busy = [a for a in answers if a.status_code == 409]
        assert len(created) == 1 and len(created) + len(replayed) + len(busy) == 8, Counter(
            a.status_code for a in answers)
        assert all(a.content == created[0].content for a in replayed)
        assert all(a.json()["error"] == "idempotency_key_in_use" and a.headers["Retry-After"] for a in busy)
        # Once the first is done, a retry is always the replay.
        again = call("POST", url, token, json=body, headers={"Idempotency-Key": f"import-{round_}"})
        assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert_clean_log(server)


def test_two_patches_with_one_etag_one_wins(server):
    _, token = server.token()
    url = f"{server.base}/admin/events/{server.org.event_ids[2]}"
    for round_ in range(8):
        tag = call("GET", url, token).headers["ETag"]
        answers = at_once(2, lambda n, http, r=round_, tag=tag: call(
            "PATCH", url, token, http, json={"title": f"Edit {r}.{n}"}, headers={"If-Match": tag}))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 412], statuses
        winner = next(a for a in answers if a.status_code == 200)
        assert call("GET", url, token).json()["data"]["title"] == winner.json()["data"]["title"]
    assert_clean_log(server)


def test_writes_and_revocations_under_load(server):
    """16 threads check attendees in and out, rename them and add new ones with several
    tokens while the tokens are revoked one by one: no 5xx, no "database is locked", and
    every request that starts after a revocation committed is 401."""
    tokens = [server.token(f"load {n}") for n in range(6)]
    revoked_at: dict[int, float] = {}
    event = server.org.event_ids[3]
    attendees = server.org.attendee_ids[120:160]  # the fourth event's
    answers: list[tuple[int, float, int, str]] = []  # (token id, started, status, body)
    failures: list[Exception] = []
    progress: list[None] = []  # one entry per answer, as they come (answers fill at the end)
    stop = threading.Event()

    def work(seed: int) -> None:
        rng = random.Random(seed)
        mine = []
        with requests.Session() as http:
            while not stop.is_set():
                token_id, raw = rng.choice(tokens)
                attendee = rng.choice(attendees)
                base = f"{server.base}/admin/events/{event}/attendees"
                kind = rng.random()
                started = time.monotonic()
                try:
                    if kind < 0.6:
                        method = "POST" if rng.random() < 0.5 else "DELETE"
                        response = call(method, f"{base}/{attendee}/check_in", raw, http)
                    elif kind < 0.85:
                        response = call("PATCH", f"{base}/{attendee}", raw, http, json={"ticket_type": f"T{seed}"})
                    else:
                        response = call("POST", base, raw, http, headers={"Idempotency-Key": f"{seed}-{started}"},
                                        json={"name": f"Walk-in {seed}", "email": "w@example.com", "ticket_type": "GA"})
                except requests.RequestException as exc:
                    failures.append(exc)
                    break
                mine.append((token_id, started, response.status_code, response.text[:300]))
                progress.append(None)
        answers.extend(mine)

    threads = [threading.Thread(target=work, args=(seed,), daemon=True) for seed in range(16)]
    for thread in threads:
        thread.start()
    try:
        for token_id, _ in tokens[:4]:  # two tokens stay live to the end
            writes = len(progress)
            wait_until(lambda writes=writes: len(progress) >= writes + 16, timeout=30,
                       message="writes before the next revocation")
            with server.app.app_context():
                revoke_token(db.session.get(ApiToken, token_id), "load test", None, None)
                db.session.remove()
            revoked_at[token_id] = time.monotonic()  # the revocation has committed
        writes = len(progress)  # work goes on after the last revocation
        wait_until(lambda: len(progress) >= writes + 16, timeout=30, message="writes after the last revocation")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert not failures, failures[:3]
    assert not [a for a in answers if a[2] >= 500], [a for a in answers if a[2] >= 500][:3]
    assert not [a for a in answers if "database is locked" in a[3]]
    assert {a[2] for a in answers} <= {200, 201, 204, 401, 409}, Counter(a[2] for a in answers)
    after = [a for a in answers if a[0] in revoked_at and a[1] > revoked_at[a[0]]]
    assert after and all(a[2] == 401 and '"revoked_token"' in a[3] for a in after), [
        a for a in after if a[2] != 401][:3]
    successes = Counter(a[2] for a in answers if a[2] < 400)
    assert successes[201] and successes[204] and successes[200], successes
    assert_clean_log(server)


# -- a credential that ends while a request is in flight -----------------------------------

def slow_write(server: SeededServer, token: str, name: str) -> HeldRequest:
    """An attendee POST whose body is still arriving: authenticated, waiting for the rest."""
    body = json.dumps({"name": name, "email": "slow@example.com", "ticket_type": "GA"}).encode()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", "Content-Type": "application/json",
               "Idempotency-Key": name.replace(" ", "-")}
    return HeldRequest(server.base, "POST", f"/admin/events/{server.org.event_ids[0]}/attendees", headers, body,
                       body_sent=10)


def nothing_written_by(server: SeededServer, token_id: int, name: str) -> None:
    assert server.count(Attendee, Attendee.name == name) == 0
    with server.app.app_context():
        writes = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                                   .where(AuditEvent.token_id == token_id, AuditEvent.object_type.is_not(None)))
        keys = db.session.scalar(sa.select(sa.func.count()).select_from(IdempotencyKey)
                                 .where(IdempotencyKey.token_id == token_id))
        db.session.remove()
    assert (writes, keys) == (0, 0)


def test_a_write_whose_token_is_revoked_while_its_body_arrives_is_401_and_writes_nothing(server):
    token_id, token = server.token("slow link")
    held = slow_write(server, token, "Revoked meanwhile")
    with server.app.app_context():
        revoke_token(db.session.get(ApiToken, token_id), "admin", None, None)
        db.session.remove()
    assert held.finish() == 401, held.answer
    head, _, body = held.answer.partition(b"\r\n\r\n")
    assert b'WWW-Authenticate: Bearer realm="Usetix", error="invalid_token"' in head
    assert json.loads(body) == {"error": "revoked_token", "message": "This token has been revoked."}
    nothing_written_by(server, token_id, "Revoked meanwhile")
    assert_clean_log(server)


def test_a_write_whose_token_expires_while_its_body_arrives_is_401_and_writes_nothing(server):
    token_id, token = server.token("expiring link")
    expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    with server.app.app_context():
        db.session.execute(sa.update(ApiToken).where(ApiToken.id == token_id).values(expires_at=expires_at))
        db.session.commit()
        db.session.remove()
    held = slow_write(server, token, "Expired meanwhile")
    # The point of the test: the token's expiry passes while the body is still arriving.
    wait_until(lambda: datetime.now(UTC) >= expires_at + timedelta(milliseconds=100), interval=0.1,
               message="the token's expiry")
    assert held.finish() == 401, held.answer
    stated = expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert json.loads(held.answer.partition(b"\r\n\r\n")[2]) == {
        "error": "expired_token", "message": f"This token expired at {stated}."}
    nothing_written_by(server, token_id, "Expired meanwhile")
    assert_clean_log(server)


def test_a_token_create_in_flight_across_a_logout_creates_no_token(server):
    """The admin logs out (another tab) while a Create Token POST on the same cookie is
    still arriving: the logout wins, and no token is made."""
    with requests.Session() as http:
        page = http.get(server.base + "/login", timeout=TIMEOUT)
        logged_in = http.post(server.base + "/login", data={
            "email": "admin@acme.example", "password": PASSWORD, "csrf_token": csrf_token_from(page.text),
        }, allow_redirects=False, timeout=TIMEOUT)
        assert logged_in.status_code == 302
        form = http.get(server.base + "/admin/settings/api_tokens/new", timeout=TIMEOUT)
        body = urlencode({"description": "made after logout", "tier": "write", "expiration": "30",
                          "csrf_token": csrf_token_from(form.text),
                          "nonce": NONCE_FIELD.search(form.text).group(1)}).encode()
        held = HeldRequest(server.base, "POST", "/admin/settings/api_tokens",
                           {"Content-Type": "application/x-www-form-urlencoded",
                            "Cookie": f"usetix_session={http.cookies['usetix_session']}",
                            "User-Agent": http.headers["User-Agent"]},  # the login is bound to it
                           body, body_sent=10)
        events = http.get(server.base + "/admin/events", timeout=TIMEOUT)
        logged_out = http.post(server.base + "/logout", data={"csrf_token": csrf_token_from(events.text)},
                               allow_redirects=False, timeout=TIMEOUT)
        assert logged_out.status_code == 302
    status = held.finish()
    assert status == 302 and b"\r\nLocation: /login" in held.answer, held.answer[:500]
    with server.app.app_context():
        made = db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)
                                 .where(ApiToken.description == "made after logout"))
        db.session.remove()
    assert made == 0
    assert_clean_log(server)
