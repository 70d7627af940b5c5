"""Hostile input at the edges: huge numbers and dates, oversized bodies and headers,
markup in form fields, and the operator's answer to a leaked token."""

from __future__ import annotations

import runpy

import pytest
import requests

from .conftest import bearer
from .queries import recorded_queries
from .servers import ROOT, gunicorn


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
    # V1 has no write endpoint: a body of exactly MAX_CONTENT_LENGTH reaches routing (405).
    response = client.post("/admin/events", data=b"x" * MIB, content_type="application/json",
                           headers=bearer(write_token))
    assert response.status_code == 405


def test_html_form_oversized_body_is_413_html(client):
    response = client.post("/login", data={"email": "a@b.example", "password": "x" * (MIB + 1)})
    assert response.status_code == 413
    assert response.mimetype == "text/html"
    assert "413" in response.text


def test_gunicorn_conf_states_the_request_limits():
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert settings["limit_request_line"] <= 4094
    assert settings["limit_request_fields"] <= 100
    assert settings["limit_request_field_size"] <= 8190


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Real gunicorn (reading the repository's gunicorn.conf.py) on an empty SQLite database."""
    database = tmp_path_factory.mktemp("gunicorn") / "limits.sqlite3"
    with gunicorn(f"sqlite:///{database}", workers=1) as base:
        yield base


@pytest.mark.gunicorn
def test_gunicorn_refuses_an_oversized_header_field(server):
    response = requests.get(server + "/admin/events", timeout=10,
                            headers={"Accept": "application/json", "Authorization": "Bearer " + "a" * 9000})
    assert response.status_code in (400, 431)
    # Refused by gunicorn itself: the app would have answered with a JSON 401.
    assert "application/json" not in response.headers.get("Content-Type", "")


@pytest.mark.gunicorn
def test_gunicorn_refuses_too_many_header_fields(server):
    headers = {f"X-Filler-{n}": "1" for n in range(120)}
    response = requests.get(server + "/healthz", headers=headers, timeout=10)
    assert response.status_code in (400, 431)


@pytest.mark.gunicorn
def test_gunicorn_refuses_an_oversized_request_line(server):
    response = requests.get(server + "/admin/events?q=" + "a" * 5000, timeout=10,
                            headers={"Accept": "application/json"})
    assert response.status_code in (400, 414)


@pytest.mark.gunicorn
def test_gunicorn_serves_an_ordinary_header(server):
    response = requests.get(server + "/admin/events", timeout=10,
                            headers={"Accept": "application/json", "Authorization": "Bearer " + "a" * 4000})
    assert response.status_code == 401
    assert response.json()["error"] == "malformed_token"


@pytest.mark.gunicorn
def test_gunicorn_oversized_body_is_413_json(server):
    response = requests.post(server + "/admin/events", data=b"x" * (2 * MIB), timeout=10,
                             headers={"Accept": "application/json", "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "request_entity_too_large"
