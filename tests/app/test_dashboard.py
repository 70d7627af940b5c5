"""Dashboard shell and events pages, scoped to the admin's account."""

import re

from ..helpers import make_org


def test_events_are_the_accounts_own_soonest_first(client, logged_in, orgs):
    page = client.get("/admin/events")
    assert page.status_code == 200
    ids = [int(i) for i in re.findall(r'data-event-id="(\d+)"', page.text)]
    assert ids == orgs["acme"].event_ids
    assert "Globex" not in page.text


def test_shell_shows_nav_email_and_logout(client, logged_in):
    page = client.get("/admin/events")
    assert "Settings → API Tokens" in page.text
    assert "admin@acme.example" in page.text
    assert 'action="/logout"' in page.text


def test_events_paginate(app, client, auth):
    with app.app_context():
        make_org("Big Events", "admin@big.example", events=30, attendees_per_event=0)
    auth.login(email="admin@big.example")
    first = client.get("/admin/events")
    second = client.get("/admin/events?page=2")
    first_ids = re.findall(r'data-event-id="(\d+)"', first.text)
    second_ids = re.findall(r'data-event-id="(\d+)"', second.text)
    assert len(first_ids) == 25 and len(second_ids) == 5
    assert not set(first_ids) & set(second_ids)
    assert 'rel="next"' in first.text and 'rel="prev"' in second.text


def test_event_page_lists_its_attendees(client, logged_in, orgs):
    event_id = orgs["acme"].event_ids[0]
    page = client.get(f"/admin/events/{event_id}")
    assert page.status_code == 200
    assert len(re.findall(r"data-attendee-id=", page.text)) == 2


def test_another_accounts_event_is_404_like_a_missing_one(client, logged_in, orgs):
    foreign = client.get(f"/admin/events/{orgs['globex'].event_ids[0]}")
    missing = client.get("/admin/events/999999")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.data == missing.data


def test_globex_admin_sees_only_globex(client, auth, orgs):
    auth.login(email="admin@globex.example")
    page = client.get("/admin/events")
    ids = [int(i) for i in re.findall(r'data-event-id="(\d+)"', page.text)]
    assert ids == orgs["globex"].event_ids
    assert client.get(f"/admin/events/{orgs['acme'].event_ids[0]}").status_code == 404


def test_admin_root_goes_to_events(client, logged_in):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/events"
