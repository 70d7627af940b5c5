"""One token's page (usage and history) and revoking with a confirmation, with or without script."""

import re
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from freezegun import freeze_time

from usetix.database.engine import db
from usetix.database.models import ApiToken

from ..helpers import bearer, create_token_via_form, csrf_token_from

LIST = "/admin/settings/api_tokens"
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def only_token_id(app):
    with app.app_context():
        return db.session.scalar(sa.select(ApiToken.id))


def facts(page):
    block = re.search(r'<dl class="facts" id="token-facts">(.*?)</dl>', page, re.S).group(1)
    return {dt: re.sub(r"<[^>]+>", "", dd).strip()
            for dt, dd in re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", block, re.S)}


def history(page):
    block = re.search(r'<table id="token-history">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", block, re.S)]


def test_the_token_page_shows_who_when_expiry_and_usage(app, client, logged_in):
    with freeze_time(START) as clock:
        raw = create_token_via_form(client, description="Mailchimp <sync>", tier="write")
        token_id = only_token_id(app)
        page = client.get(f"{LIST}/{token_id}").text
        assert facts(page) == {
            "Status": "Live", "Tier": "Read + Write",
            "Permissions": "Read + Write: Events: Write · Attendees: Write · Check-in: Write · Webhooks: Write",
            "Events": "All events, future ones too", "Created by": "admin@acme.example",
            "Created": "2026-12-01 09:00 UTC", "Expiry": "Expires in 30 days", "Last used": "Never",
            "Last used from": "—", "Last used with": "—", "Uses": "0",
        }
        assert "<h1>Mailchimp &lt;sync&gt;</h1>" in page
        assert 'title="2026-12-31 09:00 UTC"' in page
        clock.tick(timedelta(hours=2))
        for _ in range(3):
            app.test_client().get("/admin/events", headers={**bearer(raw), "User-Agent": "mailchimp-sync/2.1"},
                                  environ_base={"REMOTE_ADDR": "203.0.113.40"}, buffered=True)
        page = client.get(f"{LIST}/{token_id}").text
    shown = facts(page)
    assert (shown["Last used"], shown["Last used from"], shown["Last used with"], shown["Uses"]) == \
        ("2026-12-01 11:00 UTC", "203.0.113.40", "mailchimp-sync/2.1", "1")  # once a minute: 1 of 3 so far
    assert "approximate" in page
    assert history(page) == [["2026-12-01 09:00 UTC", "Created token", "admin@acme.example", "127.0.0.1"]]
    assert f'href="{LIST}/{token_id}/revoke"' in page


def test_history_lists_revocation_and_expiry(app, client, logged_in):
    with freeze_time(START) as clock:
        create_token_via_form(client)
        token_id = only_token_id(app)
        with app.app_context():
            db.session.execute(sa.update(ApiToken).values(expires_at=START + timedelta(hours=1)))
            db.session.commit()
        clock.tick(timedelta(hours=3))
        page = client.get(f"{LIST}/{token_id}").text
    assert facts(page)["Status"] == "Expired" and facts(page)["Expiry"] == "Expired 2 hours ago"
    assert history(page) == [["2026-12-01 09:00 UTC", "Created token", "admin@acme.example", "127.0.0.1"],
                             ["2026-12-01 10:00 UTC", "Expired", "—", "—"]]
    assert "/revoke" not in page  # nothing left to revoke
    with freeze_time(START + timedelta(minutes=30)):
        create_token_via_form(client, description="Second")
        with app.app_context():
            second = db.session.scalar(sa.select(ApiToken.id).where(ApiToken.description == "Second"))
        csrf = csrf_token_from(client.get(LIST).text)
        client.post(f"{LIST}/{second}/revoke", data={"csrf_token": csrf, "confirm": "yes"})
        page = client.get(f"{LIST}/{second}").text
    assert [row[1] for row in history(page)] == ["Created token", "Revoked token"]
    assert facts(page)["Status"] == "Revoked" and facts(page)["Revoked"] == "2026-12-01 09:30 UTC"


def test_another_accounts_token_page_is_the_same_404_as_a_missing_one(app, client, auth, orgs):
    auth.login(email="admin@globex.example")
    create_token_via_form(client, description="Globex secret sync")
    globex_token = only_token_id(app)
    auth.logout()
    auth.login()
    for suffix in ("", "/revoke"):
        foreign = client.get(f"{LIST}/{globex_token}{suffix}")
        missing = client.get(f"{LIST}/999999{suffix}")
        assert foreign.status_code == missing.status_code == 404
        assert foreign.data == missing.data
        assert "Globex" not in foreign.text


def test_without_script_the_first_click_asks_and_the_second_revokes(app, client, logged_in):
    raw = create_token_via_form(client, description="Nightly export")
    token_id = only_token_id(app)
    listing = client.get(LIST).text
    form = re.search(rf'<form method="post" action="{LIST}/{token_id}/revoke".*?</form>', listing, re.S).group(0)
    # What a browser without script sends: the form's fields as they are (confirm is empty).
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form))
    assert fields.keys() == {"csrf_token", "confirm"} and fields["confirm"] == ""
    asked = client.post(f"{LIST}/{token_id}/revoke", data=fields)
    assert asked.status_code == 200
    assert "<h1>Revoke this token?</h1>" in asked.text and "Nightly export" in asked.text
    assert app.test_client().get("/admin/events", headers=bearer(raw)).status_code == 200  # not yet
    confirm = re.search(rf'<form method="post" action="{LIST}/{token_id}/revoke">.*?</form>', asked.text, re.S)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', confirm.group(0)))
    assert fields["confirm"] == "yes"
    assert f'<a class="button" href="{LIST}">Cancel</a>' in asked.text
    done = client.post(f"{LIST}/{token_id}/revoke", data=fields)
    assert done.status_code == 302 and done.headers["Location"] == LIST
    assert "was revoked" in client.get(LIST).text
    assert app.test_client().get("/admin/events", headers=bearer(raw)).status_code == 401


def test_the_confirmation_page_by_link_and_the_script(app, client, logged_in):
    create_token_via_form(client, description="Linked")
    token_id = only_token_id(app)
    page = client.get(f"{LIST}/{token_id}/revoke")
    assert page.status_code == 200 and "Revoke this token?" in page.text
    with app.app_context():
        assert db.session.get(ApiToken, token_id).revoked_at is None  # a GET never revokes
    with client.get("/static/confirm.js") as response:  # a file response: closed, or it warns
        script = response.text
    assert 'form.elements.confirm.value = "yes"' in script and "window.confirm(form.dataset.confirm)" in script


def test_the_confirmation_still_needs_csrf(app, client, logged_in):
    create_token_via_form(client)
    token_id = only_token_id(app)
    assert client.post(f"{LIST}/{token_id}/revoke", data={"confirm": "yes"}).status_code == 400
    with app.app_context():
        assert db.session.get(ApiToken, token_id).revoked_at is None
