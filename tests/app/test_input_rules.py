"""Input rules shared by every endpoint: how deeply a JSON body may nest
(usetix/core/json_nesting.py), and which characters text may hold
(usetix/core/printable_text.py), on the API and the dashboard's forms alike."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from usetix.core.json_nesting import MAX_JSON_DEPTH
from usetix.core.printable_text import PRINTABLE_PATTERN, refused_character
from usetix.database.engine import db
from usetix.database.models import ApiToken, Event

from ..helpers import NONCE_FIELD, PASSWORD, bearer, csrf_token_from, issue

NEW_EVENT = {"title": "Launch party", "starts_at": "2026-09-01T18:00:00+02:00", "ends_at": "2026-09-01T23:00:00+02:00",
             "venue": "Rooftop"}


def nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


# --- The nesting limit on every JSON endpoint -------------------------------------------------------

def test_the_api_refuses_a_body_nested_past_the_limit_as_invalid_json(app, client, write_token, orgs):
    headers = bearer(write_token)
    for depth in (MAX_JSON_DEPTH + 1, 973, 100_000):
        body = b'{"title": ' + nested(depth - 1) + b"}"  # the object is a level too
        response = client.post("/admin/events", headers=headers, data=body, content_type="application/json")
        assert response.status_code == 400, depth
        assert response.json["error"] == "invalid_json"
        assert str(MAX_JSON_DEPTH) in response.json["message"]
    # Within the limit the body is parsed, and refused for what it says instead.
    response = client.post("/admin/events", headers=headers, data=b'{"title": ' + nested(MAX_JSON_DEPTH - 1) + b"}",
                           content_type="application/json")
    assert response.status_code == 422 and response.json["error"] == "invalid_body"
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Event)) == 6  # nothing new


def test_a_merge_patch_nested_past_the_limit_is_refused_too(client, write_token, orgs):
    response = client.patch(f"/admin/events/{orgs['acme'].event_ids[0]}", headers=bearer(write_token),
                            data=b'{"venue": ' + nested(973) + b"}", content_type="application/merge-patch+json")
    assert response.status_code == 400 and response.json["error"] == "invalid_json"


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_the_leak_report_refuses_a_body_nested_past_the_limit_as_invalid_json(app, client, orgs, content_type):
    raw = issue(app, orgs["acme"])
    for depth in (MAX_JSON_DEPTH + 1, 973, 100_000):
        body = b'{"credentials": ["' + raw.encode() + b'"], "x": ' + nested(depth - 1) + b"}"
        response = client.post("/admin/credentials/revoke", data=body, headers={"Content-Type": content_type})
        assert response.status_code == 400, depth
        assert response.mimetype == "application/json"
        assert response.json["error"] == "invalid_json"
        assert str(MAX_JSON_DEPTH) in response.json["message"]
    assert client.get("/admin/account", headers=bearer(raw)).status_code == 200  # nothing was revoked
    # Within the limit the report is read as before.
    body = b'{"credentials": ["' + raw.encode() + b'"], "x": ' + nested(MAX_JSON_DEPTH - 1) + b"}"
    assert client.post("/admin/credentials/revoke", data=body,
                       headers={"Content-Type": content_type}).status_code == 202
    assert client.get("/admin/account", headers=bearer(raw)).status_code == 401


# --- The text rule ----------------------------------------------------------------------------------

ALLOWED = ["Synchro Müller – 日本 ✓", "مزامنة", "שלום\u200f!", "\u061cعربي", "a\u200eb", "👩\u200d💻 sync",
           "<b>&amp;</b>", "\u00a0no-break space", "\u00a0"]


def test_the_openapi_document_states_the_rule(client):
    schemas = client.get("/admin/openapi.json").json["components"]["schemas"]
    for model, field in (("EventCreate", "title"), ("EventPatch", "venue"), ("AttendeeCreate", "name"),
                         ("AttendeePatch", "ticket_type")):
        properties = schemas[model]["properties"][field]
        text = properties.get("anyOf", [properties])[0]
        assert text["pattern"] == PRINTABLE_PATTERN, (model, field)


API_CHARACTERS = ["\x85", "\u2028", "\u202e", "\u2066", "\x00", "\n"]


@pytest.mark.parametrize("character", API_CHARACTERS)
def test_api_text_fields_refuse_the_characters_the_forms_refuse(app, client, write_token, orgs, character):
    acme = orgs["acme"]
    headers = bearer(write_token)
    response = client.post("/admin/events", headers=headers,
                           json={**NEW_EVENT, "title": f"Launch{character}party", "venue": f"{character}Roof"})
    assert response.status_code == 422
    errors = {error["field"]: error for error in response.json["errors"]}
    assert set(errors) == {"title", "venue"}
    assert errors["title"]["code"] == "refused_character"
    assert f"U+{ord(character):04X}" in errors["title"]["message"]
    response = client.patch(f"/admin/events/{acme.event_ids[0]}", headers=headers,
                            json={"title": f"gnitekram{character}"})
    assert response.status_code == 422 and response.json["errors"][0]["field"] == "title"
    response = client.post(f"/admin/events/{acme.event_ids[0]}/attendees", headers=headers,
                           json={"name": f"Ada{character}", "email": f"ada{character}@example.com",
                                 "ticket_type": f"VIP{character}"})
    assert response.status_code == 422
    assert {error["field"] for error in response.json["errors"]} == {"name", "email", "ticket_type"}
    response = client.patch(f"/admin/events/{acme.event_ids[0]}/attendees/{acme.attendee_ids[0]}",
                            headers=headers, json={"ticket_type": f"{character}General"})
    assert response.status_code == 422 and response.json["errors"][0]["field"] == "ticket_type"
    with app.app_context():
        titles = db.session.scalars(sa.select(Event.title)).all()
    assert not any(refused_character(title) for title in titles)


@pytest.mark.parametrize("text", ALLOWED[:4])
def test_api_text_fields_take_any_script(client, write_token, orgs, text):
    response = client.post("/admin/events", headers=bearer(write_token), json={**NEW_EVENT, "title": text})
    assert response.status_code == 201 and response.json["data"]["title"] == text


def post_token_form(client, description: str):
    form = client.get("/admin/settings/api_tokens/new")
    return client.post("/admin/settings/api_tokens", data={
        "description": description, "tier": "read", "csrf_token": csrf_token_from(form.text),
        "nonce": NONCE_FIELD.search(form.text).group(1)})


@pytest.mark.parametrize("character", API_CHARACTERS)
def test_a_token_description_refuses_what_the_api_refuses(app, logged_in, character):
    response = post_token_form(logged_in, f"Mailchimp{character}sync")
    assert response.status_code == 400
    assert "cannot contain control characters, line separators or bidirectional overrides" in response.text
    with app.app_context():
        assert db.session.scalars(sa.select(ApiToken.description)).all() == []


@pytest.mark.parametrize("text", ALLOWED[:4])
def test_a_token_description_takes_any_script(app, logged_in, text):
    assert post_token_form(logged_in, text).status_code == 200
    with app.app_context():
        assert db.session.scalars(sa.select(ApiToken.description)).all() == [text]


@pytest.mark.parametrize("character", ["\u202e", "\u2028", "\x85"])
def test_a_login_email_refuses_what_the_api_refuses(client, orgs, character):
    page = client.get("/login")
    response = client.post("/login", data={"email": f"admin@acme.example{character}", "password": PASSWORD,
                                           "csrf_token": csrf_token_from(page.text)})
    assert response.status_code == 200  # the form again, not a login
    assert "cannot contain control characters, line separators or bidirectional overrides" in response.text
