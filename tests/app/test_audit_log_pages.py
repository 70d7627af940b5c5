"""The dashboard audit log's Older/Newer pages (usetix/blueprints/dashboard/audit_log.py):
walked either way they show every record of the account exactly once, in order, also when
records share a timestamp and when new ones arrive during the walk; a cursor the list did
not make is a 400 page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from usetix.database.engine import db
from usetix.database.models import ApiToken, AuditEvent

from ..helpers import issue

LOG = "/admin/settings/audit_log"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RECORDS = 80  # a little over three pages of 25


def add_records(app, org, count: int, start: datetime = T0, action: str = "event.updated") -> None:
    """``count`` records on ``org``'s first token, three at a time sharing one timestamp."""
    with app.app_context():
        token = db.session.scalars(sa.select(ApiToken).where(ApiToken.account_id == org.account_id)).first()
        db.session.execute(sa.insert(AuditEvent), [
            {"account_id": org.account_id, "admin_id": None, "actor": "token", "action": action,
             "token_id": token.id, "token_description": token.description, "token_tier": token.tier,
             "created_at": start + timedelta(seconds=n // 3)}
            for n in range(count)
        ])
        db.session.commit()


def newest_first(app, account_id: int, *where) -> list[int]:
    with app.app_context():
        return list(db.session.scalars(
            sa.select(AuditEvent.id).where(AuditEvent.account_id == account_id, *where)
            .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())))


def ids(page: str) -> list[int]:
    return [int(x) for x in re.findall(r'data-audit-id="(\d+)"', page)]


def rel(page: str, name: str) -> str | None:
    found = re.search(rf'<a rel="{name}" href="([^"]+)"', page)
    return found.group(1).replace("&amp;", "&") if found else None


def walk(client, url: str, direction: str) -> list[list[int]]:
    """The pages from ``url`` following ``direction`` ("next": older, "prev": newer) to the end."""
    pages = []
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200
        pages.append(ids(response.text))
        url = rel(response.text, direction)
        assert len(pages) < 100
    return pages


def test_walking_older_then_newer_shows_every_record_once_in_order(app, logged_in, orgs):
    issue(app, orgs["acme"], "write")
    issue(app, orgs["globex"], "write")
    add_records(app, orgs["acme"], RECORDS)
    add_records(app, orgs["globex"], 30)  # another account's: never shown
    expected = newest_first(app, orgs["acme"].account_id)
    older = walk(logged_in, LOG, "next")
    assert [row for page in older for row in page] == expected
    assert [len(page) for page in older] == [25, 25, 25, len(expected) - 75]
    # Back from the oldest page: the same pages, newest last.
    last = logged_in.get(LOG).text
    for _ in range(len(older) - 1):
        last = logged_in.get(rel(last, "next")).text
    newer = walk(logged_in, rel(last, "prev"), "prev")
    assert newer == list(reversed(older[:-1]))


def test_records_added_during_the_walk_do_not_shift_it(app, logged_in, orgs):
    issue(app, orgs["acme"], "write")
    add_records(app, orgs["acme"], RECORDS)
    expected = newest_first(app, orgs["acme"].account_id)
    first = logged_in.get(LOG).text
    add_records(app, orgs["acme"], 10, start=T0 + timedelta(days=1))  # newer than anything shown
    seen = ids(first) + [row for page in walk(logged_in, rel(first, "next"), "next") for row in page]
    assert seen == expected


def test_a_filtered_walk_keeps_its_filter(app, logged_in, orgs):
    issue(app, orgs["acme"], "write")
    add_records(app, orgs["acme"], 40, action="event.updated")
    add_records(app, orgs["acme"], 40, action="attendee.checked_in")
    expected = newest_first(app, orgs["acme"].account_id, AuditEvent.action == "attendee.checked_in")
    pages = walk(logged_in, f"{LOG}?action=attendee.checked_in", "next")
    assert [row for page in pages for row in page] == expected and len(pages) == 2


def test_a_cursor_the_list_did_not_make_is_a_400_page(app, client, auth, orgs):
    issue(app, orgs["acme"], "write")
    issue(app, orgs["globex"], "write")
    add_records(app, orgs["acme"], 40)
    add_records(app, orgs["globex"], 40)
    auth.login("admin@globex.example")
    globex_older = rel(client.get(LOG).text, "next")
    auth.logout()
    auth.login()
    first = client.get(LOG).text
    older = rel(first, "next")
    cursor = older.partition("cursor=")[2]
    edited = cursor[:-3] + ("AAA" if not cursor.endswith("AAA") else "BBB")
    moved = cursor.replace(".", "1.", 1)  # another position, the signature kept
    filtered_cursor = rel(client.get(f"{LOG}?action=event.updated").text, "next").partition("cursor=")[2]
    for url in (f"{LOG}?cursor={edited}", f"{LOG}?cursor={moved}", f"{LOG}?cursor={cursor[:20]}",
                f"{LOG}?cursor=", f"{LOG}?cursor=%00", f"{LOG}?cursor={'9' * 5000}",
                f"{LOG}?action=event.updated&cursor={cursor}",  # made without the filter
                f"{LOG}?cursor={filtered_cursor}",  # made with it
                globex_older):  # another account's
        response = client.get(url)
        assert response.status_code == 400, url
        assert "text/html" in response.content_type and "not valid" in response.text
        assert ids(response.text) == []
    assert client.get(older).status_code == 200


def test_an_old_page_number_link_shows_the_newest_page(app, logged_in, orgs):
    issue(app, orgs["acme"], "write")
    add_records(app, orgs["acme"], 40)
    assert ids(logged_in.get(f"{LOG}?page=2").text) == newest_first(app, orgs["acme"].account_id)[:25]
