"""Cursor pages and sync walks (usetix/blueprints/api/pagination.py): every row once while
the list changes, tamper-evident cursors, sync cursors that never skip a change, and the
410 once the tombstones a sync needs are gone."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from usetix.database.engine import db
from usetix.database.models import Attendee, Event, Tombstone

from ..helpers import NEW_EVENT, bearer, issue, links, make_org, walk

NEW_ATTENDEE = {"name": "Ada Lovelace", "email": "ada@example.com", "ticket_type": "VIP"}
# Most sync tests want the position right behind the last change; the settle window has tests of its own.
NO_SETTLE = pytest.mark.app_config(SYNC_SETTLE_SECONDS=0)


@pytest.fixture
def big(app, orgs):
    """An account with 12 events, the first with 30 attendees, and its write token."""
    with app.app_context():
        org = make_org("Big", "admin@big.example", events=12, attendees_per_event=0)
        db.session.add_all(Attendee(account_id=org.account_id, event_id=org.event_ids[0], name=f"Guest {n}",
                                    email=f"guest{n}@big.example", ticket_type="General") for n in range(30))
        db.session.commit()
    return org, issue(app, org, "write")


def ids(pages: list[dict]) -> list[int]:
    return [row["id"] for page in pages for row in page["data"]]


def test_the_first_page_has_the_total_and_cursors_lead_on_and_back(client, big):
    org, token = big
    first = client.get("/admin/events?per_page=5", headers=bearer(token))
    assert first.json["meta"] == {"page": 1, "per_page": 5, "total": 12}
    assert set(links(first)) == {"next"} and "cursor=" in links(first)["next"]
    pages = walk(client, "/admin/events?per_page=5", token)
    assert [page["meta"] for page in pages[1:]] == [{"page": 2, "per_page": 5}, {"page": 3, "per_page": 5}]
    assert ids(pages) == org.event_ids
    # Back from the last page by rel="prev": the same pages, the same ordinals.
    last = client.get(links(client.get("/admin/events?per_page=5", headers=bearer(token)))["next"],
                      headers=bearer(token))
    last = client.get(links(last)["next"], headers=bearer(token))
    assert "next" not in links(last)
    back = client.get(links(last)["prev"], headers=bearer(token))
    assert back.json["meta"]["page"] == 2 and [e["id"] for e in back.json["data"]] == org.event_ids[5:10]
    start = client.get(links(back)["prev"], headers=bearer(token))
    assert start.json["meta"]["page"] == 1 and [e["id"] for e in start.json["data"]] == org.event_ids[:5]
    assert "prev" not in links(start) and "next" in links(start)


def test_a_cursor_may_change_the_page_size_and_nothing_else(client, big):
    org, token = big
    following = links(client.get("/admin/events?per_page=5", headers=bearer(token)))["next"]
    bigger = client.get(following + "&per_page=7", headers=bearer(token))
    assert [e["id"] for e in bigger.json["data"]] == org.event_ids[5:12]
    for name, value in (("page", "2"), ("updated_since", "2020-01-01T00:00:00Z"), ("include_deleted", "true")):
        response = client.get(f"{following}&{name}={value}", headers=bearer(token))
        assert response.status_code == 400 and response.json["parameter"] == name


@pytest.mark.parametrize("listed", ["events", "attendees"])
def test_a_walk_sees_every_surviving_row_once_while_rows_change(client, big, listed):
    org, token = big
    base = "/admin/events" if listed == "events" else f"/admin/events/{org.event_ids[0]}/attendees"
    everything = ids(walk(client, f"{base}?per_page=100", token))
    # The first event keeps its attendees, so it cannot be deleted.
    deletable = everything[1:] if listed == "events" else everything
    rng = random.Random(27)
    deleted, created, seen = set(), set(), []
    response = client.get(f"{base}?per_page=4", headers=bearer(token))
    while True:
        seen += [row["id"] for row in response.json["data"]]
        # Between pages: delete a row already seen and one still ahead, add one, change one ahead.
        behind = [i for i in seen if i in deletable and i not in deleted]
        ahead = [i for i in deletable if i not in seen and i not in deleted]
        for victim in [rng.choice(behind)] + ([rng.choice(ahead)] if ahead else []):
            assert client.delete(f"{base}/{victim}", headers=bearer(token)).status_code == 204
            deleted.add(victim)
        body = dict(NEW_EVENT, title="New") if listed == "events" else NEW_ATTENDEE
        created.add(client.post(base, headers=bearer(token), json=body).json["data"]["id"])
        changes = {"title": "Changed"} if listed == "events" else {"name": "Changed"}
        for row_id in [i for i in ahead if i not in deleted][:1]:
            assert client.patch(f"{base}/{row_id}", headers=bearer(token), json=changes).status_code == 200
        following = links(response).get("next")
        if following is None:
            break
        response = client.get(following, headers=bearer(token))
    assert len(seen) == len(set(seen)), "a row came twice"
    survivors = set(everything) - deleted
    assert survivors <= set(seen), f"rows never seen: {survivors - set(seen)}"
    assert set(seen) <= set(everything) | created


def test_tampered_truncated_and_foreign_cursors_are_400(app, client, big, orgs):
    org, token = big
    events_cursor = links(client.get("/admin/events?per_page=1", headers=bearer(token)))["next"].split("cursor=")[1]
    attendees_path = f"/admin/events/{org.event_ids[0]}/attendees"
    attendees_cursor = links(client.get(f"{attendees_path}?per_page=1", headers=bearer(token)))["next"]
    attendees_cursor = attendees_cursor.split("cursor=")[1]
    flipped = events_cursor[:10] + ("A" if events_cursor[10] != "A" else "B") + events_cursor[11:]
    cases = [
        ("/admin/events", flipped, token),
        ("/admin/events", events_cursor[:-3], token),  # truncated
        ("/admin/events", events_cursor + "x", token),
        ("/admin/events", "", token),
        ("/admin/events", "not-a-cursor", token),
        ("/admin/events", "x" * 5000, token),
        ("/admin/events", attendees_cursor, token),  # another list's
        (f"/admin/events/{org.event_ids[1]}/attendees", attendees_cursor, token),  # another event's
        ("/admin/events", events_cursor, issue(app, orgs["globex"])),  # another account's
    ]
    for path, cursor, used_by in cases:
        response = client.get(path, query_string={"cursor": cursor}, headers=bearer(used_by))
        assert response.status_code == 400, (path, cursor[:20], response.status_code)
        assert response.json["error"] == "invalid_parameter" and response.json["parameter"] == "cursor"
        assert "data" not in response.json
    # Another account's event under its own cursor is the 404 of any foreign event.
    globex = issue(app, orgs["globex"])
    assert client.get(attendees_path, query_string={"cursor": attendees_cursor},
                      headers=bearer(globex)).status_code == 404


def test_every_one_character_change_of_a_cursor_is_400(client, big):
    _, token = big
    cursor = links(client.get("/admin/events?per_page=1", headers=bearer(token)))["next"].split("cursor=")[1]
    for index, character in enumerate(cursor):
        changed = cursor[:index] + ("B" if character != "B" else "C") + cursor[index + 1:]
        response = client.get("/admin/events", query_string={"cursor": changed}, headers=bearer(token))
        assert response.status_code == 400, (index, changed)


@NO_SETTLE
def test_a_sync_walks_in_order_of_change_and_its_sync_cursor_lists_what_changed_since(app, client, big):
    org, token = big
    base = f"/admin/events/{org.event_ids[0]}/attendees"
    start = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    everyone = ids(walk(client, f"{base}?per_page=100", token))
    for attendee_id in reversed(everyone[:9]):  # changed newest-id first: the order of change is not the id order
        client.patch(f"{base}/{attendee_id}", headers=bearer(token), json={"name": "Renamed"})
    pages = walk(client, f"{base}?updated_since={start}&per_page=4&include_deleted=true", token)
    assert ids(pages) == list(reversed(everyone[:9]))
    assert [page["meta"].get("total") for page in pages] == [9, None, None]
    assert "sync_cursor" in pages[-1]["meta"] and all("sync_cursor" not in page["meta"] for page in pages[:-1])
    since = pages[-1]["meta"]["sync_cursor"]
    # Nothing changed: nothing listed, and a sync cursor again.
    quiet = client.get(f"{base}?cursor={since}", headers=bearer(token)).json
    assert quiet["data"] == [] and quiet["meta"]["sync_cursor"]
    # A change, a deletion and a new attendee come next, in their order, deletions as tombstones.
    client.patch(f"{base}/{everyone[20]}", headers=bearer(token), json={"name": "Late"})
    client.delete(f"{base}/{everyone[3]}", headers=bearer(token))
    created = client.post(base, headers=bearer(token), json=NEW_ATTENDEE).json["data"]["id"]
    later = walk(client, f"{base}?cursor={quiet['meta']['sync_cursor']}", token)
    assert [(row["id"], row.get("deleted", False)) for page in later for row in page["data"]] == [
        (everyone[20], False), (everyone[3], True), (created, False)]
    assert later[-1]["data"][-1]["name"] == NEW_ATTENDEE["name"]


def sync(client, path: str, token: str, replica: dict[int, dict], position: str | None) -> str:
    """One sync of ``replica`` as the README tells a client to keep it: upsert rows by id,
    drop tombstones; the new sync cursor."""
    start = f"{path}?updated_since=1970-01-01T00:00:00Z&include_deleted=true"  # the first sync: every row
    if position:
        start = f"{path}?cursor={position}"
    for page in walk(client, start + "&per_page=7", token):
        for row in page["data"]:
            if row.get("deleted"):
                replica.pop(row["id"], None)
            else:
                replica[row["id"]] = row
    return page["meta"]["sync_cursor"]


@pytest.mark.app_config(RATELIMIT_ENABLED=False)
def test_a_replica_kept_by_sync_equals_the_source_after_four_writers(app, big):
    """Four writers create, change and delete attendees for seconds while a client syncs
    again and again; once they stop, one more sync makes its replica equal to the source."""
    org, token = big
    path = f"/admin/events/{org.event_ids[0]}/attendees"
    stop = threading.Event()
    failures: list[str] = []

    def writer(seed: int) -> None:
        client, rng, mine = app.test_client(), random.Random(seed), []
        while not stop.is_set():
            action = rng.random()
            if action < 0.4 or not mine:
                response = client.post(path, headers=bearer(token), json=dict(NEW_ATTENDEE, name=f"w{seed}"))
                if response.status_code == 201:
                    mine.append(response.json["data"]["id"])
            elif action < 0.8:
                response = client.patch(f"{path}/{rng.choice(mine)}", headers=bearer(token),
                                        json={"name": f"w{seed} {rng.random()}"})
            else:
                response = client.delete(f"{path}/{mine.pop(rng.randrange(len(mine)))}", headers=bearer(token))
            if response.status_code not in (200, 201, 204, 503):  # 503: SQLite's lock was busy; nothing written
                failures.append(f"{response.status_code} {response.json}")

    replica: dict[int, dict] = {}
    reader = app.test_client()
    position = sync(reader, path, token, replica, None)
    writers = [threading.Thread(target=writer, args=(seed,)) for seed in range(4)]
    for thread in writers:
        thread.start()
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        position = sync(reader, path, token, replica, position)
    stop.set()
    for thread in writers:
        thread.join()
    sync(reader, path, token, replica, position)
    assert not failures, failures[:3]
    source = {row["id"]: row for page in walk(reader, f"{path}?per_page=100", token) for row in page["data"]}
    assert replica == source


@pytest.mark.parametrize("settle", [None, 0], ids=["default settle", "no settle"])
def test_a_change_committed_after_a_later_one_still_reaches_the_next_sync(app, client, big, settle):
    """A write takes its timestamp, then is held before it commits while a later write
    commits and a sync runs: the next sync still lists it. On PostgreSQL the held
    transaction is real and the horizon trails it with no settle time at all; on SQLite,
    where a held write would hold the lock, the write waits (as for the lock) between its
    timestamp and its UPDATE, which the default settle time covers."""
    with app.app_context():
        engine = db.engine
    postgres = engine.dialect.name == "postgresql"
    if settle == 0 and not postgres:
        pytest.skip("SQLite has no view of open transactions: its settle time is what covers them")
    if settle is not None:
        app.config["SYNC_SETTLE_SECONDS"] = settle
    org, token = big
    path = f"/admin/events/{org.event_ids[0]}/attendees"
    everyone = ids(walk(client, f"{path}?per_page=100", token))
    position = sync(client, path, token, {}, None)
    held_id, later_id = everyone[0], everyone[1]
    with engine.connect() as held:
        held.execute(sa.text("SELECT 1"))  # its transaction begins, as a write's does with the token's lookup
        taken_at = datetime.now(UTC)  # the held write's timestamp, taken inside its transaction
        statement = sa.update(Attendee).where(Attendee.id == held_id).values(name="Held", updated_at=taken_at)
        if postgres:
            held.execute(statement)
        assert client.patch(f"{path}/{later_id}", headers=bearer(token), json={"name": "Later"}).status_code == 200
        replica: dict[int, dict] = {}
        position = sync(client, path, token, replica, position)
        assert replica[later_id]["name"] == "Later" and replica.get(held_id, {}).get("name") != "Held"
        if not postgres:
            held.execute(statement)
        held.commit()
    replica = {}
    sync(client, path, token, replica, position)
    assert replica[held_id]["name"] == "Held"


@NO_SETTLE
def test_a_sync_of_deletions_from_before_the_tombstones_kept_is_410(app, client, big):
    org, token = big
    path = f"/admin/events/{org.event_ids[0]}/attendees"
    position = sync(client, path, token, {}, None)
    later = datetime.now(UTC) + timedelta(days=app.config["TOMBSTONE_RETENTION_DAYS"], minutes=1)
    with freeze_time(later):
        gone = client.get(f"{path}?cursor={position}", headers=bearer(token))
        assert gone.status_code == 410 and gone.json["error"] == "full_sync_required"
        # A full sync starts again, and its cursor works.
        again = sync(client, path, token, {}, None)
        assert client.get(f"{path}?cursor={again}", headers=bearer(token)).status_code == 200
    # A day short of the tombstones kept, the old cursor still works, even with no change since.
    with freeze_time(later - timedelta(days=1)):
        assert client.get(f"{path}?cursor={position}", headers=bearer(token)).status_code == 200


def test_purge_tombstones_deletes_those_older_than_kept(app, runner, big):
    org, _ = big
    now = datetime.now(UTC)
    with app.app_context():
        for days in (1, 89, 91, 400):
            db.session.add(Tombstone(account_id=org.account_id, object_type="event", object_id=10_000 + days,
                                     deleted_at=now - timedelta(days=days)))
        db.session.commit()
    result = runner.invoke(args=["purge-tombstones"])
    assert result.exit_code == 0 and "Purged 2 tombstone(s)" in result.output
    with app.app_context():
        kept = db.session.scalars(sa.select(Tombstone.object_id).order_by(Tombstone.object_id)).all()
    assert kept == [10_001, 10_089]


def test_a_page_number_walk_is_as_before_and_its_links_stay_numbered(client, big):
    org, token = big
    response = client.get("/admin/events?per_page=5&page=2", headers=bearer(token))
    assert response.json["meta"] == {"page": 2, "per_page": 5, "total": 12}
    assert links(response) == {"prev": "/admin/events?per_page=5&page=1", "next": "/admin/events?per_page=5&page=3"}
    assert [e["id"] for e in response.json["data"]] == org.event_ids[5:10]


def test_an_event_list_walk_keeps_events_in_start_order(app, client, big):
    org, token = big
    with app.app_context():
        # Start times out of id order: the walk is in start order, ties by id.
        db.session.execute(sa.update(Event).where(Event.id == org.event_ids[0])
                           .values(starts_at=datetime(2030, 1, 1, tzinfo=UTC)))
        db.session.commit()
    walked = ids(walk(client, "/admin/events?per_page=5", token))
    assert walked == org.event_ids[1:] + org.event_ids[:1]
