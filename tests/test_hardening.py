"""Hostile input at the edges: huge numbers and dates, oversized bodies and headers,
markup in form fields, and the operator's answer to a leaked token."""

from __future__ import annotations

import pytest

from .conftest import bearer


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


def test_api_largest_row_id_is_an_ordinary_404(client, read_token):
    response = client.get("/admin/events/9223372036854775807", headers=bearer(read_token))
    assert response.status_code == 404
    assert response.json == {"error": "not_found", "message": "No such resource in this account."}


def test_api_ids_are_ascii_digits_only(client, read_token, orgs):
    event_id = orgs["acme"].event_ids[0]
    arabic_indic = "".join(chr(0x0660 + int(d)) for d in str(event_id))
    assert client.get(f"/admin/events/{event_id}", headers=bearer(read_token)).status_code == 200
    assert client.get(f"/admin/events/{arabic_indic}", headers=bearer(read_token)).status_code == 404


@pytest.mark.parametrize("path", ["/admin/events/9223372036854775808",
                                  "/admin/settings/api_tokens/9223372036854775808/revoke"])
def test_dashboard_huge_ids_are_404_not_500(logged_in, path):
    if path.endswith("/revoke"):
        from .conftest import csrf_token_from

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
