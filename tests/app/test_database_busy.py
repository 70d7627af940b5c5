"""A SQLite lock held past the busy timeout (a long write elsewhere, a backup, a sqlite3
shell): every write answers our 503 with Retry-After, JSON on the API and our page on the
dashboard, never a 500; and an Idempotency-Key the failed write had claimed is released,
so its retry runs. On a SQLite file whatever the suite's database (the busy timeout is
SQLite's: PostgreSQL waits for a lock instead), in-process (on real gunicorn:
tests/live/test_database_busy.py)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from usetix import create_app
from usetix.database import idempotency
from usetix.database.engine import db
from usetix.database.models import ApiToken, Event, IdempotencyKey
from usetix.web.database_failures import RETRY_AFTER_SECONDS

from ..helpers import (
    NEW_EVENT,
    NONCE_FIELD,
    ClosingClient,
    bearer,
    csrf_token_from,
    held_write_lock,
    make_test_config,
    write_lock_holder,
)

BUSY_TIMEOUT_MS = 100


@pytest.fixture
def app(tmp_path):
    """conftest's app, always on a SQLite file, with a short busy timeout."""
    app = create_app({**make_test_config(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'busy.sqlite3'}",
                      "SQLITE_BUSY_TIMEOUT_MS": BUSY_TIMEOUT_MS})
    app.test_client_class = ClosingClient
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.engine.dispose()


def assert_busy_json(response) -> None:
    assert response.status_code == 503
    assert response.mimetype == "application/json"
    assert response.json["error"] == "unavailable"
    assert "busy" in response.json["message"]
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def counted(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def test_api_writes_answer_503_json_while_the_database_is_locked(app, client, write_token, orgs):
    acme = orgs["acme"]
    event, attendee = acme.event_ids[0], acme.attendee_ids[0]
    writes = [
        ("POST", "/admin/events", NEW_EVENT),
        ("PATCH", f"/admin/events/{event}", {"venue": "Annex"}),
        ("DELETE", f"/admin/events/{acme.event_ids[2]}/attendees/{acme.attendee_ids[5]}", None),
        ("POST", f"/admin/events/{event}/attendees", {"name": "Ada", "email": "ada@example.com", "ticket_type": "VIP"}),
        ("POST", f"/admin/events/{event}/attendees/{attendee}/check_in", None),
    ]
    with held_write_lock(app.config["DATABASE_URL"]):
        for n, (method, path, body) in enumerate(writes):
            for headers in (bearer(write_token), {**bearer(write_token), "Idempotency-Key": f"locked-{n}"}):
                assert_busy_json(client.open(path, method=method, json=body, headers=headers))
        # Reads do not need the lock (WAL).
        assert client.get(f"/admin/events/{event}", headers=bearer(write_token)).status_code == 200
    assert counted(app, Event) == 6 and counted(app, IdempotencyKey) == 0  # nothing happened, nothing claimed
    # Retried with the same key once the lock is gone: it runs.
    retried = client.post("/admin/events", json=NEW_EVENT,
                          headers={**bearer(write_token), "Idempotency-Key": "locked-0"})
    assert retried.status_code == 201


def test_a_key_claimed_before_the_lock_is_released_once_the_answer_is_sent(app, client, write_token, orgs,
                                                                          monkeypatch):
    """The lock is taken between the key's claim and the write: the write fails, and so
    would the key's release (itself a write) until the lock is gone."""
    headers = {**bearer(write_token), "Idempotency-Key": "claimed-then-locked"}
    real_claim = idempotency.claim
    with write_lock_holder(app.config["DATABASE_URL"]) as holder:
        def claim_then_lock(*args, **kwargs):
            outcome = real_claim(*args, **kwargs)
            holder.execute("BEGIN IMMEDIATE")
            return outcome

        monkeypatch.setattr(idempotency, "claim", claim_then_lock)
        response = client.post("/admin/events", json=NEW_EVENT, headers=headers)
        monkeypatch.setattr(idempotency, "claim", real_claim)
        assert_busy_json(response)
        assert counted(app, IdempotencyKey, IdempotencyKey.status.is_(None)) == 1  # the answer did not wait for it
        holder.execute("ROLLBACK")
    response.close()  # what the server does once the answer is sent
    assert counted(app, IdempotencyKey) == 0
    assert counted(app, Event) == 6
    retried = client.post("/admin/events", json=NEW_EVENT, headers=headers)
    assert retried.status_code == 201  # not 409 idempotency_key_in_use for minutes


def test_dashboard_writes_answer_our_503_page_while_the_database_is_locked(app, client, logged_in, orgs):
    form = client.get("/admin/settings/api_tokens/new")
    with held_write_lock(app.config["DATABASE_URL"]):
        response = client.post("/admin/settings/api_tokens", data={
            "description": "Locked out", "tier": "read", "csrf_token": csrf_token_from(form.text),
            "nonce": NONCE_FIELD.search(form.text).group(1)})
        assert response.status_code == 503
        assert response.mimetype == "text/html"
        assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
        assert "busy" in response.text
        assert "Content-Security-Policy" in response.headers  # our page, with our headers
        dismissed = client.post("/admin/notices/leak_reports/dismiss", data={"csrf_token": csrf_token_from(form.text)})
        assert dismissed.status_code == 503 and dismissed.mimetype == "text/html"
    assert counted(app, ApiToken) == 0
