"""Oversized request lines, headers and bodies on real gunicorn: refused by gunicorn, or our JSON 413."""

from __future__ import annotations

import pytest
import requests

from ..servers import gunicorn

# --- Numbers and dates outside what the database or datetime can hold ---------------------


# --- Oversized bodies and headers -----------------------------------------------------------

MIB = 1024 * 1024


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
