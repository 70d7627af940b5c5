"""A database connection lost in the middle of a request (usetix/database/faults.py,
usetix/web/database_failures.py): before anything was committed it is our 503 with
Retry-After, and nothing was written; during the COMMIT it is our 500 ``outcome_unknown``,
which no client takes for "retry". The database unreachable from the start, on real
gunicorn: tests/live/test_faults.py.

The connection is lost as a server restart loses it: on PostgreSQL its backend is
terminated (``pg_terminate_backend``, waiting for it to end); on SQLite, which has no
server, the driver's connection is closed under the request.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from usetix.database.engine import db
from usetix.database.models import ApiToken, Attendee
from usetix.web.database_failures import OUTCOME_UNKNOWN, RETRY_AFTER_SECONDS

from ..helpers import bearer, csrf_token_from, issue

NEW_ATTENDEE = {"name": "Ada Lovelace", "ticket_type": "VIP"}


def assert_our_headers(response) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def end_connection(app, dbapi_connection) -> None:
    """End ``dbapi_connection`` as a database restart would."""
    if dbapi_connection.__class__.__module__.startswith("sqlite3"):
        dbapi_connection.close()
        return
    pid = dbapi_connection.info.backend_pid  # psycopg's own
    other = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"], poolclass=sa.pool.NullPool)
    try:
        with other.connect() as connection:
            assert connection.execute(sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}).scalar()
    finally:
        other.dispose()


class LoseConnection:
    """Ends the connection of the next statement that ``before`` matches, just before it runs,
    ``times`` times (each time the statement comes again, on a new connection)."""

    def __init__(self, app, before: Callable[[str], bool], times: int = 1):
        self.app, self.before, self.left = app, before, times
        with app.app_context():
            self.engine = db.engine
        sa.event.listen(self.engine, "before_cursor_execute", self._statement)

    def _statement(self, conn, cursor, statement, parameters, context, executemany):
        if self.left and self.before(statement):
            self.left -= 1
            end_connection(self.app, conn.connection.dbapi_connection)

    def remove(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._statement)


@pytest.fixture
def lose_connection(app):
    made = []

    def make(before: Callable[[str], bool], times: int = 1) -> LoseConnection:
        made.append(LoseConnection(app, before, times))
        return made[-1]

    yield make
    for lost in made:
        lost.remove()


@pytest.fixture
def lose_connection_at_commit(app):
    """Call it: the connection of the next COMMIT sent is ended just before it is sent."""
    with app.app_context():
        engine = db.engine
    left = [0]

    def commit(conn):
        # A commit in autocommit (an Idempotency-Key's claim on PostgreSQL) sends no COMMIT.
        if left[0] and conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            left[0] -= 1
            end_connection(app, conn.connection.dbapi_connection)

    def arm() -> None:
        left[0] = 1

    sa.event.listen(engine, "commit", commit)
    yield arm
    sa.event.remove(engine, "commit", commit)


def attendees_named(app, email: str) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(Attendee).where(Attendee.email == email))


def test_a_write_whose_connection_is_lost_before_its_commit_is_503_and_wrote_nothing(
        app, client, orgs, write_token, lose_connection):
    """The attendee's INSERT ran; the connection goes before the audit record's. The server
    rolled the transaction back, so the answer says nothing was changed, and a retry works."""
    lose_connection(lambda statement: statement.startswith("INSERT INTO audit_events"))
    path = f"/admin/events/{orgs['acme'].event_ids[0]}/attendees"
    body = {**NEW_ATTENDEE, "email": "lost-before-commit@example.com"}
    response = client.post(path, headers=bearer(write_token), json=body)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response.json["error"] == "unavailable" and "nothing was changed" in response.json["message"]
    assert_our_headers(response)
    assert attendees_named(app, body["email"]) == 0
    assert client.post(path, headers=bearer(write_token), json=body).status_code == 201
    assert attendees_named(app, body["email"]) == 1


def test_a_read_whose_connection_is_lost_is_503(app, client, orgs, read_token, lose_connection):
    lose_connection(lambda statement: "FROM events" in statement)
    response = client.get("/admin/events", headers=bearer(read_token))
    assert response.status_code == 503 and response.json["error"] == "unavailable"
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert_our_headers(response)
    assert client.get("/admin/events", headers=bearer(read_token)).status_code == 200


def test_a_read_on_the_drivers_cursor_whose_connection_is_lost_is_503(app, client, orgs, read_token,
                                                                      monkeypatch):
    """The API's prepared SELECTs run on the driver's cursor, past SQLAlchemy's reporting of
    failures (usetix/database/prepared.py): the same 503. No statement listener here (one
    would send them through SQLAlchemy): the connection ends once the token is judged."""
    from usetix.blueprints.api import authentication
    from usetix.database.connection import request_connection

    real_first_read = authentication.first_read

    def first_read_then_lose(read, params):
        result = real_first_read(read, params)
        end_connection(app, request_connection().connection.dbapi_connection)
        return result

    monkeypatch.setattr(authentication, "first_read", first_read_then_lose)
    response = client.get("/admin/events", headers=bearer(read_token))
    assert response.status_code == 503 and response.json["error"] == "unavailable"
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    monkeypatch.setattr(authentication, "first_read", real_first_read)
    assert client.get("/admin/events", headers=bearer(read_token)).status_code == 200


def test_an_unknown_token_whose_lookup_loses_its_connection_twice_is_503_not_500(app, client, orgs,
                                                                                lose_connection):
    """The token's lookup runs again on a new connection when its pooled one was lost
    (usetix/database/connection.py, first_read); lost again, the database is down: a 503,
    not a 401 (the token was never judged) and not a 500."""
    from usetix.core import token_format

    lose_connection(lambda statement: "FROM api_tokens" in statement, times=2)
    response = client.get("/admin/events", headers=bearer(token_format.generate()))
    assert response.status_code == 503 and response.json["error"] == "unavailable"
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert client.get("/admin/events", headers=bearer(token_format.generate())).status_code == 401


def test_a_connection_lost_during_the_commit_is_500_outcome_unknown(app, client, orgs, write_token,
                                                                  lose_connection_at_commit):
    """Whether the server committed before the connection went is unknown: not a 503 (which
    says "nothing was changed, retry"), but a 500 that says so, without Retry-After. A retry
    with the same Idempotency-Key is safe: here the write was not kept, so it runs."""
    path = f"/admin/events/{orgs['acme'].event_ids[0]}/attendees"
    body = {**NEW_ATTENDEE, "email": "lost-during-commit@example.com"}
    headers = {**bearer(write_token), "Idempotency-Key": "lost-during-commit"}
    lose_connection_at_commit()
    response = client.post(path, headers=headers, json=body)
    assert response.status_code == 500
    assert response.json == {"error": "outcome_unknown", "message": OUTCOME_UNKNOWN}
    assert "Retry-After" not in response.headers
    assert_our_headers(response)
    retried = client.post(path, headers=headers, json=body)
    assert retried.status_code == 201
    assert attendees_named(app, body["email"]) == 1
    again = client.post(path, headers=headers, json=body)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert attendees_named(app, body["email"]) == 1


def test_a_dashboard_page_whose_connection_is_lost_is_our_503_page(app, client, logged_in, lose_connection):
    lose_connection(lambda statement: "FROM events" in statement)
    response = client.get("/admin/events")
    assert response.status_code == 503 and response.mimetype == "text/html"
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert "nothing was changed" in response.get_data(as_text=True)
    assert_our_headers(response)
    assert client.get("/admin/events").status_code == 200


def test_a_session_store_read_that_loses_its_connection_is_503_with_retry_after(app, client, logged_in,
                                                                              lose_connection):
    lose_connection(lambda statement: "FROM server_sessions" in statement)
    response = client.get("/admin/events")
    assert response.status_code == 503 and response.mimetype == "text/html"
    assert response.headers["Retry-After"].isdigit()
    assert_our_headers(response)
    assert client.get("/admin/events").status_code == 200  # still logged in


def test_a_dashboard_write_whose_commit_loses_its_connection_says_the_outcome_is_unknown(
        app, client, logged_in, orgs, lose_connection_at_commit):
    """Revoking a token: the page is our 500 that says the change may have been saved."""
    issue(app, orgs["acme"], "read", "to revoke")
    with app.app_context():
        token_id = db.session.scalar(sa.select(ApiToken.id).where(ApiToken.description == "to revoke"))
    page = client.get(f"/admin/settings/api_tokens/{token_id}/revoke")
    lose_connection_at_commit()
    response = client.post(f"/admin/settings/api_tokens/{token_id}/revoke",
                           data={"confirm": "yes", "csrf_token": csrf_token_from(page.text)})
    assert response.status_code == 500 and response.mimetype == "text/html"
    assert "may or may not have been saved" in response.get_data(as_text=True)
    assert "Retry-After" not in response.headers
    assert_our_headers(response)
