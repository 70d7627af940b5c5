"""Hostile input at the edges: huge numbers and dates, oversized bodies (on gunicorn: tests/live),
markup in form fields, and the operator's answer to a leaked token."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from markupsafe import escape

from usetix.core import token_format as tokens
from usetix.core.list_query import MAX_PAGE
from usetix.database.engine import db
from usetix.database.models import ApiToken, AuditEvent

from ..helpers import NONCE_FIELD, PASSWORD, bearer, csrf_token_from, inline_problems, issue
from ..queries import recorded_queries

# --- Numbers and dates outside what the database or datetime can hold ---------------------

@pytest.mark.parametrize("path", [
    "/admin/events/9223372036854775808",  # 2**63: one past SQLite's (and PostgreSQL's bigint) range
    "/admin/events/99999999999999999999999999999999",
    "/admin/events/9223372036854775808/attendees",
    "/admin/events/" + "9" * 5000,  # past Python's int-from-string digit limit
])
def test_api_huge_ids_are_404_not_500(client, read_token, path):
    response = client.get(path, headers=bearer(read_token))
    assert response.status_code == 404
    assert response.json["error"] == "not_found"


def test_api_largest_row_id_is_an_ordinary_404(app, client, read_token):
    largest = app.url_map.converters["row_id"](app.url_map).max
    assert 2**31 - 1 <= largest <= 2**63 - 1
    response = client.get(f"/admin/events/{largest}", headers=bearer(read_token))
    assert response.status_code == 404
    assert response.json == {"error": "not_found", "message": "No such resource in this account."}
    response = client.get(f"/admin/events/{largest + 1}", headers=bearer(read_token))
    assert response.status_code == 404  # no such route


TOO_BIG = "2147483648"  # one past the converter's max (PostgreSQL's INTEGER)
MISSING = "2147483647"  # the largest id a path takes: no row has it here
# Each path, the body its writes send, and its methods.
ID_PATHS = {"/admin/events/{}": ({"venue": "Annex"}, {"GET", "HEAD", "PATCH", "DELETE"}),
            "/admin/events/{}/attendees": ({"name": "Ada", "email": "ada@example.com", "ticket_type": "VIP"},
                                           {"GET", "HEAD", "POST"}),
            "/admin/events/{event}/attendees/{}": ({"ticket_type": "VIP"}, {"GET", "HEAD", "PATCH", "DELETE"}),
            "/admin/events/{event}/attendees/{}/check_in": (None, {"POST", "DELETE"})}
VARYING = {"date", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "ratelimit-policy"}


def _answer(client, method: str, path: str, headers: dict, body) -> tuple[int, dict, bytes]:
    response = client.open(path, method=method, headers=headers, json=body if method in {"PATCH", "POST", "PUT"}
                           else None)
    kept = {name.lower(): value for name, value in response.headers.items() if name.lower() not in VARYING}
    return response.status_code, kept, response.data


@pytest.mark.parametrize("who", ["nobody", "read", "write", "another account's write"])
@pytest.mark.parametrize("method", ["GET", "HEAD", "PATCH", "DELETE", "POST", "PUT"])
def test_an_id_past_the_converter_is_the_answer_of_a_missing_id(app, client, orgs, who, method):
    """For every method, token tier and id position: what a missing id gets, status,
    headers and body (never a 405 whose Allow contradicts the path's methods)."""
    headers = {"Accept": "application/json"}
    if who != "nobody":
        org = orgs["globex" if who.startswith("another") else "acme"]
        headers.update(bearer(issue(app, org, "read" if who == "read" else "write")))
    event = orgs["acme"].event_ids[0]
    for template, (body, methods) in ID_PATHS.items():
        positions = [template.format(TOO_BIG, event=event)]
        if "{event}" in template:  # the event's id too, beside an attendee id that exists
            positions.append(template.replace("{event}", TOO_BIG).format(orgs["acme"].attendee_ids[0]))
        for path in positions:
            expected = _answer(client, method, path.replace(TOO_BIG, MISSING), headers, body)
            answer = _answer(client, method, path, headers, body)
            assert answer == expected, (method, path)
            if who.startswith(("write", "another")):
                if method in methods:
                    assert answer[0] == 404, (method, path)
                else:
                    assert answer[0] == 405 and set(answer[1]["allow"].split(", ")) == methods | {"OPTIONS"}


def test_api_ids_are_ascii_digits_only(client, read_token, orgs):
    event_id = orgs["acme"].event_ids[0]
    arabic_indic = "".join(chr(0x0660 + int(d)) for d in str(event_id))
    assert client.get(f"/admin/events/{event_id}", headers=bearer(read_token)).status_code == 200
    assert client.get(f"/admin/events/{arabic_indic}", headers=bearer(read_token)).status_code == 404


@pytest.mark.parametrize("path", ["/admin/events/9223372036854775808",
                                  "/admin/settings/api_tokens/9223372036854775808/revoke"])
def test_dashboard_huge_ids_are_404_not_500(logged_in, path):
    if path.endswith("/revoke"):
        token = csrf_token_from(logged_in.get("/admin/settings/api_tokens/new").text)
        response = logged_in.post(path, data={"csrf_token": token})
    else:
        response = logged_in.get(path)
    assert response.status_code == 404
    assert response.mimetype == "text/html"


@pytest.mark.parametrize("value", [
    "0001-01-01T00:00:00+01:00",  # an hour before year 1 in UTC
    "9999-12-31T23:59:59-01:00",  # an hour after year 9999 in UTC
])
def test_api_updated_since_out_of_range_is_400(client, read_token, value):
    response = client.get("/admin/events", query_string={"updated_since": value}, headers=bearer(read_token))
    assert response.status_code == 400
    assert response.json["parameter"] == "updated_since"


def test_api_last_allowed_page_is_an_empty_page(client, read_token):
    # The largest OFFSET the API can be asked for still fits the database's integer.
    response = client.get("/admin/events", query_string={"page": MAX_PAGE, "per_page": 100}, headers=bearer(read_token))
    assert response.status_code == 200
    assert response.json["data"] == [] and response.json["meta"]["page"] == MAX_PAGE
    response = client.get("/admin/events", query_string={"page": MAX_PAGE + 1}, headers=bearer(read_token))
    assert response.status_code == 400
    assert response.json["parameter"] == "page"


# --- Oversized bodies and headers -----------------------------------------------------------

MIB = 1024 * 1024


@pytest.mark.parametrize("method", ["GET", "POST", "PUT"])
def test_api_oversized_body_is_413_json_before_any_query(app, client, write_token, method):
    body = b'{"padding": "' + b"x" * MIB + b'"}'
    with recorded_queries(app) as queries:
        response = client.open("/admin/events", method=method, data=body, content_type="application/json",
                               headers=bearer(write_token))
    assert response.status_code == 413
    assert response.mimetype == "application/json"
    assert response.json["error"] == "request_entity_too_large"
    assert str(MIB) in response.json["message"]
    assert queries == []  # refused before the token was even looked up


def test_api_oversized_body_without_a_token_is_413_too(client):
    response = client.post("/admin/events", data=b"x" * (MIB + 1), content_type="application/json",
                           headers={"Accept": "application/json"})
    assert response.status_code == 413
    assert response.json["error"] == "request_entity_too_large"


def test_api_body_at_the_limit_is_not_refused_for_its_size(client, write_token):
    # A body of exactly MAX_CONTENT_LENGTH reaches the view, which finds it is not JSON.
    response = client.post("/admin/events", data=b"x" * MIB, content_type="application/json",
                           headers=bearer(write_token))
    assert response.status_code == 400 and response.json["error"] == "invalid_json"


def test_html_form_oversized_body_is_413_html(client):
    response = client.post("/login", data={"email": "a@b.example", "password": "x" * (MIB + 1)})
    assert response.status_code == 413
    assert response.mimetype == "text/html"
    assert "413" in response.text


# --- Form input: markup, length, unicode, control characters --------------------------------

SCRIPT = "<script>alert(1)</script>"
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"
ATTRIBUTE_BREAKER = '" onmouseover="alert(1)" x="'


def token_descriptions(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(sa.select(ApiToken.description).order_by(ApiToken.id)))


def post_token_form(client, description: str):
    form = client.get("/admin/settings/api_tokens/new")
    return client.post("/admin/settings/api_tokens", data={
        "description": description, "tier": "read", "csrf_token": csrf_token_from(form.text),
        "nonce": NONCE_FIELD.search(form.text).group(1)})


@pytest.mark.parametrize("description", [SCRIPT, ATTRIBUTE_BREAKER, "</td></tr></table><img src=x onerror=alert(1)>"])
def test_markup_in_a_description_is_text_everywhere_it_is_shown(app, logged_in, description):
    reveal = post_token_form(logged_in, description)
    assert reveal.status_code == 200
    assert token_descriptions(app) == [description]  # stored as typed
    listing = logged_in.get("/admin/settings/api_tokens")
    token_id = int(re.search(r'data-token-id="(\d+)"', listing.text).group(1))
    revoke = logged_in.post(f"/admin/settings/api_tokens/{token_id}/revoke",
                            data={"csrf_token": csrf_token_from(listing.text), "confirm": "yes"},
                            follow_redirects=True)
    audit = logged_in.get("/admin/settings/audit_log")
    for page in (reveal, listing, revoke, audit):  # revoke: the flash message on the list page
        assert page.status_code == 200
        assert description not in page.text
        assert str(escape(description)) in page.text
        assert inline_problems(page.text) == []  # no script element, no handler attribute got in


def test_script_description_appears_as_text_in_token_list_and_audit_log(app, logged_in):
    assert post_token_form(logged_in, SCRIPT).status_code == 200
    listing = logged_in.get("/admin/settings/api_tokens").text
    audit = logged_in.get("/admin/settings/audit_log").text
    for html in (listing, audit):
        assert f'">{ESCAPED_SCRIPT}</a>' in html  # the link to the token's page
        assert "<script>alert" not in html


def test_script_description_is_plain_json_on_the_api(app, client, orgs):
    token = issue(app, orgs["acme"], description=SCRIPT)
    response = client.get("/admin/account", headers=bearer(token))
    assert response.json["data"]["token"]["description"] == SCRIPT
    assert response.mimetype == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_description_length_limit_counts_characters(app, logged_in):
    response = post_token_form(logged_in, "x" * 101)
    assert response.status_code == 400
    assert "longer than 100 characters" in response.text
    assert token_descriptions(app) == []
    for description in ("x" * 100, "é" * 100, "🎟" * 100):  # 100 characters of 1, 2 and 4 UTF-8 bytes
        assert post_token_form(logged_in, description).status_code == 200
    assert token_descriptions(app) == ["x" * 100, "é" * 100, "🎟" * 100]


@pytest.mark.parametrize("description", ["Synchro Müller – 日本 ✓", "مزامنة", "Zalgo z̷̢̛a̴l̸g̵o̶", "👩‍💻 sync"])
def test_unicode_descriptions_round_trip(app, logged_in, description):
    assert post_token_form(logged_in, description).status_code == 200
    assert token_descriptions(app) == [description]
    assert str(escape(description)) in logged_in.get("/admin/settings/api_tokens").text


@pytest.mark.parametrize("description", [
    "nul\x00inside", "tab\tinside", "line\nbreak", "escape\x1b[31m", "c1\x85inside",
])
def test_control_characters_in_a_description_are_refused(app, logged_in, description):
    # A NUL would reach PostgreSQL and fail there (a 500); none has a use in a description.
    response = post_token_form(logged_in, description)
    assert response.status_code == 400
    assert "control characters" in response.text
    assert token_descriptions(app) == []


def test_control_characters_in_a_login_email_are_a_failed_login(client, orgs):
    page = client.get("/login")
    response = client.post("/login", data={"email": "admin@acme.example\x00", "password": PASSWORD,
                                           "csrf_token": csrf_token_from(page.text)})
    assert response.status_code == 200
    assert "control characters" in response.text


@pytest.mark.parametrize("page", ["99999999999999999999999", str(MAX_PAGE + 1), "0", "-1", "abc", "١"])
@pytest.mark.parametrize("path", ["/admin/events", "/admin/settings/audit_log"])
def test_dashboard_page_numbers_out_of_range_show_page_one(logged_in, path, page):
    response = logged_in.get(path, query_string={"page": page})
    assert response.status_code == 200


def test_dashboard_page_number_past_the_end_is_empty(logged_in):
    response = logged_in.get("/admin/events", query_string={"page": str(MAX_PAGE)})
    assert response.status_code == 200
    assert "No events yet." in response.text or 'data-event-id' not in response.text


# --- Leak response: usetix revoke-token --value-stdin ------------------------------------------

def audit_rows(app) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id)))


def test_revoke_token_by_value_from_any_account(app, runner, client, orgs):
    leaked = issue(app, orgs["globex"], "write", description="CI deploy")
    assert client.get("/admin/account", headers=bearer(leaked)).status_code == 200
    before = len(audit_rows(app))

    result = runner.invoke(args=["revoke-token", "--value-stdin"], input=f"  {leaked}\r\n")
    assert result.exit_code == 0, result.output
    assert "Revoked token" in result.output and "CI deploy" in result.output
    assert leaked not in result.output  # the value is never echoed (terminal logs, CI logs)

    response = client.get("/admin/account", headers=bearer(leaked))
    assert response.status_code == 401
    assert response.json["error"] == "revoked_token"
    rows = audit_rows(app)
    assert len(rows) == before + 1
    row = rows[-1]
    assert (row.action, row.account_id, row.admin_id, row.actor, row.token_description, row.token_tier) == (
        "token.revoked", orgs["globex"].account_id, None, "operator (command line)", "CI deploy", "write")


def test_revoked_by_the_operator_shows_in_the_accounts_audit_log(app, runner, client, auth, orgs):
    leaked = issue(app, orgs["globex"], "read", description="Leaky script")
    assert runner.invoke(args=["revoke-token", "--value-stdin"], input=leaked + "\n").exit_code == 0
    assert auth.login("admin@globex.example").status_code == 302
    audit = client.get("/admin/settings/audit_log").text
    assert "operator (command line)" in audit and "Leaky script" in audit
    assert "Leaky script" not in client.get("/admin/settings/api_tokens?active=1").text  # gone from the live list


def test_revoking_a_revoked_token_says_so_and_records_nothing(app, runner, orgs):
    leaked = issue(app, orgs["acme"])
    assert runner.invoke(args=["revoke-token", "--value-stdin"], input=leaked).exit_code == 0
    before = len(audit_rows(app))
    result = runner.invoke(args=["revoke-token", "--value-stdin"], input=leaked)
    assert result.exit_code == 0
    assert "already revoked" in result.output
    assert len(audit_rows(app)) == before


@pytest.mark.parametrize("value, message", [
    ("", "not a Usetix token"),
    ("not-a-token", "not a Usetix token"),
    ("utx_" + "A" * 36, "checksum"),
    ("ghp_" + "A" * 36, "not a Usetix token"),
])
def test_revoke_token_refuses_what_is_not_a_token(app, runner, orgs, value, message):
    before = len(audit_rows(app))
    result = runner.invoke(args=["revoke-token", "--value-stdin"], input=value + "\n")
    assert result.exit_code == 1
    assert "Error:" in result.output and message in result.output
    assert len(audit_rows(app)) == before


def test_revoke_token_unknown_value_exits_1(app, runner, orgs):
    unknown = tokens.generate()
    result = runner.invoke(args=["revoke-token", "--value-stdin"], input=unknown + "\n")
    assert result.exit_code == 1
    assert "no token with that value exists" in result.output
    assert unknown not in result.output


def test_revoke_token_needs_the_value_on_stdin(runner):
    # Never on the command line, where it would land in shell history and process lists.
    result = runner.invoke(args=["revoke-token"])
    assert result.exit_code == 2
    assert "--value-stdin" in result.output
