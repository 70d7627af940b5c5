"""The door (issue 23): ticket codes, redeem with every reason, the offline batch and its
nonces, reissue, the live counts and the history of scans. In-process, on the suite's
database (SQLite, or PostgreSQL with USETIX_TEST_DATABASE_URL); sixteen scanners at once
and batches from two clients at once are on real gunicorn (tests/live/test_door_gunicorn.py)."""

from __future__ import annotations

import logging
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from usetix.core import ticket_codes
from usetix.database.engine import db
from usetix.database.models import ApiToken, Attendee, AuditEvent, Event, ReissuedTicketCode, Scan, utcnow

from ..helpers import bearer, inline_problems, issue, links, make_org
from ..queries import recorded_queries

CROCKFORD = re.compile(r"^[0-9A-HJKMNP-TV-Z]{24}$")


@pytest.fixture
def acme(orgs):
    return orgs["acme"]


@pytest.fixture
def scanner(app, acme):
    """The door's token: the check-in preset."""
    return issue(app, acme, "check_in", description="Door A scanner")


def code_of(app, attendee_id: int) -> str:
    with app.app_context():
        return db.session.get(Attendee, attendee_id).ticket_code


def scans_of(app, **where) -> list[Scan]:
    with app.app_context():
        rows = db.session.scalars(sa.select(Scan).filter_by(**where).order_by(Scan.id)).all()
        db.session.expunge_all()
        return rows


def redeem(client, token, event_id, code, **extra):
    headers = {**bearer(token), **extra.pop("headers", {})}
    return client.post(f"/admin/events/{event_id}/check_ins", headers=headers, json={"code": code, **extra})


def batch(client, token, event_id, scans, **headers):
    return client.post(f"/admin/events/{event_id}/check_ins/batch", headers={**bearer(token), **headers},
                       json={"scans": scans})


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(minutes: float) -> datetime:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).replace(microsecond=0)


# -- ticket codes --------------------------------------------------------------------------

def test_codes_are_crockford_base32_of_120_random_bits():
    codes = {ticket_codes.new_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(CROCKFORD.match(code) for code in codes)
    assert ticket_codes.BITS >= 100
    # Every character of the alphabet turns up: the bits are spread over all of it.
    assert set("".join(codes)) == set(ticket_codes.ALPHABET)


def test_a_code_is_read_as_crockford_reads_it():
    assert ticket_codes.normalized("abcd-efgh ijkl-mnop") == "ABCDEFGH1JK1MN0P"
    assert ticket_codes.tail("0123456789ABCDEFGHJKMNPQ") == "MNPQ"


def test_every_attendee_gets_a_code_unique_in_its_account(app, client, orgs, acme):
    token = issue(app, acme, "write")
    created = client.post(f"/admin/events/{acme.event_ids[0]}/attendees", headers=bearer(token),
                          json={"name": "Ada", "email": "ada@example.com", "ticket_type": "VIP"})
    assert created.status_code == 201
    assert CROCKFORD.match(created.json["data"]["ticket_code"])
    with app.app_context():
        codes = db.session.scalars(sa.select(Attendee.ticket_code)).all()
    assert len(codes) == len(set(codes)) == 13 and all(CROCKFORD.match(code) for code in codes)
    with app.app_context():
        first = db.session.get(Attendee, acme.attendee_ids[0])
        twin = Attendee(account_id=acme.account_id, event_id=acme.event_ids[0], name="Twin", email="t@example.com",
                        ticket_type="General", ticket_code=first.ticket_code)
        db.session.add(twin)
        with pytest.raises(sa.exc.IntegrityError):
            db.session.commit()
        db.session.rollback()


def test_the_code_is_in_the_attendee_only_for_a_token_that_reads_attendees(app, client, acme, scanner):
    reader = issue(app, acme, "read")
    path = f"/admin/events/{acme.event_ids[0]}/attendees/{acme.attendee_ids[0]}"
    code = code_of(app, acme.attendee_ids[0])
    assert client.get(path, headers=bearer(reader)).json["data"]["ticket_code"] == code
    listed = client.get(f"/admin/events/{acme.event_ids[0]}/attendees", headers=bearer(reader)).json["data"]
    assert all(CROCKFORD.match(row["ticket_code"]) for row in listed)
    admitted = redeem(client, scanner, acme.event_ids[0], code)
    assert admitted.status_code == 201
    attendee = admitted.json["data"]["attendee"]
    assert "ticket_code" not in attendee and "email" not in attendee
    assert attendee["name"] == "Guest 0"
    writer = issue(app, acme, "write")
    other = code_of(app, acme.attendee_ids[1])
    assert redeem(client, writer, acme.event_ids[0], other).json["data"]["attendee"]["ticket_code"] == other


def test_a_code_is_never_logged(app, client, acme, scanner, caplog):
    code = code_of(app, acme.attendee_ids[0])
    with caplog.at_level(logging.DEBUG):
        redeem(client, scanner, acme.event_ids[0], code)
        redeem(client, scanner, acme.event_ids[0], code)
        batch(client, scanner, acme.event_ids[0], [{"nonce": "n-1", "code": code, "scanned_at": iso(ago(1))}])
    assert caplog.records  # the request log wrote its lines
    assert code not in caplog.text and code.lower() not in caplog.text


# -- redeem --------------------------------------------------------------------------------

def test_redeem_admits_once_then_409_already_checked_in_with_the_first_time(app, client, acme, scanner):
    event, attendee = acme.event_ids[0], acme.attendee_ids[0]
    code = code_of(app, attendee)
    first = redeem(client, scanner, event, code.lower())  # a scanner may send it in lower case
    assert first.status_code == 201, first.json
    data = first.json["data"]
    assert data["result"] == "admitted" and data["attendee"]["id"] == attendee and data["attendee"]["checked_in"]
    again = redeem(client, scanner, event, code)
    assert again.status_code == 409
    assert again.json["error"] == "already_checked_in"
    assert again.json["checked_in_at"] == data["checked_in_at"]
    assert again.json["attendee"]["id"] == attendee
    history = scans_of(app, event_id=event)
    assert [(s.result, s.attendee_id, s.source) for s in history] == [
        ("admitted", attendee, "online"), ("already_checked_in", attendee, "online")]
    assert all(s.code_tail == code[-4:] for s in history)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.action == "attendee.checked_in")) == 1


def test_redeem_with_a_scan_time_checks_in_at_that_time(app, client, acme, scanner):
    scanned = ago(3)
    answer = redeem(client, scanner, acme.event_ids[0], code_of(app, acme.attendee_ids[0]), scanned_at=iso(scanned))
    assert answer.status_code == 201 and answer.json["data"]["checked_in_at"] == iso(scanned)
    assert scans_of(app)[0].scanned_at == scanned


def test_wrong_event_names_the_tickets_event(app, client, acme, scanner):
    code = code_of(app, acme.attendee_ids[2])  # of the second event
    answer = redeem(client, scanner, acme.event_ids[0], code)
    assert answer.status_code == 409 and answer.json["error"] == "wrong_event"
    assert answer.json["event"] == {"id": acme.event_ids[1], "title": "Acme Events event 1"}
    assert answer.json["attendee"]["id"] == acme.attendee_ids[2]
    assert scans_of(app)[0].result == "wrong_event"


def test_event_cancelled(app, client, acme, scanner):
    with app.app_context():
        db.session.get(Event, acme.event_ids[0]).status = "cancelled"
        db.session.commit()
    answer = redeem(client, scanner, acme.event_ids[0], code_of(app, acme.attendee_ids[0]))
    assert answer.status_code == 409 and answer.json["error"] == "event_cancelled"
    assert answer.json["attendee"]["id"] == acme.attendee_ids[0]
    with app.app_context():
        assert db.session.get(Attendee, acme.attendee_ids[0]).checked_in_at is None


def test_a_reissued_ticket_is_refused_and_the_new_one_admitted(app, client, acme, scanner):
    writer = issue(app, acme, "write")
    path = f"/admin/events/{acme.event_ids[0]}/attendees/{acme.attendee_ids[0]}"
    old = code_of(app, acme.attendee_ids[0])
    reissued = client.post(path + "/reissue_ticket", headers=bearer(writer))
    assert reissued.status_code == 200, reissued.json
    new = reissued.json["data"]["ticket_code"]
    assert CROCKFORD.match(new) and new != old and code_of(app, acme.attendee_ids[0]) == new
    refused = redeem(client, scanner, acme.event_ids[0], old)
    assert refused.status_code == 409 and refused.json["error"] == "ticket_reissued"
    assert refused.json["attendee"]["id"] == acme.attendee_ids[0]
    assert redeem(client, scanner, acme.event_ids[0], new).status_code == 201
    with app.app_context():
        assert db.session.scalar(sa.select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(1)) \
            == "attendee.checked_in"
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.action == "attendee.ticket_reissued")) == 1


def test_reissue_needs_attendees_write_and_another_accounts_attendee_is_404(app, client, orgs, acme, scanner):
    path = f"/admin/events/{acme.event_ids[0]}/attendees/{acme.attendee_ids[0]}/reissue_ticket"
    refused = client.post(path, headers=bearer(scanner))
    assert refused.status_code == 403 and refused.json["required"] == "attendees:write"
    globex_writer = issue(app, orgs["globex"], "write")
    assert client.post(path, headers=bearer(globex_writer)).status_code == 404


def test_unknown_code_looks_the_same_for_nowhere_another_account_and_outside_the_restriction(app, client, orgs,
                                                                                           acme):
    restricted = issue(app, acme, "check_in", event_ids=[acme.event_ids[0]])
    globex = orgs["globex"]
    answers = [
        redeem(client, restricted, acme.event_ids[0], ticket_codes.new_code()),
        redeem(client, restricted, acme.event_ids[0], code_of(app, globex.attendee_ids[0])),
        redeem(client, restricted, acme.event_ids[0], code_of(app, acme.attendee_ids[2])),  # event 1: outside
    ]
    assert {a.status_code for a in answers} == {404}
    assert len({a.data for a in answers}) == 1
    assert answers[0].json == {"error": "unknown_code", "message": "No ticket has this code."}
    # An unrestricted scanner of the account is sent to the other door instead.
    everywhere = issue(app, acme, "check_in")
    assert redeem(client, everywhere, acme.event_ids[0], code_of(app, acme.attendee_ids[2])).json["error"] \
        == "wrong_event"
    assert [s.result for s in scans_of(app)] == ["unknown_code"] * 3 + ["wrong_event"]


def test_an_event_the_token_may_not_see_is_the_404_of_a_missing_one(app, client, orgs, acme):
    restricted = issue(app, acme, "check_in", event_ids=[acme.event_ids[0]])
    code = code_of(app, acme.attendee_ids[2])
    outside = redeem(client, restricted, acme.event_ids[1], code)
    foreign = redeem(client, restricted, orgs["globex"].event_ids[0], code)
    missing = redeem(client, restricted, 10**6, code)
    assert outside.status_code == foreign.status_code == missing.status_code == 404
    assert outside.data == foreign.data == missing.data
    assert outside.json["error"] == "not_found"
    assert scans_of(app) == []


@pytest.mark.parametrize("body, field", [
    ({}, "code"),
    ({"code": 12345}, "code"),
    ({"code": ""}, "code"),
    ({"code": "A" * 65}, "code"),
    ({"code": "ABC", "scanned_at": "2026-01-01T10:00:00"}, "scanned_at"),  # no offset
    ({"code": "ABC", "scanned_at": "tomorrow"}, "scanned_at"),
    ({"code": "ABC", "extra": 1}, "extra"),
])
def test_redeem_refuses_a_body_that_breaks_the_schema(app, client, acme, scanner, body, field):
    answer = client.post(f"/admin/events/{acme.event_ids[0]}/check_ins", headers=bearer(scanner), json=body)
    assert answer.status_code == 422 and answer.json["error"] == "invalid_body"
    assert field in [error["field"] for error in answer.json["errors"]]
    assert scans_of(app) == []


def test_a_scan_time_beyond_the_clock_skew_is_refused_and_within_it_accepted(app, client, acme, scanner):
    code = code_of(app, acme.attendee_ids[0])
    late = datetime.now(UTC) + timedelta(minutes=10)
    refused = redeem(client, scanner, acme.event_ids[0], code, scanned_at=iso(late))
    assert refused.status_code == 422 and refused.json["errors"][0]["code"] == "in_the_future"
    within = datetime.now(UTC) + timedelta(minutes=2)
    assert redeem(client, scanner, acme.event_ids[0], code, scanned_at=iso(within)).status_code == 201


def test_redeem_needs_check_in_write(app, client, acme):
    reader = issue(app, acme, "read")
    answer = redeem(client, reader, acme.event_ids[0], code_of(app, acme.attendee_ids[0]))
    assert answer.status_code == 401  # a Read token's POST: the tier refuses it first
    custom = issue(app, acme, "write", permissions=None)
    assert redeem(client, custom, acme.event_ids[0], code_of(app, acme.attendee_ids[0])).status_code == 201


def test_redeem_with_an_idempotency_key_replays_and_the_key_is_a_nonce(app, client, acme, scanner):
    event = acme.event_ids[0]
    code = code_of(app, acme.attendee_ids[0])
    headers = {"Idempotency-Key": "scan-0001"}
    first = redeem(client, scanner, event, code, headers=headers)
    again = redeem(client, scanner, event, code, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true" and again.data == first.data
    assert len(scans_of(app)) == 1
    # The same key sent in a batch is the same scan: its first result again, nothing written.
    replayed = batch(client, scanner, event, [{"nonce": "scan-0001", "code": code, "scanned_at": iso(ago(1))}])
    assert replayed.status_code == 200
    assert replayed.json["data"][0]["result"] == "admitted" and replayed.json["data"][0]["replayed"] is True
    assert len(scans_of(app)) == 1
    # A refused redeem's key: the retry gets the same refusal, marked replayed.
    other = code_of(app, acme.attendee_ids[2])
    refused = redeem(client, scanner, event, other, headers={"Idempotency-Key": "scan-0002"})
    retried = redeem(client, scanner, event, other, headers={"Idempotency-Key": "scan-0002"})
    assert refused.status_code == retried.status_code == 409
    assert refused.json["error"] == retried.json["error"] == "wrong_event"
    assert retried.json["replayed"] is True and "replayed" not in refused.json
    assert len(scans_of(app)) == 2


# -- the offline batch -----------------------------------------------------------------------

def test_a_batch_answers_each_scan_in_order_and_one_bad_scan_fails_nothing(app, client, orgs, acme, scanner):
    event = acme.event_ids[0]
    codes = [code_of(app, attendee) for attendee in acme.attendee_ids]
    scans = [
        {"nonce": "b-1", "code": codes[0], "scanned_at": iso(ago(10))},
        {"nonce": "b-2", "code": codes[2], "scanned_at": iso(ago(9))},  # another event's
        {"nonce": "b-3", "code": "NOPE", "scanned_at": iso(ago(8))},
        {"nonce": "b-4", "code": 42, "scanned_at": iso(ago(8))},  # breaks the schema
        -(2**63) - 1,  # not even an object, and past 64 bits
        {"nonce": "b-6", "code": codes[1], "scanned_at": iso(ago(7))},
        {"nonce": "b-7", "code": codes[0], "scanned_at": iso(ago(6))},  # the first's ticket again
    ]
    answer = batch(client, scanner, event, scans)
    assert answer.status_code == 200, answer.json
    results = answer.json["data"]
    assert [r["result"] for r in results] == ["admitted", "wrong_event", "unknown_code", "invalid", "invalid",
                                              "admitted", "already_checked_in"]
    assert [r["nonce"] for r in results] == ["b-1", "b-2", "b-3", "b-4", None, "b-6", "b-7"]
    assert results[0]["checked_in_at"] == scans[0]["scanned_at"]
    assert results[6]["checked_in_at"] == scans[0]["scanned_at"]
    assert results[1]["event"]["id"] == acme.event_ids[1]
    assert results[3]["errors"][0]["field"] == "code"
    assert results[2]["attendee"] is None
    assert len(scans_of(app)) == 5  # the invalid ones are answered, not recorded


def test_a_batch_sent_twice_writes_once_and_replays(app, client, acme, scanner):
    event = acme.event_ids[0]
    code = code_of(app, acme.attendee_ids[0])
    scans = [{"nonce": "twice-1", "code": code, "scanned_at": iso(ago(5))},
             {"nonce": "twice-2", "code": "UNKNOWN", "scanned_at": iso(ago(4))}]
    first = batch(client, scanner, event, scans)
    second = batch(client, scanner, event, scans)
    assert [r["result"] for r in first.json["data"]] == [r["result"] for r in second.json["data"]] \
        == ["admitted", "unknown_code"]
    assert all(r.get("replayed") is None for r in first.json["data"])
    assert all(r["replayed"] is True for r in second.json["data"])
    assert second.json["data"][0]["checked_in_at"] == first.json["data"][0]["checked_in_at"]
    assert len(scans_of(app)) == 2
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.action == "attendee.checked_in")) == 1


def test_a_nonce_with_another_code_is_nonce_reused(app, client, acme, scanner):
    event = acme.event_ids[0]
    first = batch(client, scanner, event, [{"nonce": "n", "code": code_of(app, acme.attendee_ids[0]),
                                            "scanned_at": iso(ago(5))}])
    assert first.json["data"][0]["result"] == "admitted"
    reused = batch(client, scanner, event, [{"nonce": "n", "code": code_of(app, acme.attendee_ids[1]),
                                             "scanned_at": iso(ago(4))}])
    assert reused.json["data"][0]["result"] == "nonce_reused"
    inside = batch(client, scanner, event, [
        {"nonce": "m", "code": code_of(app, acme.attendee_ids[1]), "scanned_at": iso(ago(3))},
        {"nonce": "m", "code": code_of(app, acme.attendee_ids[0]), "scanned_at": iso(ago(3))},
        {"nonce": "m", "code": code_of(app, acme.attendee_ids[1]), "scanned_at": iso(ago(3))}])
    assert [(r["result"], r.get("replayed")) for r in inside.json["data"]] == [
        ("admitted", None), ("nonce_reused", None), ("admitted", True)]
    assert redeem(client, scanner, event, code_of(app, acme.attendee_ids[1]),
                  headers={"Idempotency-Key": "n"}).json["error"] == "nonce_reused"
    assert len(scans_of(app)) == 2


def test_the_earliest_scan_is_the_check_in_whatever_arrives_first(app, client, acme, scanner):
    event, attendee = acme.event_ids[0], acme.attendee_ids[0]
    code = code_of(app, attendee)
    later, earlier = ago(5), ago(20)
    first = batch(client, scanner, event, [{"nonce": "door-b-1", "code": code, "scanned_at": iso(later)}])
    assert first.json["data"][0]["result"] == "admitted"
    second = batch(client, scanner, event, [{"nonce": "door-a-1", "code": code, "scanned_at": iso(earlier)}])
    assert second.json["data"][0]["result"] == "admitted"
    assert second.json["data"][0]["checked_in_at"] == iso(earlier)
    with app.app_context():
        assert db.session.get(Attendee, attendee).checked_in_at == earlier
    history = {s.nonce: s for s in scans_of(app)}
    assert history["door-a-1"].result == "admitted"
    assert history["door-b-1"].result == "already_checked_in"
    assert history["door-b-1"].checked_in_at == earlier
    assert history["door-b-1"].updated_at > history["door-b-1"].received_at
    # A later scan still is already_checked_in, with the earliest time.
    third = batch(client, scanner, event, [{"nonce": "door-c-1", "code": code, "scanned_at": iso(ago(1))}])
    assert third.json["data"][0]["result"] == "already_checked_in"
    assert third.json["data"][0]["checked_in_at"] == iso(earlier)


def test_an_offline_scan_earlier_than_an_online_redeem_takes_its_check_in_over(app, client, acme, scanner):
    """The online check-in's time and the batch's, as each statement stores them, compare as
    times (on SQLite, text: a batch's timestamps once went in another format, which sorted
    after every online one and never took a check-in over)."""
    event, attendee = acme.event_ids[0], acme.attendee_ids[0]
    code = code_of(app, attendee)
    assert redeem(client, scanner, event, code).status_code == 201
    earlier = ago(30)
    answer = batch(client, scanner, event, [{"nonce": "late-1", "code": code, "scanned_at": iso(earlier)}])
    assert answer.json["data"][0]["result"] == "admitted"
    with app.app_context():
        assert db.session.get(Attendee, attendee).checked_in_at == earlier
    assert [s.result for s in scans_of(app, attendee_id=attendee)] == ["already_checked_in", "admitted"]


def test_a_batch_interleaved_with_online_redeems(app, client, acme, scanner):
    event = acme.event_ids[0]
    online, offline = code_of(app, acme.attendee_ids[0]), code_of(app, acme.attendee_ids[1])
    assert redeem(client, scanner, event, online).status_code == 201
    answer = batch(client, scanner, event, [
        {"nonce": "i-1", "code": online, "scanned_at": iso(datetime.now(UTC) + timedelta(minutes=1))},
        {"nonce": "i-2", "code": offline, "scanned_at": iso(ago(2))}])
    assert [r["result"] for r in answer.json["data"]] == ["already_checked_in", "admitted"]
    after = redeem(client, scanner, event, offline)
    assert (after.status_code == 409 and after.json["checked_in_at"] == iso(ago(2))) or \
        after.json["checked_in_at"] == answer.json["data"][1]["checked_in_at"]
    # The online check-in was earlier than the offline scan of it: it stays the check-in.
    assert [s.result for s in scans_of(app, attendee_id=acme.attendee_ids[0])] == ["admitted", "already_checked_in"]


@pytest.mark.parametrize("count, status", [(0, 422), (501, 422)])
def test_a_batch_takes_1_to_500_scans(app, client, acme, scanner, count, status):
    scans = [{"nonce": f"x-{n}", "code": "ABC", "scanned_at": iso(ago(1))} for n in range(count)]
    answer = batch(client, scanner, acme.event_ids[0], scans)
    assert answer.status_code == status and answer.json["error"] == "invalid_body"
    assert answer.json["errors"][0]["field"] == "scans"
    assert scans_of(app) == []


def test_a_batch_of_500_is_taken(app, client, acme, scanner):
    scans = [{"nonce": f"x-{n}", "code": f"CODE{n}", "scanned_at": iso(ago(1))} for n in range(500)]
    answer = batch(client, scanner, acme.event_ids[0], scans)
    assert answer.status_code == 200 and len(answer.json["data"]) == 500
    assert {r["result"] for r in answer.json["data"]} == {"unknown_code"}


def test_a_batch_is_the_same_statements_whatever_its_size(app, client, acme, scanner):
    with app.app_context():
        event = acme.event_ids[0]
        for n in range(100):
            db.session.add(Attendee(account_id=acme.account_id, event_id=event, name=f"Bulk {n}",
                                    email=f"b{n}@example.com", ticket_type="General"))
        db.session.commit()
        tickets = db.session.execute(sa.select(Attendee.id, Attendee.ticket_code).where(Attendee.event_id == event)
                                     .order_by(Attendee.id)).all()
    counted = []
    # 10 tickets, then 100; then the same 100 scanned earlier by another door, so that every
    # scan takes the check-in over (what bench/batch.lua sends).
    moments = {"ten": ago(10), "first": ago(20), "earlier": ago(40)}
    for name, size in (("ten", 10), ("first", 100), ("earlier", 100)):
        scans = [{"nonce": f"{name}-{n}", "code": code, "scanned_at": iso(moments[name])}
                 for n, (_, code) in enumerate(tickets[:size])]
        with recorded_queries(app) as queries:
            answer = batch(client, scanner, event, scans)
        assert [r["result"] for r in answer.json["data"]] == ["admitted"] * size
        counted.append(Counter(statement_kind(q) for q in queries))
    # The token's lookup, the nonces seen before, the door and every code: three SELECTs;
    # one INSERT of the scans; the admissions as one UPDATE, with one INSERT of their audit
    # records and one of their webhook messages; one UPDATE of the history for the
    # check-ins an earlier scan took over. The same for 10 scans and 100, on either database.
    assert counted[0] == counted[1] == counted[2] == {
        "select": 3, "insert scans": 1, "update attendees": 1, "insert audit": 1, "insert webhook_messages": 1,
        "update scans": 1}
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.action == "attendee.checked_in")) == 210
        taken_over = db.session.execute(sa.select(Scan.result, Scan.checked_in_at)
                                        .where(Scan.nonce.like("first-%"))).all()
        checked_in = db.session.scalars(sa.select(Attendee.checked_in_at)
                                        .where(Attendee.id.in_([t.id for t in tickets[:100]]))).all()
    assert set(taken_over) == {("already_checked_in", moments["earlier"])}
    assert len(taken_over) == 100 and set(checked_in) == {moments["earlier"]}


def test_a_redeem_is_one_lookup_one_insert_and_the_audited_check_in(app, client, acme, scanner):
    code = code_of(app, acme.attendee_ids[0])
    redeem(client, scanner, acme.event_ids[0], "WARM")  # the token's last use written, the pool warm
    with recorded_queries(app) as queries:
        assert redeem(client, scanner, acme.event_ids[0], code).status_code == 201
    kinds = Counter(statement_kind(q) for q in queries)
    # The token's lookup; the door's event and the code, in one SELECT; the scan; the
    # conditional UPDATE with its audit record and its webhook messages (on PostgreSQL
    # with the scan too, one statement).
    assert kinds["select"] == 2
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        assert kinds["audited update"] == 1 and sum(kinds.values()) == 3
        assert "INSERT INTO scans" in next(q for q in queries if statement_kind(q) == "audited update")
        [scan] = scans_of(app, attendee_id=acme.attendee_ids[0])
        assert (scan.result, scan.source, scan.code_tail) == ("admitted", "online", code[-4:])
    else:
        assert kinds["insert scans"] == 1
        assert kinds["update attendees"] == kinds["insert audit"] == kinds["insert webhook_messages"] == 1
        assert sum(kinds.values()) == 6


def test_a_redeems_scan_insert_is_compiled_once(app, client, acme, scanner, caplog):
    """Without a nonce the scan's INSERT has no ON CONFLICT, which SQLAlchemy would compile
    anew for every redeem (it caches no such statement): SQLAlchemy's log says "cached"."""
    for n in range(2):
        redeem(client, scanner, acme.event_ids[0], f"NOPE{n}")
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine.Engine"):
        assert redeem(client, scanner, acme.event_ids[0], "NOPE2").status_code == 404
    lines = [record.getMessage() for record in caplog.records if record.name.startswith("sqlalchemy.engine")]
    inserted = [n for n, line in enumerate(lines) if line.startswith("INSERT INTO scans")]
    assert len(inserted) == 1
    assert "cached since" in lines[inserted[0] + 1], lines[inserted[0]:inserted[0] + 2]


def statement_kind(sql: str) -> str:
    words = sql.split()
    if words[0] == "WITH":  # the audited UPDATE of one statement (PostgreSQL), or an UPDATE with its CTE
        return "audited update" if "INSERT INTO audit_events" in sql else "update attendees"
    if words[0] == "SELECT":
        return "select"
    return f"{words[0].lower()} {words[2] if words[0] != 'UPDATE' else words[1]}".replace("audit_events", "audit")


# -- what the door and the office see -------------------------------------------------------

def test_check_in_status_counts_by_ticket_type_with_an_etag(app, client, acme, scanner):
    event = acme.event_ids[0]
    with app.app_context():
        db.session.add(Attendee(account_id=acme.account_id, event_id=event, name="V", email="v@example.com",
                                ticket_type="VIP"))
        db.session.commit()
    path = f"/admin/events/{event}/check_in_status"
    first = client.get(path, headers=bearer(scanner))
    assert first.status_code == 200
    assert first.json["data"] == {"checked_in": 0, "total": 3, "by_ticket_type": {
        "General": {"checked_in": 0, "total": 2}, "VIP": {"checked_in": 0, "total": 1}}}
    tag = first.headers["ETag"]
    unchanged = client.get(path, headers={**bearer(scanner), "If-None-Match": tag})
    assert unchanged.status_code == 304 and unchanged.headers["ETag"] == tag
    redeem(client, scanner, event, code_of(app, acme.attendee_ids[0]))
    changed = client.get(path, headers={**bearer(scanner), "If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
    assert changed.json["data"]["checked_in"] == 1
    assert changed.json["data"]["by_ticket_type"]["General"] == {"checked_in": 1, "total": 2}
    # A refused scan changes no count: still 304.
    redeem(client, scanner, event, "NOPE")
    assert client.get(path, headers={**bearer(scanner), "If-None-Match": changed.headers["ETag"]}).status_code \
        == 304


def test_check_in_status_of_another_accounts_event_is_404(app, client, orgs, scanner):
    assert client.get(f"/admin/events/{orgs['globex'].event_ids[0]}/check_in_status",
                      headers=bearer(scanner)).status_code == 404


def test_the_history_lists_every_scan_newest_first_with_the_token_and_4_characters(app, client, acme, scanner):
    event = acme.event_ids[0]
    code = code_of(app, acme.attendee_ids[0])
    redeem(client, scanner, event, code)
    redeem(client, scanner, event, code)
    redeem(client, scanner, event, "ZZZZ-NOPE-0000")
    batch(client, scanner, event, [{"nonce": "h-1", "code": code_of(app, acme.attendee_ids[1]),
                                    "scanned_at": iso(ago(3))}])
    office = issue(app, acme, "read")
    answer = client.get(f"/admin/events/{event}/scans", headers=bearer(office))
    assert answer.status_code == 200, answer.json
    rows = answer.json["data"]
    assert [r["result"] for r in rows] == ["admitted", "unknown_code", "already_checked_in", "admitted"]
    assert [r["source"] for r in rows] == ["batch", "online", "online", "online"]
    assert rows[1]["code_last4"] == "0000" and rows[1]["attendee"] is None
    assert rows[3]["code_last4"] == code[-4:]
    assert rows[3]["attendee"] == {"id": acme.attendee_ids[0], "name": "Guest 0", "ticket_type": "General"}
    assert rows[3]["token"]["description"] == "Door A scanner"
    assert code not in answer.text
    assert answer.json["meta"]["total"] == 4
    refused = client.get(f"/admin/events/{event}/scans?result=already_checked_in", headers=bearer(office))
    assert [r["result"] for r in refused.json["data"]] == ["already_checked_in"]
    # The check-in token may not read the history (it names attendees).
    assert client.get(f"/admin/events/{event}/scans", headers=bearer(scanner)).status_code == 403


def test_the_history_pages_keep_the_filter_and_sync_by_updated_since(app, client, acme, scanner):
    event = acme.event_ids[0]
    for n in range(5):
        redeem(client, scanner, event, f"NOPE{n}")
    redeem(client, scanner, event, code_of(app, acme.attendee_ids[0]))
    office = issue(app, acme, "read")
    for paging in ("", "&page=1"):  # by cursor, then numbered pages
        seen = []
        path = f"/admin/events/{event}/scans?result=unknown_code&per_page=2{paging}"
        while path:
            page = client.get(path, headers=bearer(office))
            assert page.status_code == 200, page.json
            seen += page.json["data"]
            path = links(page).get("next")
        assert [r["code_last4"] for r in seen] == ["0PE4", "0PE3", "0PE2", "0PE1", "0PE0"], paging  # O read as 0
    since = client.get(f"/admin/events/{event}/scans?updated_since=2000-01-01T00:00:00Z", headers=bearer(office))
    assert since.status_code == 200 and len(since.json["data"]) == 6
    assert since.json["data"][0]["code_last4"] == "0PE0"  # the order of change: oldest first
    assert client.get(f"/admin/events/{event}/scans?result=maybe", headers=bearer(office)).json["parameter"] \
        == "result"
    assert client.get(f"/admin/events/{event}/scans?include_deleted=true", headers=bearer(office)).status_code \
        == 400


def test_a_scan_keeps_the_codes_last_4_characters_only(app, client, acme, scanner):
    code = code_of(app, acme.attendee_ids[0])
    redeem(client, scanner, acme.event_ids[0], code)
    with app.app_context():
        stored = db.session.execute(sa.select(Scan.__table__)).one()._mapping
    assert code not in [value for value in stored.values() if isinstance(value, str)]
    assert stored["code_tail"] == code[-4:]
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ReissuedTicketCode)) == 0


def test_another_accounts_door_is_never_shown(app, client, orgs, acme):
    globex = orgs["globex"]
    globex_scanner = issue(app, globex, "check_in")
    make_org  # noqa: B018  (the orgs fixture made both accounts)
    assert redeem(client, globex_scanner, acme.event_ids[0], code_of(app, acme.attendee_ids[0])).status_code == 404
    reader = issue(app, globex, "read")
    assert client.get(f"/admin/events/{acme.event_ids[0]}/scans", headers=bearer(reader)).status_code == 404


# -- the dashboard ---------------------------------------------------------------------------

PATH_DATA = re.compile(r'<path[^>]* d="([^"]+)"')
MOVES = re.compile(r"([Mmh])(-?[\d.]+)(?: (-?[\d.]+))?")


def qr_modules(html: str) -> set[tuple[int, int]]:
    """The dark modules (row, column) the page's QR code draws: its SVG path read back,
    horizontal runs of modules (M and m move, h draws)."""
    [data] = PATH_DATA.findall(html)
    x = y = 0.0
    dark = set()
    for command, first, second in MOVES.findall(data):
        if command == "M":
            x, y = float(first), float(second)
        elif command == "m":
            x, y = x + float(first), y + float(second)
        else:
            run = int(float(first))
            dark |= {(int(y - 0.5), int(x) + n) for n in range(run)}
            x += run
    return dark


def expected_modules(code: str) -> set[tuple[int, int]]:
    import segno

    matrix = segno.make(code, error="m").matrix
    return {(row + 4, column + 4) for row, line in enumerate(matrix) for column, bit in enumerate(line) if bit}


def test_the_event_page_shows_counts_check_in_state_and_refused_scans(app, client, logged_in, acme, scanner):
    event = acme.event_ids[0]
    redeem(client, scanner, event, code_of(app, acme.attendee_ids[0]))
    redeem(client, scanner, event, code_of(app, acme.attendee_ids[0]))  # refused: already checked in
    redeem(client, scanner, event, code_of(app, acme.attendee_ids[2]))  # refused: wrong event
    page = logged_in.get(f"/admin/events/{event}")
    assert page.status_code == 200
    html = page.text
    assert re.search(r'id="check-in-count"><strong>1</strong> of 2 checked in', html)
    assert "<tr><td>General</td><td>1</td><td>2</td></tr>" in html
    refused = html[html.index('id="refused-scans"'):]
    assert refused.index("Wrong event") < refused.index("Already checked in")  # newest first
    assert "Guest 0" in refused
    assert code_of(app, acme.attendee_ids[0]) not in html  # the event page shows no codes


def test_the_attendee_page_shows_the_ticket_as_a_server_rendered_qr_code(app, client, logged_in, acme):
    path = f"/admin/events/{acme.event_ids[0]}/attendees/{acme.attendee_ids[0]}"
    page = logged_in.get(path)
    assert page.status_code == 200
    code = code_of(app, acme.attendee_ids[0])
    assert qr_modules(page.text) == expected_modules(code)
    assert inline_problems(page.text) == []  # nothing a strict CSP would block, no script of its own
    svg = page.text[page.text.index("<svg"):page.text.index("</svg>")]
    assert "href" not in svg and "src=" not in svg  # drawn in the page: nothing loaded from elsewhere
    assert " ".join(code[i:i + 4] for i in range(0, 24, 4)) in page.text


def test_reissue_from_the_dashboard_needs_csrf_and_makes_the_old_code_refused(app, client, logged_in, acme,
                                                                              scanner):
    from ..helpers import csrf_token_from

    path = f"/admin/events/{acme.event_ids[0]}/attendees/{acme.attendee_ids[0]}"
    old = code_of(app, acme.attendee_ids[0])
    assert logged_in.post(path + "/reissue_ticket").status_code == 400  # no CSRF token
    assert code_of(app, acme.attendee_ids[0]) == old
    page = logged_in.get(path)
    done = logged_in.post(path + "/reissue_ticket", data={"csrf_token": csrf_token_from(page.text)})
    assert done.status_code == 303 and done.headers["Location"].endswith(path)
    new = code_of(app, acme.attendee_ids[0])
    assert new != old
    assert qr_modules(logged_in.get(path).text) == expected_modules(new)
    assert redeem(client, scanner, acme.event_ids[0], old).json["error"] == "ticket_reissued"
    # In the audit log, by the admin who pressed the button (no token acted).
    with app.app_context():
        record = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "attendee.ticket_reissued")).one()
        assert (record.account_id, record.admin_id, record.token_id, record.object_id) == \
            (acme.account_id, acme.admin_id, None, acme.attendee_ids[0])


def test_another_accounts_attendee_page_is_404(app, client, logged_in, orgs):
    globex = orgs["globex"]
    assert logged_in.get(f"/admin/events/{globex.event_ids[0]}/attendees/{globex.attendee_ids[0]}").status_code \
        == 404
    # An attendee through another event's path is 404 too.
    acme = orgs["acme"]
    assert logged_in.get(f"/admin/events/{acme.event_ids[1]}/attendees/{acme.attendee_ids[0]}").status_code == 404


def test_a_restricted_token_never_learns_of_an_attendee_outside_its_events(app, client, acme):
    """A wrong_event scan at its door names an attendee of another event: a token limited to
    this event sees neither that attendee in the history nor in a replay of the nonce."""
    event, other = acme.event_ids[0], acme.attendee_ids[2]  # the second event's attendee
    everywhere = issue(app, acme, "write")
    code = code_of(app, other)
    first = batch(client, everywhere, event, [{"nonce": "w-1", "code": code, "scanned_at": iso(ago(2))}])
    assert first.json["data"][0]["result"] == "wrong_event"
    restricted = issue(app, acme, "write", event_ids=[event])
    replay = batch(client, restricted, event, [{"nonce": "w-1", "code": code, "scanned_at": iso(ago(2))}])
    assert replay.json["data"][0]["result"] == "unknown_code" and replay.json["data"][0]["attendee"] is None
    assert "event" not in replay.json["data"][0]
    history = client.get(f"/admin/events/{event}/scans", headers=bearer(restricted)).json["data"]
    assert [(row["result"], row["attendee"]) for row in history] == [("wrong_event", None)]
    assert client.get(f"/admin/events/{event}/scans", headers=bearer(everywhere)).json["data"][0]["attendee"]["id"] \
        == other


def test_a_nonce_is_still_known_a_month_later(app, client, acme, scanner):
    """Scanners come back online late: a nonce is kept with its scan (never purged), so a batch
    sent again 31 days later (the Idempotency-Keys of the same requests long expired) replays."""
    from freezegun import freeze_time

    scans = [{"nonce": "late-1", "code": code_of(app, acme.attendee_ids[0]), "scanned_at": iso(ago(60))}]
    headers = {"Idempotency-Key": "late-batch"}
    assert batch(client, scanner, acme.event_ids[0], scans, **headers).json["data"][0]["result"] == "admitted"
    with freeze_time(datetime.now(UTC) + timedelta(days=31)):
        runner = app.test_cli_runner()
        assert runner.invoke(args=["purge-idempotency-keys"]).exit_code == 0
        again = batch(client, scanner, acme.event_ids[0], scans, **headers)
    assert "Idempotent-Replayed" not in again.headers  # not the 24-hour key: the nonce
    assert again.json["data"][0]["result"] == "admitted" and again.json["data"][0]["replayed"] is True
    assert len(scans_of(app)) == 1


def batch_meanwhile(app, client, token, event_id, scans, *changes):
    """Send a batch; as it is about to insert its scans (its first write: nothing of it
    locked yet), another connection commits ``changes`` (statements). The answer."""
    with app.app_context():
        engine = db.engine
    other = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)
    meddled = []

    def meddle(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("INSERT INTO scans") and not meddled:
            meddled.append(statement)
            with other.begin() as connection:
                for change in changes:
                    connection.execute(change)

    sa.event.listen(engine, "before_cursor_execute", meddle)
    try:
        answer = batch(client, token, event_id, scans)
    finally:
        sa.event.remove(engine, "before_cursor_execute", meddle)
        other.dispose()
    assert meddled, "the batch inserted no scan"
    return answer


def checked_in_at(attendee_id: int, moment: datetime) -> sa.Update:
    return (sa.update(Attendee.__table__).where(Attendee.id == attendee_id)
            .values(checked_in=True, checked_in_at=moment))


@pytest.mark.parametrize("scanned", ["admitted, then lost", "refused"])
def test_a_batch_with_no_admission_is_refused_if_its_token_was_revoked_meanwhile(app, client, acme, scanner,
                                                                                 scanned):
    """As the batch writes its scans, the token is revoked (and the ticket checked in earlier
    by another writer): no admission changes a row, so no audit record checks the token; the
    batch is still rolled back and refused, nothing of it kept."""
    event, attendee = acme.event_ids[0], acme.attendee_ids[0]
    code = code_of(app, attendee) if scanned == "admitted, then lost" else "NOT-A-TICKET-0000"
    revoked = (sa.update(ApiToken.__table__).where(ApiToken.description == "Door A scanner")
               .values(revoked_at=utcnow()))
    answer = batch_meanwhile(app, client, scanner, event, [{"nonce": "late-1", "code": code,
                                                            "scanned_at": iso(ago(1))}],
                             revoked, checked_in_at(attendee, utcnow() - timedelta(days=1)))
    assert answer.status_code == 401 and answer.json["error"] == "revoked_token", answer.json
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Scan)) == 0


def test_the_later_scans_of_a_batch_follow_its_admission_that_lost_its_race(app, client, acme, scanner):
    """A batch scans a ticket twice; as it writes, another writer checks that ticket in
    earlier still: the first scan is refused by that check-in, and so is the second, which
    the first's admission would have refused."""
    event, attendee = acme.event_ids[0], acme.attendee_ids[0]
    code = code_of(app, attendee)
    earlier = utcnow().replace(microsecond=0) - timedelta(days=1)
    answer = batch_meanwhile(app, client, scanner, event,
                             [{"nonce": "twice-1", "code": code, "scanned_at": iso(ago(10))},
                              {"nonce": "twice-2", "code": code, "scanned_at": iso(ago(5))}],
                             checked_in_at(attendee, earlier))
    assert answer.status_code == 200, answer.json
    expected = iso(earlier)
    assert [(one["result"], one["checked_in_at"]) for one in answer.json["data"]] == \
        [("already_checked_in", expected)] * 2
    with app.app_context():
        stored = db.session.execute(sa.select(Scan.result, Scan.checked_in_at).order_by(Scan.id)).all()
    assert [(result, iso(at.replace(tzinfo=UTC))) for result, at in stored] == [("already_checked_in", expected)] * 2
