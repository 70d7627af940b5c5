"""Least-privilege tokens (issue 22): every API operation by preset by method, the event
restriction, the 403 that names the permission, and what it costs (no statement more).

On SQLite, and on PostgreSQL in CI's second pass (USETIX_TEST_DATABASE_URL)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from usetix.auth.token_service import issue_token
from usetix.core.permissions import BadPermissions, Permissions, all_scopes
from usetix.database.engine import db
from usetix.database.models import Admin, ApiToken, Attendee, AuditEvent, Event, Tombstone, utcnow

from ..helpers import NEW_EVENT, bearer, csrf_token_from, issue, links, make_org, walk
from ..queries import recorded_queries

# The presets of the create form, and custom permissions, as what each may do.
TOKENS = {
    "read": ("read", None),
    "write": ("write", None),
    "check_in": ("check_in", None),
    "custom_events_read": ("custom", Permissions("read", "none", "none")),
    "custom_attendees_write": ("custom", Permissions("none", "write", "none")),
}
# What each may do, written out (not computed by the code under test): the tier, and the
# scopes held (write holds read).
HOLDS = {
    "read": ("read", {"events:read", "attendees:read"}),
    "write": ("write", {"events:read", "events:write", "attendees:read", "attendees:write", "check_in:write",
                        "webhooks:read", "webhooks:write"}),
    "check_in": ("write", {"events:read", "check_in:write"}),
    "custom_events_read": ("read", {"events:read"}),
    "custom_attendees_write": ("write", {"attendees:read", "attendees:write"}),
}

MERGE = "application/merge-patch+json"
# Every operation of the API: method, path ({e}: an event with attendees, {empty}: one
# without, {a}: an attendee of {e}, {checked}: one checked in), body, the scope it needs
# and its status when allowed.
OPERATIONS = [
    ("GET", "/admin/account", None, None, 200),
    ("GET", "/admin/events", None, "events:read", 200),
    ("POST", "/admin/events", NEW_EVENT, "events:write", 201),
    ("GET", "/admin/events/{e}", None, "events:read", 200),
    ("PATCH", "/admin/events/{e}", {"venue": "Annex"}, "events:write", 200),
    ("DELETE", "/admin/events/{empty}", None, "events:write", 204),
    ("GET", "/admin/events/{e}/attendees", None, "attendees:read", 200),
    ("POST", "/admin/events/{e}/attendees", {"name": "Ada", "email": "ada@example.com", "ticket_type": "VIP"},
     "attendees:write", 201),
    ("GET", "/admin/events/{e}/attendees/{a}", None, "attendees:read", 200),
    ("PATCH", "/admin/events/{e}/attendees/{a}", {"ticket_type": "VIP"}, "attendees:write", 200),
    ("DELETE", "/admin/events/{e}/attendees/{a}", None, "attendees:write", 204),
    ("POST", "/admin/events/{e}/attendees/{a}/check_in", None, "check_in:write", 201),
    ("DELETE", "/admin/events/{e}/attendees/{checked}/check_in", None, "check_in:write", 204),
    # Issue 23: the door (a code that exists nowhere: the redeem's 404 unknown_code, the batch's result).
    ("POST", "/admin/events/{e}/check_ins", {"code": "NO-SUCH-TICKET"}, "check_in:write", 404),
    ("POST", "/admin/events/{e}/check_ins/batch",
     {"scans": [{"nonce": "p-1", "code": "NO-SUCH-TICKET", "scanned_at": "2026-01-01T00:00:00Z"}]},
     "check_in:write", 200),
    ("POST", "/admin/events/{e}/attendees/{a}/reissue_ticket", None, "attendees:write", 200),
    ("GET", "/admin/events/{e}/check_in_status", None, "events:read", 200),
    ("GET", "/admin/events/{e}/scans", None, "attendees:read", 200),
    ("GET", "/admin/webhooks", None, "webhooks:read", 200),
    ("POST", "/admin/webhooks", {"url": "https://hooks.example.com/usetix", "events": ["event.created"]},
     "webhooks:write", 201),
]
# HEAD is GET without a body: every GET again.
OPERATIONS += [("HEAD", path, None, needed, status) for method, path, _, needed, status in OPERATIONS
               if method == "GET"]


def expected_status(token: str, method: str, needed: str | None, allowed: int) -> int:
    tier, holds = HOLDS[token]
    if tier == "read" and method not in ("GET", "HEAD"):
        return 401  # the public document's tier rule
    if needed is not None and needed not in holds:
        return 403
    return allowed


def make_token(app, org, name: str, **options) -> str:
    preset, chosen = TOKENS[name]
    return issue(app, org, preset, permissions=chosen, **options)


@pytest.fixture
def scene(app, orgs):
    """Acme's ids: an event with attendees, an empty one, an attendee, one checked in."""
    acme = orgs["acme"]
    with app.app_context():
        empty = Event(account_id=acme.account_id, title="Empty", venue="Hall", status="draft",
                      starts_at=datetime(2026, 7, 1, tzinfo=UTC), ends_at=datetime(2026, 7, 1, 2, tzinfo=UTC))
        db.session.add(empty)
        checked = db.session.get(Attendee, acme.attendee_ids[1])
        checked.checked_in, checked.checked_in_at = True, utcnow()
        db.session.commit()
        empty_id = empty.id
    return {"e": acme.event_ids[0], "empty": empty_id, "a": acme.attendee_ids[0], "checked": acme.attendee_ids[1]}


def send(client, method: str, path: str, token: str, body=None, **headers):
    content_type = MERGE if method == "PATCH" else "application/json"
    return client.open(path, method=method, headers={**bearer(token), **headers},
                       data=None if body is None else json.dumps(body),
                       content_type=content_type if body is not None else None)


@pytest.mark.parametrize("token_name", list(TOKENS))
@pytest.mark.parametrize(("method", "template", "body", "needed", "allowed"), OPERATIONS,
                         ids=[f"{o[0]} {o[1]}" for o in OPERATIONS])
def test_every_operation_with_every_preset(app, client, orgs, scene, token_name, method, template, body, needed,
                                           allowed):
    raw = make_token(app, orgs["acme"], token_name)
    response = send(client, method, template.format(**scene), raw, body)
    status = expected_status(token_name, method, needed, allowed)
    assert response.status_code == status, response.data
    challenge = response.headers.get("WWW-Authenticate")
    if status == 401:
        assert challenge == 'Bearer realm="Usetix", error="insufficient_scope"'  # as before: no scope named
        assert method == "HEAD" or response.json["error"] == "insufficient_scope"
    elif status == 403:
        assert challenge == f'Bearer realm="Usetix", error="insufficient_scope", scope="{needed}"'
        if method != "HEAD":
            assert response.json["error"] == "insufficient_scope" and response.json["required"] == needed
            assert needed in response.json["message"]
    else:
        assert challenge is None
        assert "RateLimit-Limit" in response.headers  # an authenticated answer
    if token_name == "check_in" and response.data:
        assert b"email" not in response.data  # the door never sees contact data


def test_a_check_in_token_at_the_door(app, client, orgs, scene):
    """The issue's own cases: checks in on its event without seeing an email; 403
    events:write on PATCH, 403 attendees:read on the list, 404 outside its restriction."""
    acme = orgs["acme"]
    raw = issue(app, acme, "check_in", event_ids=[scene["e"]])
    checked = send(client, "POST", "/admin/events/{e}/attendees/{a}/check_in".format(**scene), raw)
    assert checked.status_code == 201
    assert checked.json["data"]["checked_in"] is True and checked.json["data"]["name"] == "Guest 0"
    assert "email" not in checked.json["data"]
    patched = send(client, "PATCH", "/admin/events/{e}".format(**scene), raw, {"venue": "Annex"})
    assert patched.status_code == 403 and patched.json["required"] == "events:write"
    listed = send(client, "GET", "/admin/events/{e}/attendees".format(**scene), raw)
    assert listed.status_code == 403 and listed.json["required"] == "attendees:read"
    other = acme.attendee_ids[2]  # an attendee of the second event, outside the restriction
    outside = send(client, "POST", f"/admin/events/{acme.event_ids[1]}/attendees/{other}/check_in", raw)
    assert outside.status_code == 404 and outside.json["error"] == "not_found"
    assert send(client, "GET", "/admin/events", raw).json["data"][0]["id"] == scene["e"]
    with app.app_context():  # the refused check-in changed nothing
        assert db.session.get(Attendee, other).checked_in is False


def test_a_permission_refusal_is_checked_before_the_body(app, client, orgs, scene):
    raw = issue(app, orgs["acme"], "check_in")
    response = client.patch("/admin/events/{e}".format(**scene), data=b"{not json", headers=bearer(raw),
                            content_type="text/plain")
    assert response.status_code == 403 and response.json["required"] == "events:write"


def test_a_read_tokens_write_is_still_401(app, client, orgs, scene):
    raw = issue(app, orgs["acme"], "read", event_ids=[scene["e"]])
    response = send(client, "POST", "/admin/events/{e}/attendees".format(**scene), raw,
                    {"name": "Ada", "email": "ada@example.com", "ticket_type": "VIP"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="Usetix", error="insufficient_scope"'
    assert response.json == {"error": "insufficient_scope",
                             "message": "A read token allows GET and HEAD only, not POST."}


# -- the event restriction ------------------------------------------------------------------

RESTRICTED_PATHS = [
    ("GET", "/admin/events/{event}", None),
    ("PATCH", "/admin/events/{event}", {"venue": "Annex"}),
    ("DELETE", "/admin/events/{event}", None),
    ("GET", "/admin/events/{event}/attendees", None),
    ("POST", "/admin/events/{event}/attendees", {"name": "Ada", "email": "ada@example.com", "ticket_type": "VIP"}),
    ("GET", "/admin/events/{event}/attendees/{attendee}", None),
    ("PATCH", "/admin/events/{event}/attendees/{attendee}", {"ticket_type": "VIP"}),
    ("DELETE", "/admin/events/{event}/attendees/{attendee}", None),
    ("POST", "/admin/events/{event}/attendees/{attendee}/check_in", None),
    ("DELETE", "/admin/events/{event}/attendees/{attendee}/check_in", None),
]


@pytest.mark.parametrize(("method", "template", "body"), RESTRICTED_PATHS,
                         ids=[f"{m} {t}" for m, t, _ in RESTRICTED_PATHS])
def test_an_event_outside_the_restriction_is_exactly_a_missing_one(app, client, orgs, method, template, body):
    acme = orgs["acme"]
    # Two tokens alike at one frozen instant, so even the rate-limit headers match.
    first = issue(app, acme, "write", event_ids=[acme.event_ids[0]])
    second = issue(app, acme, "write", event_ids=[acme.event_ids[0]])
    with freeze_time(datetime(2026, 6, 1, 9, 0, tzinfo=UTC)):
        outside = send(client, method, template.format(event=acme.event_ids[1], attendee=acme.attendee_ids[2]),
                       first, body)
        missing = send(client, method, template.format(event=987654, attendee=acme.attendee_ids[2]), second, body)
    assert outside.status_code == missing.status_code == 404
    assert outside.data == missing.data
    assert sorted(outside.headers.items()) == sorted(missing.headers.items())
    with app.app_context():  # nothing changed on the event outside
        assert db.session.get(Event, acme.event_ids[1]).venue == "Main Hall"
        assert db.session.get(Attendee, acme.attendee_ids[2]).checked_in is False


def test_lists_show_only_the_allowed_events_tombstones_too(app, client, orgs):
    acme = orgs["acme"]
    allowed = [acme.event_ids[0], acme.event_ids[2]]
    with app.app_context():  # a deleted event outside the restriction, and one inside
        for event_id in (acme.event_ids[1], acme.event_ids[2]):
            db.session.add(Tombstone(account_id=acme.account_id, object_type="event", object_id=event_id + 1000,
                                     deleted_at=utcnow()))
        db.session.commit()
    raw = issue(app, acme, "read", event_ids=allowed)
    listed = send(client, "GET", "/admin/events", raw)
    assert [event["id"] for event in listed.json["data"]] == allowed
    assert listed.json["meta"]["total"] == 2
    with_deleted = send(client, "GET", "/admin/events?include_deleted=true", raw).json["data"]
    assert [row["id"] for row in with_deleted] == allowed  # the tombstones are of other ids
    since = send(client, "GET", "/admin/events?updated_since=2000-01-01T00:00:00Z", raw).json["data"]
    assert [event["id"] for event in since] == allowed
    everything = send(client, "GET", "/admin/events", issue(app, acme, "read")).json["data"]
    assert [event["id"] for event in everything] == acme.event_ids


def test_a_restricted_list_shows_the_tombstone_of_an_allowed_event(app, client, orgs):
    acme = orgs["acme"]
    raw = issue(app, acme, "write", event_ids=[acme.event_ids[0], acme.event_ids[1]])
    event_id = acme.event_ids[1]
    with app.app_context():  # the event's attendees go, so it can be deleted
        db.session.execute(sa.delete(Attendee).where(Attendee.event_id == event_id))
        db.session.commit()
    assert send(client, "DELETE", f"/admin/events/{event_id}", raw).status_code == 204
    rows = send(client, "GET", "/admin/events?include_deleted=true", raw).json["data"]
    assert [(row["id"], row.get("deleted", False)) for row in rows] == [(acme.event_ids[0], False), (event_id, True)]


def _rows(pages: list[dict]) -> list[tuple[int, bool]]:
    return [(row["id"], row.get("deleted", False)) for page in pages for row in page["data"]]


@pytest.fixture
def eight(app, orgs):
    """An account of 8 events without attendees (each may be deleted), its write token, and
    a read token restricted to the 2nd, 5th and 8th event."""
    with app.app_context():
        org = make_org("Eight", "admin@eight.example", events=8, attendees_per_event=0)
    allowed = org.event_ids[1::3]
    return org, issue(app, org, "write"), issue(app, org, "read", event_ids=allowed), allowed


def test_a_cursor_made_for_every_event_shows_a_restricted_token_only_its_events(app, client, eight):
    """A cursor names the list, the account and the position, not the token: replayed by a
    restricted token of the account, its pages are still that token's restricted list."""
    org, every, some, _ = eight
    ids = org.event_ids
    for event_id in (ids[3], ids[7]):  # a deletion outside the restriction, and one inside
        assert send(client, "DELETE", f"/admin/events/{event_id}", every).status_code == 204
    first = send(client, "GET", "/admin/events?per_page=2", every)
    assert [event["id"] for event in first.json["data"]] == ids[:2]
    assert _rows(walk(client, links(first)["next"], some)) == [(ids[4], False)]
    assert _rows(walk(client, links(first)["next"], every)) == [(ids[2], False), (ids[4], False), (ids[5], False),
                                                                (ids[6], False)]
    first = send(client, "GET", "/admin/events?per_page=2&include_deleted=true", every)
    assert _rows(walk(client, links(first)["next"], some)) == [(ids[4], False), (ids[7], True)]
    # And the restricted token's own walk, from its first page, with and without tombstones.
    assert _rows(walk(client, "/admin/events?per_page=1", some)) == [(ids[1], False), (ids[4], False)]
    assert _rows(walk(client, "/admin/events?per_page=1&include_deleted=true", some)) == [
        (ids[1], False), (ids[4], False), (ids[7], True)]


@pytest.mark.app_config(SYNC_SETTLE_SECONDS=0)  # the sync cursor right behind the last change
def test_a_sync_cursor_made_for_every_event_syncs_a_restricted_token_only_its_events(app, client, eight):
    org, every, some, allowed = eight
    ids = org.event_ids
    pages = walk(client, "/admin/events?updated_since=1970-01-01T00:00:00Z&include_deleted=true&per_page=3", every)
    since = pages[-1]["meta"]["sync_cursor"]
    restricted_sync = walk(client, "/admin/events?updated_since=1970-01-01T00:00:00Z&include_deleted=true"
                                   "&per_page=2", some)
    assert sorted(_rows(restricted_sync)) == [(event_id, False) for event_id in allowed]
    # Changed and deleted after the sync: inside the restriction and outside it.
    for event_id in (ids[1], ids[2]):
        assert send(client, "PATCH", f"/admin/events/{event_id}", every, {"venue": "Annex"}).status_code == 200
    for event_id in (ids[3], ids[4]):
        assert send(client, "DELETE", f"/admin/events/{event_id}", every).status_code == 204
    replayed = walk(client, f"/admin/events?cursor={since}&per_page=1", some)
    assert _rows(replayed) == [(ids[1], False), (ids[4], True)]
    assert "sync_cursor" in replayed[-1]["meta"]
    assert _rows(walk(client, f"/admin/events?cursor={since}", every)) == [
        (ids[1], False), (ids[2], False), (ids[3], True), (ids[4], True)]


def test_a_restricted_token_cannot_create_events(app, client, orgs):
    raw = issue(app, orgs["acme"], "write", event_ids=[orgs["acme"].event_ids[0]])
    response = send(client, "POST", "/admin/events", raw, NEW_EVENT)
    assert response.status_code == 403 and response.json["error"] == "restricted_token"
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Event)) == 6


def test_a_restriction_only_takes_the_accounts_own_events(app, orgs):
    with app.app_context():
        admin = db.session.get(Admin, orgs["acme"].admin_id)
        with pytest.raises(BadPermissions):
            issue_token(admin, "x", "read", None, event_ids=[orgs["globex"].event_ids[0]])
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0


# -- made once, shown everywhere -----------------------------------------------------------

def test_a_token_without_any_permission_cannot_be_made(app, orgs):
    with app.app_context():
        admin = db.session.get(Admin, orgs["acme"].admin_id)
        with pytest.raises(BadPermissions):
            issue_token(admin, "nothing", "custom", None, permissions=Permissions("none", "none", "none"))
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0


def test_the_account_shows_the_tokens_permissions_and_events(app, client, orgs):
    acme = orgs["acme"]
    door = issue(app, acme, "check_in", event_ids=[acme.event_ids[1], acme.event_ids[0]])
    token = send(client, "GET", "/admin/account", door).json["data"]["token"]
    assert token["permissions"] == {"events": "read", "attendees": "none", "check_in": "write",
                                    "webhooks": "none"}
    assert token["events"] == sorted(acme.event_ids[:2]) and token["tier"] == "write"
    custom = issue(app, acme, "custom", permissions=Permissions("read", "none", "none"))
    token = send(client, "GET", "/admin/account", custom).json["data"]["token"]
    assert token["permissions"] == {"events": "read", "attendees": "none", "check_in": "none",
                                    "webhooks": "none"}
    assert token["events"] is None and token["tier"] == "read"


def test_the_creation_audit_record_keeps_them(app, orgs):
    acme = orgs["acme"]
    issue(app, acme, "check_in", event_ids=[acme.event_ids[0]])
    with app.app_context():
        record = db.session.scalar(sa.select(AuditEvent))
        assert record.action == "token.created"
        assert record.token_permissions == "events:read attendees:none check_in:write webhooks:none"
        assert json.loads(record.token_event_ids) == [acme.event_ids[0]]


# -- what it costs -----------------------------------------------------------------------

def _selects(app, send_request) -> int:
    send_request()  # the usage write of the first request is not what is counted
    with recorded_queries(app) as statements:
        response = send_request()
    assert not [s for s in statements if not s.lstrip().upper().startswith("SELECT")]
    return len(statements), response


def test_a_restricted_list_costs_the_statements_of_a_list(app, client, orgs):
    acme = orgs["acme"]
    every = issue(app, acme, "read")
    some = issue(app, acme, "read", event_ids=[acme.event_ids[0]])
    plain, _ = _selects(app, lambda: send(client, "GET", "/admin/events", every))
    restricted, response = _selects(app, lambda: send(client, "GET", "/admin/events", some))
    assert plain == restricted == 2  # the token (with its permissions and events), the page
    assert [event["id"] for event in response.json["data"]] == [acme.event_ids[0]]


def test_a_permission_refusal_costs_what_a_tier_refusal_costs(app, client, orgs):
    acme = orgs["acme"]
    read, door = issue(app, acme, "read"), issue(app, acme, "check_in")
    tier, tier_answer = _selects(app, lambda: send(client, "POST", "/admin/events", read, NEW_EVENT))
    permission, permission_answer = _selects(app, lambda: send(client, "GET", f"/admin/events/{acme.event_ids[0]}"
                                                                              "/attendees", door))
    assert tier_answer.status_code == 401 and permission_answer.status_code == 403
    assert permission == tier == 1  # the token's lookup, nothing more
    restricted = issue(app, acme, "read", event_ids=[acme.event_ids[0]])
    outside, outside_answer = _selects(app, lambda: send(client, "GET", f"/admin/events/{acme.event_ids[1]}",
                                                         restricted))
    assert outside_answer.status_code == 404 and outside == 1


# -- the OpenAPI document ----------------------------------------------------------------

def test_every_route_declares_the_scope_the_document_states(app, client):
    document = client.get("/admin/openapi.json", headers={"Accept": "application/json"}).json
    declared = {}
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api."):
            continue
        view = app.view_functions[rule.endpoint]
        assert hasattr(view, "required_scope"), f"{rule.endpoint} declares no permission (@requires)"
        path = "/admin" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/admin"))
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            declared[(method.lower(), path)] = view.required_scope
    documented = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "patch", "delete", "put") and operation.get("security") != []:
                [requirement] = operation["security"]
                assert list(requirement) == ["bearerAuth"]  # the scheme the document defines
                assert set(requirement["bearerAuth"]) <= set(all_scopes())
                documented[(method, path)] = requirement["bearerAuth"][0] if requirement["bearerAuth"] else None
                assert ("403" in operation["responses"]) == (documented[(method, path)] is not None)
    assert declared == documented
    assert list(document["components"]["securitySchemes"]) == ["bearerAuth"]
    scheme = document["components"]["securitySchemes"]["bearerAuth"]["description"]
    assert "Check-in only" in scheme and "check_in" in scheme and "restricted_token" in scheme


# -- the dashboard's form (without script: the browser test is tests/live/test_browser.py) ---

def _form(client):
    page = client.get("/admin/settings/api_tokens/new")
    nonce = re.search(r'name="nonce"[^>]*value="([^"]+)"', page.text).group(1)
    return page, {"csrf_token": csrf_token_from(page.text), "nonce": nonce, "description": "Door",
                  "expiration": "30"}


def test_the_form_offers_presets_custom_permissions_and_events(app, client, logged_in, orgs):
    page, _ = _form(client)
    for value in ("read", "write", "check_in", "custom"):
        assert f'name="tier" type="radio" value="{value}"' in page.text or f'value="{value}"' in page.text
    assert "Check-in only — for the door" in page.text
    for name in ("perm_events", "perm_attendees", "perm_check_in"):
        assert f'name="{name}"' in page.text
    for event_id in orgs["acme"].event_ids:
        assert f'name="events" type="checkbox" value="{event_id}"' in page.text
    assert not [event_id for event_id in orgs["globex"].event_ids if f'value="{event_id}"' in page.text]


def test_the_form_makes_a_restricted_custom_token(app, client, logged_in, orgs):
    acme = orgs["acme"]
    _, data = _form(client)
    data |= {"tier": "custom", "perm_events": "read", "perm_attendees": "none", "perm_check_in": "write",
             "events": [str(acme.event_ids[1])]}
    response = client.post("/admin/settings/api_tokens", data=data)
    assert response.status_code == 200 and 'id="token-value"' in response.text
    with app.app_context():
        token = db.session.scalar(sa.select(ApiToken))
        assert token.permissions == Permissions("read", "none", "write") and token.tier == "write"
        assert token.restricted_to == [acme.event_ids[1]]
    listed = client.get("/admin/settings/api_tokens").text
    assert "Check-in only" in listed and "1 event only" in listed


def test_the_form_refuses_a_token_without_permissions(app, client, logged_in):
    _, data = _form(client)
    data |= {"tier": "custom", "perm_events": "none", "perm_attendees": "none", "perm_check_in": "none"}
    response = client.post("/admin/settings/api_tokens", data=data)
    assert response.status_code == 400 and "at least one permission" in response.text
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0


def test_the_form_refuses_another_accounts_event(app, client, logged_in, orgs):
    _, data = _form(client)
    data |= {"tier": "read", "events": [str(orgs["globex"].event_ids[0])]}
    response = client.post("/admin/settings/api_tokens", data=data)
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0
