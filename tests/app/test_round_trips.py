"""Round trips to PostgreSQL per API request (docs/performance.md, "Round trips"): counted
with libpq's trace on every connection of the app's engine, on a warm pool, the way
bench/roundtrips.py counts them for the bench report."""

from __future__ import annotations

import select

import pytest
import sqlalchemy as sa

from usetix.core import token_format
from usetix.database import idempotency
from usetix.database.engine import db
from usetix.database.round_trips import count_round_trips

from ..databases import POSTGRES_URL
from ..helpers import bearer, issue, wait_until

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="counts PostgreSQL's round trips "
                                                           "(USETIX_TEST_DATABASE_URL; CI's second pass)")


def _steady(app, send):
    """The round trips of a ``send()`` after six others: the pool warm, the token's
    last_used_at written, the statements past psycopg's prepare_threshold (5) prepared on
    the server. What every request of the next minute costs."""
    for _ in range(6):
        assert send().status_code in (200, 201, 204, 401, 403)
    with app.app_context():
        engine = db.engine
    return count_round_trips(engine, send)


def test_authenticated_list_is_two_round_trips(app, client, read_token):
    """The token and the page: no transaction around them, no liveness check of its own."""
    count, response = _steady(app, lambda: client.get("/admin/events", headers=bearer(read_token)))
    assert response.status_code == 200 and response.json["data"]
    assert count <= 2


def test_single_object_is_two_round_trips(app, client, orgs, read_token):
    event_id = orgs["acme"].event_ids[0]
    count, response = _steady(app, lambda: client.get(f"/admin/events/{event_id}", headers=bearer(read_token)))
    assert response.status_code == 200
    assert count <= 2


def test_unknown_token_is_one_round_trip(app, client):
    unknown = token_format.generate()  # well-formed, never issued: looked up, not found
    count, response = _steady(app, lambda: client.get("/admin/events", headers=bearer(unknown)))
    assert response.status_code == 401
    assert count <= 1


def test_check_in_and_its_undo_are_two_round_trips_each(app, client, orgs, write_token):
    """The token, then the write: its UPDATE and its audit INSERT (which checks the token
    again) are one statement, in autocommit: no BEGIN, no COMMIT."""
    org = orgs["acme"]
    path = f"/admin/events/{org.event_ids[0]}/attendees/{org.attendee_ids[0]}/check_in"
    for _ in range(6):  # as _steady: past the prepare threshold, last_used_at written
        assert client.post(path, headers=bearer(write_token)).status_code == 201
        assert client.delete(path, headers=bearer(write_token)).status_code == 204
    with app.app_context():
        engine = db.engine
    checked_in, response = count_round_trips(engine, lambda: client.post(path, headers=bearer(write_token)))
    assert response.status_code == 201
    undone, response = count_round_trips(engine, lambda: client.delete(path, headers=bearer(write_token)))
    assert response.status_code == 204
    assert checked_in <= 2 and undone <= 2


def test_a_door_redeem_is_three_round_trips(app, client, orgs):
    """The token, the door's event and the code, then the admission with its scan, audit
    record and webhook messages as one statement, in autocommit: no BEGIN, no COMMIT."""
    from usetix.database.models import Attendee

    org = orgs["acme"]
    scanner = issue(app, org, "check_in")
    with app.app_context():
        tickets = db.session.execute(sa.select(Attendee.id, Attendee.ticket_code)
                                     .where(Attendee.event_id == org.event_ids[0])).all()
    base = f"/admin/events/{org.event_ids[0]}"
    attendee_id, code = tickets[0]
    for _ in range(6):  # as _steady: past the prepare threshold, last_used_at written
        assert client.post(f"{base}/check_ins", json={"code": code}, headers=bearer(scanner)).status_code == 201
        assert client.delete(f"{base}/attendees/{attendee_id}/check_in", headers=bearer(scanner)).status_code == 204
    with app.app_context():
        engine = db.engine
    count, response = count_round_trips(
        engine, lambda: client.post(f"{base}/check_ins", json={"code": code}, headers=bearer(scanner)))
    assert response.status_code == 201 and response.json["data"]["result"] == "admitted"
    assert count <= 3


def _check_in_with_keys(app, client, orgs, write_token, prefix="scan"):
    """A check-in with a new Idempotency-Key each time, after six of them (as ``_steady``)."""
    org = orgs["acme"]
    path = f"/admin/events/{org.event_ids[0]}/attendees/{org.attendee_ids[0]}/check_in"
    keys = iter(range(100))

    def check_in():
        return client.post(path, headers={**bearer(write_token), "Idempotency-Key": f"{prefix}-{next(keys)}"})

    for _ in range(6):
        assert check_in().status_code == 201
        assert client.delete(path, headers=bearer(write_token)).status_code == 204
    with app.app_context():
        engine = db.engine
    count, response = count_round_trips(engine, check_in)
    assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers
    assert client.delete(path, headers=bearer(write_token)).status_code == 204
    return count


def test_a_check_in_with_an_idempotency_key_is_six_round_trips(app, client, orgs, write_token, monkeypatch):
    """The token and the key's claim in autocommit (the claim commits on its own), then
    BEGIN, the check-in, its stored answer, COMMIT. The claim's occasional sweep of expired
    keys is held off: it is drawn at random (pytest-randomly's seed decides the draw)."""
    monkeypatch.setattr(idempotency, "SWEEP_PROBABILITY", 0.0)
    assert _check_in_with_keys(app, client, orgs, write_token) <= 6


def test_a_claim_that_sweeps_expired_keys_adds_one_round_trip(app, client, orgs, write_token, monkeypatch):
    monkeypatch.setattr(idempotency, "SWEEP_PROBABILITY", 0.0)
    without = _check_in_with_keys(app, client, orgs, write_token, prefix="quiet")
    monkeypatch.setattr(idempotency, "SWEEP_PROBABILITY", 1.0)
    assert _check_in_with_keys(app, client, orgs, write_token, prefix="sweeping") == without + 1


def _terminate_pooled_connection(app) -> None:
    """PostgreSQL ends the one connection idle in the app's pool, as a restart would."""
    with app.app_context():
        engine = db.engine
    with engine.connect() as connection:  # the pool's one idle connection, checked out and back
        pooled = connection.connection.dbapi_connection
    admin = sa.create_engine(POSTGRES_URL, poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"),
                                {"pid": pooled.info.backend_pid}).scalar()
    finally:
        admin.dispose()
    wait_until(lambda: select.select([pooled.fileno()], [], [], 0)[0], timeout=10,
               message="the server's goodbye on the pooled connection")


def test_the_api_read_on_a_connection_the_server_ended_runs_on_a_new_one(app, client, read_token):
    """The token's lookup is the connection's liveness check: it finds the pooled
    connection lost and runs again on a new one, so the request never sees it."""
    assert client.get("/admin/events", headers=bearer(read_token)).status_code == 200
    _terminate_pooled_connection(app)
    response = client.get("/admin/events", headers=bearer(read_token))
    assert response.status_code == 200 and response.json["data"]


def test_other_checkouts_ping_as_pool_pre_ping(app, orgs):
    """The ORM (the dashboard, the session store) gets a pinged connection: one the server
    ended is replaced before its first statement."""
    with app.app_context():
        db.session.execute(sa.text("SELECT 1"))
        db.session.remove()
    _terminate_pooled_connection(app)
    with app.app_context():
        assert db.session.execute(sa.text("SELECT 1")).scalar() == 1
        db.session.remove()


def test_a_restricted_tokens_list_is_two_round_trips_too(app, client, orgs):
    """The restriction comes with the token's row, and limits the page in its one statement."""
    restricted = issue(app, orgs["acme"], "read", event_ids=[orgs["acme"].event_ids[1]])
    count, response = _steady(app, lambda: client.get("/admin/events", headers=bearer(restricted)))
    assert response.status_code == 200 and [e["id"] for e in response.json["data"]] == [orgs["acme"].event_ids[1]]
    assert count <= 2


def test_a_permission_refusal_is_one_round_trip(app, client, orgs):
    door = issue(app, orgs["acme"], "check_in")
    path = f"/admin/events/{orgs['acme'].event_ids[0]}/attendees"
    count, response = _steady(app, lambda: client.get(path, headers=bearer(door)))
    assert response.status_code == 403
    assert count <= 1
