"""The write API: events, attendees and check-in; validation, Idempotency-Key, ETags,
tombstones and the audit log. In-process, on the suite's database (SQLite or PostgreSQL);
the concurrency tests on real gunicorn are in tests/live/test_api_writes_gunicorn.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from unittest.mock import ANY

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from usetix.auth.token_service import revoke_token
from usetix.database.engine import db
from usetix.database.models import ApiToken, Attendee, AuditEvent, Event, IdempotencyKey, Tombstone

from ..helpers import bearer, issue, wait_until

NEW_EVENT = {"title": "Launch party", "starts_at": "2026-09-01T18:00:00+02:00", "ends_at": "2026-09-01T23:00:00+02:00",
             "venue": "Rooftop"}
NEW_ATTENDEE = {"name": "Ada Lovelace", "email": "ada@example.com", "ticket_type": "VIP"}


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def audit_rows(app) -> list[AuditEvent]:
    with app.app_context():
        rows = db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id)).all()
        db.session.expunge_all()
        return rows


def with_key(token: str, key: str, **headers: str) -> dict:
    return {**bearer(token), "Idempotency-Key": key, **headers}


@pytest.fixture
def acme(orgs):
    return orgs["acme"]


def attendee_path(org, n: int = 0) -> str:
    """The n-th attendee of the org's first event (make_org gives each event two)."""
    return f"/admin/events/{org.event_ids[0]}/attendees/{org.attendee_ids[n]}"


# -- events ------------------------------------------------------------------------------

def test_create_event(app, client, write_token, acme):
    response = client.post("/admin/events", headers=bearer(write_token), json=NEW_EVENT)
    assert response.status_code == 201
    data = response.json["data"]
    assert data["title"] == "Launch party" and data["status"] == "draft"
    assert data["starts_at"] == "2026-09-01T16:00:00Z"  # stored and answered in UTC
    assert response.headers["Location"] == f"/admin/events/{data['id']}"
    fetched = client.get(response.headers["Location"], headers=bearer(write_token))
    assert fetched.json["data"] == data
    assert fetched.headers["ETag"] == response.headers["ETag"]


def test_patch_is_partial_and_takes_merge_patch(app, client, write_token, acme):
    path = f"/admin/events/{acme.event_ids[0]}"
    before = client.get(path, headers=bearer(write_token)).json["data"]
    response = client.patch(path, headers=bearer(write_token), json={"venue": "Annex"})
    assert response.status_code == 200
    assert response.json["data"] == {**before, "venue": "Annex", "updated_at": response.json["data"]["updated_at"]}
    response = client.patch(path, headers=bearer(write_token), data=b'{"title": "Renamed"}',
                            content_type="application/merge-patch+json")
    assert response.status_code == 200 and response.json["data"]["title"] == "Renamed"
    assert response.json["data"]["venue"] == "Annex"


def test_patch_checks_the_result_against_the_stored_fields(app, client, write_token, acme):
    path = f"/admin/events/{acme.event_ids[0]}"  # starts 2026-06-01T18:30Z
    response = client.patch(path, headers=bearer(write_token), json={"ends_at": "2026-06-01T18:00:00Z"})
    assert response.status_code == 422
    assert response.json["errors"] == [{"field": "ends_at", "code": "ends_before_starts",
                                        "message": "ends_at must not be before starts_at."}]
    response = client.patch(path, headers=bearer(write_token), json={"title": None})  # no field may be null
    assert response.status_code == 422 and response.json["errors"][0]["field"] == "title"


def test_cancel_instead_of_delete_while_it_has_attendees(app, client, write_token, acme):
    path = f"/admin/events/{acme.event_ids[0]}"
    response = client.delete(path, headers=bearer(write_token))
    assert response.status_code == 409
    assert response.json["error"] == "event_has_attendees" and "cancel" in response.json["message"]
    assert count(app, Event, Event.id == acme.event_ids[0]) == 1
    response = client.patch(path, headers=bearer(write_token), json={"status": "cancelled"})
    assert response.status_code == 200 and response.json["data"]["status"] == "cancelled"
    refused = client.post(path + "/attendees", headers=bearer(write_token), json=NEW_ATTENDEE)
    assert refused.status_code == 409 and refused.json["error"] == "event_cancelled"


def test_delete_event_without_attendees(app, client, write_token, acme):
    created = client.post("/admin/events", headers=bearer(write_token), json=NEW_EVENT).json["data"]
    path = f"/admin/events/{created['id']}"
    assert client.delete(path, headers=bearer(write_token)).status_code == 204
    assert client.get(path, headers=bearer(write_token)).status_code == 404
    assert client.delete(path, headers=bearer(write_token)).status_code == 404


# -- validation --------------------------------------------------------------------------

def test_every_bad_field_is_named_at_once_and_nothing_changes(app, client, write_token, acme):
    before = count(app, Event)
    body = {"title": "x" * 201, "starts_at": "2026-09-01T18:00:00", "ends_at": 5, "venue": "Hall",
            "status": "postponed", "colour": "red"}
    response = client.post("/admin/events", headers=bearer(write_token), json=body)
    assert response.status_code == 422
    assert response.json["error"] == "invalid_body"
    codes = {error["field"]: error["code"] for error in response.json["errors"]}
    assert codes == {"title": "string_too_long", "starts_at": "timezone_aware", "ends_at": "datetime_type",
                     "status": "literal_error", "colour": "extra_forbidden"}
    assert all(error["message"] for error in response.json["errors"])
    assert count(app, Event) == before
    assert count(app, AuditEvent, AuditEvent.object_type.is_not(None)) == 0


def test_ends_before_starts_and_an_invalid_email(client, write_token, acme):
    response = client.post("/admin/events", headers=bearer(write_token),
                           json={**NEW_EVENT, "ends_at": "2026-09-01T10:00:00Z"})
    assert response.status_code == 422 and response.json["errors"][0]["code"] == "ends_before_starts"
    response = client.post(f"/admin/events/{acme.event_ids[0]}/attendees", headers=bearer(write_token),
                           json={"name": "", "email": "not-an-email", "ticket_type": "GA", "checked_in": True})
    assert response.status_code == 422
    assert {e["field"] for e in response.json["errors"]} == {"name", "email", "checked_in"}


@pytest.mark.parametrize("body, content_type, status, error", [
    (b'{"title": "x",', "application/json", 400, "invalid_json"),
    (b"", "application/json", 400, "invalid_json"),
    (b"title=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    (b'{"title": "x"}', "text/plain", 415, "unsupported_media_type"),
    (b'{"title": "x"}', None, 415, "unsupported_media_type"),
    (b'{"title": "x"}', "application/merge-patch+json", 415, "unsupported_media_type"),  # PATCH only
    (b"[1, 2]", "application/json", 422, "invalid_body"),
])
def test_a_body_that_is_not_a_json_object(app, client, write_token, acme, body, content_type, status, error):
    headers = bearer(write_token) | ({"Content-Type": content_type} if content_type else {})
    response = client.post("/admin/events", headers=headers, data=body)
    assert response.status_code == status
    assert response.json["error"] == error
    assert count(app, Event) == 6  # Acme's 3 and Globex's 3: nothing new


# -- attendees and check-in --------------------------------------------------------------

def test_attendee_lifecycle(app, client, write_token, acme):
    base = f"/admin/events/{acme.event_ids[1]}/attendees"
    created = client.post(base, headers=bearer(write_token), json=NEW_ATTENDEE)
    assert created.status_code == 201
    attendee = created.json["data"]
    assert attendee["event_id"] == acme.event_ids[1] and attendee["checked_in_at"] is None
    assert created.headers["Location"].endswith(f"{base}/{attendee['id']}")
    path = f"{base}/{attendee['id']}"
    assert client.get(path, headers=bearer(write_token)).json["data"] == attendee
    patched = client.patch(path, headers=bearer(write_token), json={"ticket_type": "General"})
    assert patched.status_code == 200 and patched.json["data"]["ticket_type"] == "General"
    assert client.delete(path, headers=bearer(write_token)).status_code == 204
    assert client.get(path, headers=bearer(write_token)).status_code == 404


def test_an_attendee_through_another_events_path_is_not_found(app, client, write_token, acme, orgs):
    other_event = acme.event_ids[1]  # same account, not the attendee's event
    wrong = f"/admin/events/{other_event}/attendees/{acme.attendee_ids[0]}"
    foreign = f"/admin/events/{orgs['globex'].event_ids[0]}/attendees/{orgs['globex'].attendee_ids[0]}"
    missing = f"/admin/events/{acme.event_ids[0]}/attendees/987654"
    for path in (wrong, foreign, missing):
        for method, body in (("GET", None), ("PATCH", {"name": "X"}), ("DELETE", None)):
            response = client.open(path, method=method, headers=bearer(write_token), json=body)
            assert response.status_code == 404, (path, method)
            assert response.json == {"error": "not_found", "message": "No such resource in this account."}
        for method in ("POST", "DELETE"):
            assert client.open(path + "/check_in", method=method, headers=bearer(write_token)).status_code == 404
    assert client.post(f"/admin/events/{orgs['globex'].event_ids[0]}/attendees", headers=bearer(write_token),
                       json=NEW_ATTENDEE).status_code == 404
    with app.app_context():
        assert db.session.get(Attendee, orgs["globex"].attendee_ids[0]).name == "Guest 0"


def test_check_in_once_then_409_saying_when_then_undo(app, client, write_token, acme):
    path = attendee_path(acme) + "/check_in"
    with freeze_time(datetime(2026, 6, 1, 18, 5, tzinfo=UTC)):
        first = client.post(path, headers=bearer(write_token))
    assert first.status_code == 201
    assert first.json["data"]["checked_in"] is True
    assert first.json["data"]["checked_in_at"] == "2026-06-01T18:05:00Z"
    again = client.post(path, headers=bearer(write_token))
    assert again.status_code == 409
    assert again.json["error"] == "already_checked_in"
    assert again.json["checked_in_at"] == "2026-06-01T18:05:00Z" and "2026-06-01T18:05:00Z" in again.json["message"]
    assert client.delete(path, headers=bearer(write_token)).status_code == 204
    attendee = client.get(attendee_path(acme), headers=bearer(write_token)).json["data"]
    assert attendee["checked_in"] is False and attendee["checked_in_at"] is None
    undo_again = client.delete(path, headers=bearer(write_token))
    assert undo_again.status_code == 409 and undo_again.json["error"] == "not_checked_in"


def test_an_offline_scan_carries_its_time_with_an_offset(client, write_token, acme):
    path = attendee_path(acme) + "/check_in"
    naive = client.post(path, headers=bearer(write_token), json={"checked_in_at": "2026-06-01T20:10:00"})
    assert naive.status_code == 422 and naive.json["errors"][0]["code"] == "timezone_aware"
    response = client.post(path, headers=bearer(write_token), json={"checked_in_at": "2026-06-01T20:10:00+02:00"})
    assert response.status_code == 201
    assert response.json["data"]["checked_in_at"] == "2026-06-01T18:10:00Z"


def test_a_scan_dated_in_the_future_is_422_beyond_five_minutes_of_clock_skew(app, client, write_token, acme):
    path = attendee_path(acme) + "/check_in"
    with freeze_time(datetime(2026, 6, 1, 18, 0, tzinfo=UTC)):
        for when in ("2099-01-01T00:00:00Z", "2026-06-01T20:05:01+02:00"):
            refused = client.post(path, headers=bearer(write_token), json={"checked_in_at": when})
            assert refused.status_code == 422 and refused.json["error"] == "invalid_body", when
            assert [(e["field"], e["code"]) for e in refused.json["errors"]] == [("checked_in_at", "in_the_future")]
        assert count(app, AuditEvent, AuditEvent.action == "attendee.checked_in") == 0
        ahead = client.post(path, headers=bearer(write_token), json={"checked_in_at": "2026-06-01T20:05:00+02:00"})
    assert ahead.status_code == 201 and ahead.json["data"]["checked_in_at"] == "2026-06-01T18:05:00Z"


def test_the_dashboard_shows_what_the_api_wrote(app, client, auth, write_token, acme):
    client.patch(f"/admin/events/{acme.event_ids[0]}", headers=bearer(write_token), json={"status": "cancelled"})
    with freeze_time(datetime(2026, 6, 1, 18, 7, tzinfo=UTC)):
        client.post(attendee_path(acme) + "/check_in", headers=bearer(write_token))
    auth.login()
    listing = client.get("/admin/events").text
    assert "badge-cancelled" in listing and "Cancelled" in listing
    page = client.get(f"/admin/events/{acme.event_ids[0]}").text
    assert '<time datetime="2026-06-01T18:07:00+00:00">2026-06-01 18:07 UTC</time>' in page
    log = client.get("/admin/settings/audit_log").text
    assert "Cancelled event" in log and "Checked in" in log and "test token (API token)" in log


# -- ETag, If-None-Match, If-Match ---------------------------------------------------------

def test_single_objects_carry_a_strong_etag_that_changes_with_every_write(client, write_token, acme):
    for path in (f"/admin/events/{acme.event_ids[0]}", attendee_path(acme)):
        first = client.get(path, headers=bearer(write_token))
        tag = first.headers["ETag"]
        assert tag.startswith('"') and not tag.startswith("W/")
        unchanged = client.get(path, headers={**bearer(write_token), "If-None-Match": tag})
        assert unchanged.status_code == 304 and unchanged.headers["ETag"] == tag and unchanged.data == b""
        patched = client.patch(path, headers=bearer(write_token), json={"ticket_type": "VIP"} if "attendees" in path
                               else {"venue": "Elsewhere"})
        assert patched.headers["ETag"] != tag
        assert client.get(path, headers={**bearer(write_token), "If-None-Match": tag}).status_code == 200


def test_etags_are_opaque_and_never_shared(app, client, write_token, acme):
    """The tag tells nothing of the row (it was its version and its creation time to the
    microsecond, which the body gives to the second only) and no two objects share one."""
    paths = [f"/admin/events/{event_id}" for event_id in acme.event_ids]
    paths += [f"/admin/events/{acme.event_ids[0]}/attendees/{attendee_id}" for attendee_id in acme.attendee_ids[:2]]
    tags = [client.get(path, headers=bearer(write_token)).headers["ETag"] for path in paths]
    for tag, path in zip(tags, paths, strict=True):
        assert re.fullmatch(r'"[0-9a-f]{24}"', tag), tag
        with app.app_context():
            created = db.session.scalar(sa.select(Event.created_at if "attendees" not in path else Attendee.created_at)
                                        .where((Attendee.id if "attendees" in path else Event.id)
                                               == int(path.rsplit("/", 1)[1])))
        assert f"{round(created.timestamp() * 1_000_000):x}" not in tag
    changed = client.patch(paths[0], headers=bearer(write_token), json={"venue": "Elsewhere"}).headers["ETag"]
    assert len(set(tags + [changed])) == len(tags) + 1


def test_a_stale_if_match_is_412_and_changes_nothing(app, client, write_token, acme):
    path = f"/admin/events/{acme.event_ids[0]}"
    tag = client.get(path, headers=bearer(write_token)).headers["ETag"]
    ok = client.patch(path, headers={**bearer(write_token), "If-Match": tag}, json={"title": "First"})
    assert ok.status_code == 200
    for method, body in (("PATCH", {"title": "Second"}), ("DELETE", None)):
        stale = client.open(path, method=method, headers={**bearer(write_token), "If-Match": tag}, json=body)
        assert stale.status_code == 412 and stale.json["error"] == "precondition_failed"
    weak = client.patch(path, headers={**bearer(write_token), "If-Match": "W/" + ok.headers["ETag"]},
                        json={"title": "Third"})
    assert weak.status_code == 412  # If-Match compares strongly
    assert client.get(path, headers=bearer(write_token)).json["data"]["title"] == "First"
    current = client.patch(path, headers={**bearer(write_token), "If-Match": f'"x", {ok.headers["ETag"]}'},
                           json={"title": "Fourth"})
    assert current.status_code == 200
    star = client.patch(path, headers={**bearer(write_token), "If-Match": "*"}, json={"title": "Fifth"})
    assert star.status_code == 200


# -- Idempotency-Key -----------------------------------------------------------------------

def test_location_is_relative_whatever_the_host_and_so_is_its_replay(app, client, write_token, acme):
    base = f"/admin/events/{acme.event_ids[0]}/attendees"
    for path, body in (("/admin/events", NEW_EVENT), (base, NEW_ATTENDEE)):
        headers = with_key(write_token, f"host-{path}", Host="attacker.example")
        created = client.post(path, headers=headers, json=body)
        assert created.headers["Location"] == f"{path}/{created.json['data']['id']}"
        replayed = client.post(path, headers={**headers, "Host": "localhost"}, json=body)
        assert replayed.headers["Idempotent-Replayed"] == "true"
        assert replayed.headers["Location"] == created.headers["Location"]


def test_a_retry_gets_the_first_answer_and_nothing_happens_twice(app, client, write_token, acme):
    base = f"/admin/events/{acme.event_ids[0]}/attendees"
    first = client.post(base, headers=with_key(write_token, "retry-1"), json=NEW_ATTENDEE)
    again = client.post(base, headers=with_key(write_token, "retry-1"), json=NEW_ATTENDEE)
    assert first.status_code == again.status_code == 201
    assert again.data == first.data
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    for header in ("Location", "ETag", "Content-Type"):
        assert again.headers[header] == first.headers[header]
    assert count(app, Attendee, Attendee.name == "Ada Lovelace") == 1
    assert count(app, AuditEvent, AuditEvent.action == "attendee.created") == 1


def test_the_same_key_with_another_request_is_422(app, client, write_token, acme):
    base = f"/admin/events/{acme.event_ids[0]}/attendees"
    client.post(base, headers=with_key(write_token, "k"), json=NEW_ATTENDEE)
    for method, path, body in (("POST", base, {**NEW_ATTENDEE, "name": "Other"}),
                               ("POST", f"/admin/events/{acme.event_ids[1]}/attendees", NEW_ATTENDEE),
                               ("PATCH", attendee_path(acme), {"name": "X"})):
        response = client.open(path, method=method, headers=with_key(write_token, "k"), json=body)
        assert response.status_code == 422 and response.json["error"] == "idempotency_key_reused", (method, path)
    assert count(app, Attendee, Attendee.name.in_(["Ada Lovelace", "Other"])) == 1


def test_keys_belong_to_their_token(app, client, write_token, acme):
    other = issue(app, acme, "write", description="second scanner")
    base = f"/admin/events/{acme.event_ids[0]}/attendees"
    client.post(base, headers=with_key(write_token, "shared"), json=NEW_ATTENDEE)
    response = client.post(base, headers=with_key(other, "shared"), json=NEW_ATTENDEE)
    assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers
    assert count(app, Attendee, Attendee.name == "Ada Lovelace") == 2


def test_a_key_in_flight_is_409_with_retry_after(app, client, write_token, acme):
    path = attendee_path(acme) + "/check_in"
    # What a first request leaves while it runs: its claim, with no answer yet.
    from usetix.database.idempotency import fingerprint

    with app.app_context():
        token_id = db.session.scalar(sa.text("SELECT id FROM api_tokens"))
        db.session.add(IdempotencyKey(token_id=token_id, key="busy", fingerprint=fingerprint("POST", path + "?", b""),
                                      expires_at=datetime.now(UTC) + timedelta(hours=24)))
        db.session.commit()
    response = client.post(path, headers=with_key(write_token, "busy"))
    assert response.status_code == 409
    assert response.json["error"] == "idempotency_key_in_use" and response.headers["Retry-After"] == "1"
    assert client.get(attendee_path(acme), headers=bearer(write_token)).json["data"]["checked_in"] is False


def test_409_answers_are_not_kept(app, client, write_token, acme):
    event = f"/admin/events/{acme.event_ids[0]}"
    refused = client.delete(event, headers=with_key(write_token, "del"))
    assert refused.status_code == 409
    for n in (0, 1):
        client.delete(attendee_path(acme, n), headers=bearer(write_token))
    retried = client.delete(event, headers=with_key(write_token, "del"))
    assert retried.status_code == 204 and "Idempotent-Replayed" not in retried.headers
    assert client.delete(event, headers=with_key(write_token, "del")).headers["Idempotent-Replayed"] == "true"


def test_only_a_write_that_happened_is_kept_and_its_conditions_are_part_of_the_request(
        app, client, write_token, acme):
    path = f"/admin/events/{acme.event_ids[0]}"
    stale_tag = client.get(path, headers=bearer(write_token)).headers["ETag"]
    client.patch(path, headers=bearer(write_token), json={"title": "Moved on"})
    stale = client.patch(path, headers=with_key(write_token, "edit", **{"If-Match": stale_tag}),
                         json={"venue": "Annex"})
    assert stale.status_code == 412
    # Read again, retry with the same key: it runs (the 412 was not kept).
    tag = client.get(path, headers=bearer(write_token)).headers["ETag"]
    retried = client.patch(path, headers=with_key(write_token, "edit", **{"If-Match": tag}), json={"venue": "Annex"})
    assert retried.status_code == 200 and "Idempotent-Replayed" not in retried.headers
    assert retried.json["data"]["venue"] == "Annex"
    replayed = client.patch(path, headers=with_key(write_token, "edit", **{"If-Match": tag}), json={"venue": "Annex"})
    assert replayed.status_code == 200 and replayed.headers["Idempotent-Replayed"] == "true"
    for conditions in ({}, {"If-Match": stale_tag}, {"If-None-Match": tag}):
        other = client.patch(path, headers={**with_key(write_token, "edit"), **conditions}, json={"venue": "Annex"})
        assert other.status_code == 422 and other.json["error"] == "idempotency_key_reused", conditions
    # A 422 raised by the view (the patch checked against the stored starts_at) is not kept either.
    early = client.patch(path, headers=with_key(write_token, "dates"), json={"ends_at": "2000-01-01T00:00:00Z"})
    assert early.status_code == 422 and early.json["error"] == "invalid_body"
    with app.app_context():
        assert db.session.scalars(sa.select(IdempotencyKey.key)).all() == ["edit"]


@pytest.mark.app_config(PROPAGATE_EXCEPTIONS=False)
def test_5xx_answers_are_not_kept_and_roll_back(app, client, write_token, acme, monkeypatch):
    from usetix.blueprints.api import attendees as writes

    def broken_audit(*args, **kwargs):
        raise RuntimeError("audit store down")

    base = f"/admin/events/{acme.event_ids[0]}/attendees"
    with monkeypatch.context() as patch:
        patch.setattr(writes, "audit", broken_audit)
        failed = client.post(base, headers=with_key(write_token, "flaky"), json=NEW_ATTENDEE)
    assert failed.status_code == 500 and failed.mimetype == "application/json"
    assert count(app, Attendee, Attendee.name == "Ada Lovelace") == 0  # the insert was rolled back
    retried = client.post(base, headers=with_key(write_token, "flaky"), json=NEW_ATTENDEE)
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried.headers
    assert count(app, Attendee, Attendee.name == "Ada Lovelace") == 1


def test_keys_expire_after_24_hours_and_are_purged(app, client, runner, write_token, acme):
    base = f"/admin/events/{acme.event_ids[0]}/attendees"
    with freeze_time(datetime(2026, 6, 1, 9, 0, tzinfo=UTC)) as clock:
        client.post(base, headers=with_key(write_token, "daily"), json=NEW_ATTENDEE)
        clock.move_to(datetime(2026, 6, 1, 21, 0, tzinfo=UTC))
        client.post(base, headers=with_key(write_token, "other"), json={**NEW_ATTENDEE, "name": "B"})
        clock.move_to(datetime(2026, 6, 2, 8, 59, tzinfo=UTC))
        assert client.post(base, headers=with_key(write_token, "daily"),
                           json=NEW_ATTENDEE).headers.get("Idempotent-Replayed") == "true"
        clock.move_to(datetime(2026, 6, 2, 9, 1, tzinfo=UTC))
        result = runner.invoke(args=["purge-idempotency-keys"])
        assert result.exit_code == 0 and "Purged 1 expired idempotency key(s)." in result.output
        assert count(app, IdempotencyKey) == 1  # "other" is 12 hours old
        again = client.post(base, headers=with_key(write_token, "daily"), json=NEW_ATTENDEE)
        assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert count(app, Attendee, Attendee.name == "Ada Lovelace") == 2


def test_an_expired_key_is_claimed_again_without_a_purge(app, client, write_token, acme):
    path = attendee_path(acme) + "/check_in"
    with freeze_time(datetime(2026, 6, 1, 9, 0, tzinfo=UTC)) as clock:
        assert client.post(path, headers=with_key(write_token, "scan")).status_code == 201
        client.delete(path, headers=bearer(write_token))
        clock.move_to(datetime(2026, 6, 2, 9, 0, 1, tzinfo=UTC))
        again = client.post(path, headers=with_key(write_token, "scan"))
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert count(app, IdempotencyKey) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "with space", "naïve"])
def test_a_bad_key_is_400(app, client, write_token, acme, key):
    response = client.post("/admin/events", headers=with_key(write_token, key.encode().decode("latin-1")),
                           json=NEW_EVENT)
    assert response.status_code == 400 and response.json["error"] == "invalid_idempotency_key"
    assert count(app, Event) == 6  # Acme's 3 and Globex's 3: nothing new


# -- scope ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path", [
    ("POST", "/admin/events"), ("PATCH", "/admin/events/1"), ("DELETE", "/admin/events/1"),
    ("POST", "/admin/events/1/attendees"), ("POST", "/admin/events/1/attendees/1/check_in"),
    ("DELETE", "/admin/events/1/attendees/1/check_in"),
])
def test_a_read_token_cannot_write(app, client, read_token, acme, method, path):
    response = client.open(path, method=method, headers=with_key(read_token, "r"), json={"title": "x"})
    assert response.status_code == 401 and response.json["error"] == "insufficient_scope"
    assert count(app, IdempotencyKey) == 0


@pytest.mark.parametrize("ends", ["revoked", "expired"])
def test_a_token_that_ends_while_its_write_runs_writes_nothing_and_gets_the_hooks_401(
        app, client, acme, monkeypatch, ends):
    """Authenticated, then revoked or expired while the body arrives: the write rolls back
    (no row, no audit record, no key kept) and answers what the token gets from now on."""
    from usetix.blueprints.api import transaction as writing

    start = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    base = f"/admin/events/{acme.event_ids[0]}/attendees"
    with freeze_time(start) as clock:
        token = issue(app, acme, "write", description="slow scanner")
        with app.app_context():
            token_id = db.session.scalar(sa.select(ApiToken.id).where(ApiToken.description == "slow scanner"))
            db.session.execute(sa.update(ApiToken).where(ApiToken.id == token_id)
                               .values(expires_at=start + timedelta(minutes=5)))
            db.session.commit()
        audited = count(app, AuditEvent)
        real_parse_body = writing.parse_body

        def slow_body(*args, **kwargs):
            if ends == "revoked":
                with app.app_context():
                    revoke_token(db.session.get(ApiToken, token_id), "someone", None, None)
            else:
                clock.move_to(start + timedelta(minutes=5))  # its expiry second
            return real_parse_body(*args, **kwargs)

        monkeypatch.setattr(writing, "parse_body", slow_body)
        refused = client.post(base, headers=with_key(token, "slow"), json=NEW_ATTENDEE)
        monkeypatch.undo()
        assert refused.status_code == 401 and refused.json["error"] == f"{ends}_token"
        assert count(app, Attendee, Attendee.name == "Ada Lovelace") == 0
        assert count(app, AuditEvent) == audited + (ends == "revoked")  # its revocation, nothing else
        assert count(app, IdempotencyKey) == 0
        later = client.post(base, headers=with_key(token, "slow"), json=NEW_ATTENDEE)
    assert (later.status_code, later.json) == (refused.status_code, refused.json)
    assert later.headers == refused.headers  # WWW-Authenticate, and no RateLimit-* or Usetix-Token-Expiration
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="Usetix", error="invalid_token"'


def test_read_token_reads_one_attendee(client, read_token, acme):
    response = client.get(attendee_path(acme), headers=bearer(read_token))
    assert response.status_code == 200 and response.json["data"]["id"] == acme.attendee_ids[0]


def test_another_accounts_event_is_the_same_404_for_writes(app, client, write_token, orgs):
    foreign = orgs["globex"].event_ids[0]
    for method, body in (("PATCH", {"title": "Mine now"}), ("DELETE", None)):
        a = client.open(f"/admin/events/{foreign}", method=method, headers=bearer(write_token), json=body)
        b = client.open("/admin/events/987654", method=method, headers=bearer(write_token), json=body)
        assert a.status_code == b.status_code == 404 and a.data == b.data
    with app.app_context():
        assert db.session.get(Event, foreign).title == "Globex Live event 0"


# -- sync sees deletions --------------------------------------------------------------------

def test_include_deleted_lists_tombstones_since_a_time(app, client, write_token, acme):
    # (The fixture's rows were written now; these writes happen later.)
    with freeze_time(datetime(2099, 6, 1, 9, 0, tzinfo=UTC)):
        created = client.post("/admin/events", headers=bearer(write_token), json=NEW_EVENT).json["data"]
    with freeze_time(datetime(2099, 6, 2, 9, 0, tzinfo=UTC)):
        client.delete(f"/admin/events/{created['id']}", headers=bearer(write_token))
        client.delete(attendee_path(acme, 1), headers=bearer(write_token))
    # A sync lists the changes up to its own start: it runs after these writes.
    later = freeze_time(datetime(2099, 6, 3, 9, 0, tzinfo=UTC))
    later.start()
    plain = client.get("/admin/events?per_page=100", headers=bearer(write_token)).json
    assert created["id"] not in {e["id"] for e in plain["data"]}
    since = "updated_since=2099-06-02T00:00:00Z"
    synced = client.get(f"/admin/events?include_deleted=true&{since}", headers=bearer(write_token)).json
    assert synced["data"] == [{"id": created["id"], "deleted": True, "deleted_at": "2099-06-02T09:00:00Z"}]
    assert synced["meta"]["total"] == 1
    attendees = client.get(f"/admin/events/{acme.event_ids[0]}/attendees?include_deleted=true&{since}",
                           headers=bearer(write_token)).json["data"]
    assert attendees == [{"id": acme.attendee_ids[1], "deleted": True, "deleted_at": "2099-06-02T09:00:00Z"}]
    # Another event's list does not show this event's deleted attendee.
    other = client.get(f"/admin/events/{acme.event_ids[1]}/attendees?include_deleted=true",
                       headers=bearer(write_token)).json["data"]
    assert all(not a.get("deleted") for a in other)
    everything = client.get("/admin/events?include_deleted=true&per_page=100", headers=bearer(write_token)).json
    assert len(everything["data"]) == everything["meta"]["total"] == 4
    later.stop()
    assert count(app, Tombstone) == 2


def test_tombstones_belong_to_their_account(app, client, write_token, orgs):
    globex = issue(app, orgs["globex"], "write")
    created = client.post("/admin/events", headers=bearer(globex), json=NEW_EVENT).json["data"]
    client.delete(f"/admin/events/{created['id']}", headers=bearer(globex))
    listed = client.get("/admin/events?include_deleted=true", headers=bearer(write_token)).json["data"]
    assert not any(e.get("deleted") for e in listed)


def test_the_newest_deleted_id_is_never_given_again(app, client, write_token, acme):
    """Delete the newest event (or attendee), create another: it gets a new id, so a sync
    never lists one id as deleted and live at once (SQLite reused it before AUTOINCREMENT)."""
    newest = client.post("/admin/events", headers=bearer(write_token), json=NEW_EVENT).json["data"]["id"]
    assert client.delete(f"/admin/events/{newest}", headers=bearer(write_token)).status_code == 204
    created = client.post("/admin/events", headers=bearer(write_token), json=NEW_EVENT).json["data"]["id"]
    assert created > newest
    synced = client.get("/admin/events?include_deleted=true&per_page=100", headers=bearer(write_token)).json["data"]
    ids = [e["id"] for e in synced]
    assert len(ids) == len(set(ids)) and {"id": newest, "deleted": True} | {"deleted_at": ANY} in synced

    base = f"/admin/events/{acme.event_ids[0]}/attendees"
    newest = client.post(base, headers=bearer(write_token), json=NEW_ATTENDEE).json["data"]["id"]
    assert client.delete(f"{base}/{newest}", headers=bearer(write_token)).status_code == 204
    created = client.post(base, headers=bearer(write_token), json=NEW_ATTENDEE).json["data"]["id"]
    assert created > newest
    assert client.get(f"{base}/{newest}", headers=bearer(write_token)).status_code == 404


# -- the audit record ---------------------------------------------------------------------

def test_every_api_write_is_recorded_with_token_object_and_address(app, client, write_token, acme):
    event = client.post("/admin/events", headers=bearer(write_token), json=NEW_EVENT,
                        environ_base={"REMOTE_ADDR": "203.0.113.9"}).json["data"]
    path = f"/admin/events/{event['id']}"
    client.patch(path, headers=bearer(write_token), json={"title": "Renamed"})
    attendee = client.post(path + "/attendees", headers=bearer(write_token), json=NEW_ATTENDEE).json["data"]
    apath = f"{path}/attendees/{attendee['id']}"
    client.patch(apath, headers=bearer(write_token), json={"name": "Ada King"})
    client.post(apath + "/check_in", headers=bearer(write_token))
    client.delete(apath + "/check_in", headers=bearer(write_token))
    client.delete(apath, headers=bearer(write_token))
    client.patch(path, headers=bearer(write_token), json={"status": "cancelled"})
    client.delete(path, headers=bearer(write_token))
    client.post(path + "/attendees", headers=bearer(write_token), json={})  # refused: not recorded
    rows = [r for r in audit_rows(app) if r.object_type]
    assert [(r.action, r.object_type, r.object_id, r.object_label) for r in rows] == [
        ("event.created", "event", event["id"], "Launch party"),
        ("event.updated", "event", event["id"], "Renamed"),
        ("attendee.created", "attendee", attendee["id"], "Ada Lovelace"),
        ("attendee.updated", "attendee", attendee["id"], "Ada King"),
        ("attendee.checked_in", "attendee", attendee["id"], "Ada King"),
        ("attendee.check_in_undone", "attendee", attendee["id"], "Ada King"),
        ("attendee.deleted", "attendee", attendee["id"], "Ada King"),
        ("event.cancelled", "event", event["id"], "Renamed"),
        ("event.deleted", "event", event["id"], "Renamed"),
    ]
    first = rows[0]
    assert (first.token_description, first.token_tier, first.admin_id, first.account_id) == (
        "test token", "write", None, acme.account_id)
    assert first.client_address == "203.0.113.9" and first.created_at is not None
    assert {r.token_id for r in rows} == {first.token_id}


def test_the_audit_log_filters_and_pages(app, client, auth, write_token, acme):
    second = issue(app, acme, "write", description="door scanner")
    for n in range(2):
        client.post(f"/admin/events/{acme.event_ids[0]}/attendees/{acme.attendee_ids[n]}/check_in",
                    headers=bearer(second))
    for _ in range(26):
        client.patch(f"/admin/events/{acme.event_ids[1]}", headers=bearer(write_token), json={"venue": f"V{_}"})
    auth.login()
    token_id = audit_rows(app)[-1].token_id  # write_token's: it made the last write
    second_id = next(r.token_id for r in audit_rows(app) if r.token_description == "door scanner")

    def actions(page: str) -> list[str]:
        return [line.split('data-action="')[1].split('"')[0] for line in page.splitlines() if "data-action=" in line]

    by_token = client.get(f"/admin/settings/audit_log?token={second_id}").text
    assert actions(by_token).count("attendee.checked_in") == 2 and "event.updated" not in actions(by_token)
    by_action = client.get("/admin/settings/audit_log?action=attendee.checked_in").text
    assert actions(by_action) == ["attendee.checked_in"] * 2
    by_admin = client.get(f"/admin/settings/audit_log?admin={acme.admin_id}").text
    assert set(actions(by_admin)) <= {"token.created", "token.revoked"}
    first_page = client.get(f"/admin/settings/audit_log?token={token_id}&action=event.updated").text
    assert len(actions(first_page)) == 25
    # The Older link keeps both filters; its page holds the one record left.
    older = re.search(r'<a rel="next" href="([^"]+)"', first_page).group(1).replace("&amp;", "&")
    assert older.startswith(f"/admin/settings/audit_log?token={token_id}&action=event.updated&cursor=")
    second_page = client.get(older).text
    assert actions(second_page) == ["event.updated"]
    assert 'rel="next"' not in second_page and 'rel="prev"' in second_page
    assert "Nothing matches" in client.get("/admin/settings/audit_log?action=nothing").text


def test_a_claim_abandoned_by_a_dead_worker_is_taken_over(app, client, write_token, acme):
    path = attendee_path(acme) + "/check_in"
    from usetix.database.idempotency import ABANDONED_AFTER, fingerprint

    with app.app_context():
        token_id = db.session.scalar(sa.text("SELECT id FROM api_tokens"))
        db.session.add(IdempotencyKey(token_id=token_id, key="orphan", fingerprint=fingerprint("POST", path + "?", b""),
                                      created_at=datetime.now(UTC) - ABANDONED_AFTER - timedelta(seconds=1),
                                      expires_at=datetime.now(UTC) + timedelta(hours=23)))
        db.session.commit()
    response = client.post(path, headers=with_key(write_token, "orphan"))
    assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers
    assert client.post(path, headers=with_key(write_token, "orphan")).headers["Idempotent-Replayed"] == "true"


def test_a_patch_that_keeps_losing_races_is_409_edit_conflict(app, client, write_token, acme, monkeypatch):
    from usetix.blueprints.api import events as writes

    path = f"/admin/events/{acme.event_ids[0]}"
    real_changed = writes.changed_fields

    def changed_then_bumped(row, patch):
        # Another writer bumps the version after every read of ours.
        with app.app_context():
            db.session.execute(sa.update(Event).where(Event.id == row.id).values(version=Event.version + 1))
            db.session.commit()
        return real_changed(row, patch)

    monkeypatch.setattr(writes, "changed_fields", changed_then_bumped)
    response = client.patch(path, headers=bearer(write_token), json={"title": "Mine"})
    assert response.status_code == 409 and response.json["error"] == "edit_conflict"
    tag = client.get(path, headers=bearer(write_token)).headers["ETag"]
    stale = client.patch(path, headers={**bearer(write_token), "If-Match": tag}, json={"title": "Mine"})
    assert stale.status_code == 412
    monkeypatch.undo()
    assert client.get(path, headers=bearer(write_token)).json["data"]["title"] == "Acme Events event 0"


@pytest.mark.app_config(PROPAGATE_EXCEPTIONS=False)
def test_a_check_in_with_a_key_commits_with_its_stored_answer_or_not_at_all(app, client, write_token, acme,
                                                                            monkeypatch):
    """On PostgreSQL a check-in is one statement, in autocommit without a key; with one,
    the check-in and its stored answer are one transaction: an answer that cannot be
    stored leaves the attendee as it was, and the key free for the retry."""
    from usetix.database import idempotency

    def broken_store(*args, **kwargs):
        raise RuntimeError("answer store down")

    path = attendee_path(acme) + "/check_in"
    audited = count(app, AuditEvent)
    with monkeypatch.context() as patch:
        patch.setattr(idempotency, "complete", broken_store)
        failed = client.post(path, headers=with_key(write_token, "scan-1"))
    assert failed.status_code == 500 and failed.mimetype == "application/json"
    assert count(app, Attendee, Attendee.checked_in.is_(True)) == 0
    assert count(app, AuditEvent) == audited
    retried = client.post(path, headers=with_key(write_token, "scan-1"))
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried.headers
    replayed = client.post(path, headers=with_key(write_token, "scan-1"))
    assert replayed.status_code == 201 and replayed.headers["Idempotent-Replayed"] == "true"


def test_a_check_in_is_one_update_and_one_audit_insert_that_also_checks_the_token(app, client, write_token, acme):
    """The token is checked again inside the write by the audit INSERT itself: no statement
    is added to the hot path. On PostgreSQL the UPDATE and the INSERT are one statement,
    after the token's lookup, and it reads the token's row FOR SHARE (a revoke racing it)."""
    from ..queries import recorded_queries

    path = attendee_path(acme) + "/check_in"
    with recorded_queries(app) as statements:
        assert client.post(path, headers=bearer(write_token)).status_code == 201
    with app.app_context():
        dialect = db.engine.dialect.name
    if dialect == "postgresql":
        assert [s.split()[0] for s in statements] == ["SELECT", "WITH"], statements
        assert all(part in statements[-1] for part in ("FOR SHARE", "UPDATE attendees", "INSERT INTO audit_events"))
        assert "INSERT INTO webhook_messages" in statements[-1]  # its outbox too (issue 25), in the same statement
        audit = statements[-1]
    else:
        written = [s.split()[0] for s in statements if not s.lstrip().upper().startswith("SELECT")]
        # The change, its audit record, and its outbox messages' one INSERT … SELECT (issue 25).
        assert written == ["UPDATE", "INSERT", "INSERT"], statements
        [audit] = [s for s in statements if "INSERT INTO audit_events" in s]
        assert "INSERT INTO webhook_messages" in statements[-1]
    assert "revoked_at IS NULL" in audit and "expires_at" in audit


@pytest.mark.parametrize("ends", ["revoked", "expired"])
@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_a_check_in_or_undo_whose_token_ends_while_it_runs_changes_nothing_and_gets_the_hooks_401(
        app, acme, monkeypatch, method, ends):
    """Authenticated, then revoked or expired just before the write: the attendee is
    unchanged, no audit record, and the answer is what the token gets from now on."""
    from usetix.blueprints.api import check_in as checking

    start = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    client = app.test_client()
    path = attendee_path(acme) + "/check_in"
    with freeze_time(start) as clock:
        token = issue(app, acme, "write", description="ending scanner")
        token_id = _token_id(app, "ending scanner")
        with app.app_context():
            db.session.execute(sa.update(ApiToken).where(ApiToken.id == token_id)
                               .values(expires_at=start + timedelta(minutes=5)))
            db.session.commit()
        if method == "DELETE":
            assert client.post(path, headers=bearer(token)).status_code == 201
        audited = count(app, AuditEvent)
        real_utcnow = checking.utcnow

        def token_ends_now():
            if ends == "revoked":
                with app.app_context():
                    revoke_token(db.session.get(ApiToken, token_id), "someone", None, None)
            else:
                clock.move_to(start + timedelta(minutes=5))  # its expiry second
            return real_utcnow()

        monkeypatch.setattr(checking, "utcnow", token_ends_now)  # the view's clock, read just before its write
        refused = client.open(path, method=method, headers=bearer(token))
        monkeypatch.undo()
        assert refused.status_code == 401 and refused.json["error"] == f"{ends}_token"
        assert count(app, AuditEvent) == audited + (ends == "revoked")  # its revocation, nothing else
        with app.app_context():
            assert db.session.get(Attendee, acme.attendee_ids[0]).checked_in is (method == "DELETE")
        later = client.open(path, method=method, headers=bearer(token))
    assert (later.status_code, later.json) == (refused.status_code, refused.json)
    assert later.headers == refused.headers


def test_a_request_whose_claim_was_taken_over_never_completes_or_releases_the_new_one(app, write_token, acme):
    """A claim is named by its id and its claim time: on SQLite the takeover's row may get
    the abandoned row's id again, and the slow first request must not store its answer in
    it (a replay of the wrong answer) nor delete it (the key claimed twice)."""
    import dataclasses

    from usetix.database import idempotency

    with app.app_context():
        token_id = db.session.scalar(sa.text("SELECT id FROM api_tokens"))
        claimed_at = datetime.now(UTC) - idempotency.ABANDONED_AFTER - timedelta(seconds=1)
        with db.engine.connect() as connection:
            first = idempotency.claim(connection, token_id, "slow", "f" * 64, claimed_at)
            second = idempotency.claim(connection, token_id, "slow", "f" * 64, datetime.now(UTC))
            assert isinstance(second, idempotency.Claim) and second != first
            second = dataclasses.replace(second, id=first.id)  # the id SQLite may give again, on both databases
            connection.execute(sa.update(IdempotencyKey.__table__).values(id=first.id))
            connection.commit()
            idempotency.complete(connection, first, 201, {}, b"the first request's answer")
            connection.commit()
            idempotency.release(connection, first)
            row = connection.execute(sa.select(IdempotencyKey.status, IdempotencyKey.created_at)).one()
            assert row.status is None  # still the second request's claim, untouched
            idempotency.complete(connection, second, 201, {}, b"the second request's answer")
            connection.commit()
            assert connection.scalar(sa.select(IdempotencyKey.response_body)) == b"the second request's answer"


def _token_id(app, description: str) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(ApiToken.id).where(ApiToken.description == description))


def _write_is_waiting_for_a_lock(app) -> bool:
    """On PostgreSQL: a statement of the app's (not this test's own connection) waits for a row lock."""
    with app.app_context(), db.engine.connect() as connection:
        return bool(connection.scalar(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")))


@pytest.mark.parametrize("write", ["check-in", "undo", "create", "create with a key"])
def test_a_revoke_racing_a_write_comes_after_it_in_the_audit_log_or_it_does_not_land(app, acme, write):
    """The revoke has changed the token (not yet committed) when the write runs: the write
    waits for it and is refused (on PostgreSQL it finds the token's row locked; on SQLite
    the database), so no write lands after its token's revocation in the audit log. Without
    the write's lock on the token, PostgreSQL's snapshot saw the token still live, and the
    write landed after the revocation. A check-in is one statement on PostgreSQL, a create
    a transaction (its audit INSERT reads the token)."""
    import threading

    token = issue(app, acme, "write", description="racing scanner")
    token_id = _token_id(app, "racing scanner")
    check_in = attendee_path(acme) + "/check_in"
    client = app.test_client()
    if write == "undo":
        assert client.post(check_in, headers=bearer(token)).status_code == 201
    method, path, body, written = {
        "check-in": ("POST", check_in, None, "attendee.checked_in"),
        "undo": ("DELETE", check_in, None, "attendee.check_in_undone"),
        "create": ("POST", f"/admin/events/{acme.event_ids[0]}/attendees", NEW_ATTENDEE, "attendee.created"),
        "create with a key": ("POST", f"/admin/events/{acme.event_ids[0]}/attendees", NEW_ATTENDEE,
                              "attendee.created"),
    }[write]
    headers = with_key(token, "racing") if write.endswith("key") else bearer(token)
    answers = []
    with app.app_context():
        session = db.session
        token_row = session.get(ApiToken, token_id)
        session.execute(sa.update(ApiToken).where(ApiToken.id == token_id).values(revoked_at=datetime.now(UTC)))
        session.add(AuditEvent(account_id=token_row.account_id, actor="admin", action="token.revoked",
                               token_id=token_id, token_description=token_row.description,
                               token_tier=token_row.tier))
        session.flush()  # the revocation and its audit record written, not committed
        racing = threading.Thread(target=lambda: answers.append(app.test_client().open(
            path, method=method, headers=headers, json=body)))
        racing.start()
        if db.engine.dialect.name == "postgresql":
            wait_until(lambda: not racing.is_alive() or _write_is_waiting_for_a_lock(app),
                       message="the write done, or waiting for the revocation")
        session.commit()
    racing.join(timeout=30)
    assert not racing.is_alive()
    [answer] = answers
    log = [(row.action, row.object_type) for row in audit_rows(app) if row.token_id == token_id]
    revoked_at = log.index(("token.revoked", None))
    if answer.status_code == 401:
        assert answer.json["error"] == "revoked_token"
        assert (written, "attendee") not in log[revoked_at:]
        with app.app_context():
            checked_in = db.session.get(Attendee, acme.attendee_ids[0]).checked_in
        assert checked_in is (write == "undo")  # unchanged
        assert count(app, Attendee, Attendee.name == NEW_ATTENDEE["name"]) == 0
        assert count(app, IdempotencyKey) == 0
    else:
        assert answer.status_code in (201, 204)
        assert log.index((written, "attendee")) < revoked_at, log
