"""A database lock held past the busy timeout is our 503 on real gunicorn (SQLite)."""

from __future__ import annotations

import pytest
import requests

from usetix.web.database_failures import RETRY_AFTER_SECONDS

from ..dashboard_client import Dashboard
from ..helpers import NEW_EVENT, NONCE_FIELD, PASSWORD, bearer, csrf_token_from, held_write_lock
from ..servers import gunicorn, prepare_database


@pytest.mark.gunicorn
def test_a_held_lock_is_503_on_gunicorn(tmp_path):
    url = f"sqlite:///{tmp_path / 'locked.sqlite3'}"
    prepare_database(url, PASSWORD)
    log = tmp_path / "gunicorn.log"
    with gunicorn(url, workers=2, log_path=log, SQLITE_BUSY_TIMEOUT_MS="200") as base:
        admin = Dashboard(base)
        token = admin.create_token(tier="write")
        headers = {**bearer(token), "Idempotency-Key": "gunicorn-locked"}
        form = admin.http.get(base + "/admin/settings/api_tokens/new", timeout=10).text
        with held_write_lock(url):
            api = requests.post(base + "/admin/events", json=NEW_EVENT, headers=headers, timeout=10)
            assert api.status_code == 503 and api.json()["error"] == "unavailable"
            assert api.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
            assert api.headers["Cache-Control"] == "no-store"
            page = admin.http.post(base + "/admin/settings/api_tokens", timeout=10, data={
                "description": "Locked out", "tier": "read", "csrf_token": csrf_token_from(form),
                "nonce": NONCE_FIELD.search(form).group(1)})
            assert page.status_code == 503 and page.headers["Content-Type"].startswith("text/html")
            assert page.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
            login_page = requests.get(base + "/login", timeout=10)
            login = requests.post(base + "/login", cookies=login_page.cookies, timeout=10, data={
                "email": "admin@acme.example", "password": PASSWORD, "csrf_token": csrf_token_from(login_page.text)})
            assert login.status_code == 503
        assert requests.post(base + "/admin/events", json=NEW_EVENT, headers=headers, timeout=10).status_code == 201
    text = log.read_text()
    assert "status=500" not in text and "Traceback" not in text
