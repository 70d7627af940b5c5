"""The JSON API: the JSON/HTML split, bearer authentication, V1 endpoints, errors."""

import re
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from usetix.core import token_format as tokens
from usetix.database.engine import db
from usetix.database.models import ApiToken, Attendee, Event

from ..helpers import PINNED_CASES, bearer, issue

JSON = {"Accept": "application/json"}


class QueryLog:
    """Every SQL statement the app sends while the block runs."""

    def __init__(self, app):
        self.app = app
        self.statements: list[str] = []

    def _record(self, conn, cursor, statement, *args):
        self.statements.append(statement)

    def __enter__(self):
        with self.app.app_context():
            self.engine = db.engine
        sa.event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc):
        sa.event.remove(self.engine, "before_cursor_execute", self._record)


# -- the JSON/HTML split ----------------------------------------------------------------

@pytest.mark.parametrize("accept, is_json", PINNED_CASES)
def test_accept_decides_between_api_and_dashboard(client, read_token, accept, is_json):
    headers = {"Authorization": f"Bearer {read_token}"}
    if accept is not None:
        headers["Accept"] = accept
    response = client.get("/admin/events", headers=headers)
    assert "Accept" in response.headers["Vary"]
    if is_json:
        assert response.status_code == 200
        assert response.mimetype == "application/json"
        assert len(response.json["data"]) == 3
    else:
        # The token is ignored: an anonymous browser request, sent to the login page.
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")


def test_a_token_never_authenticates_a_browser_request(app, client, write_token):
    with app.app_context():
        token_id = db.session.scalar(sa.select(ApiToken.id))
    revoke = f"/admin/settings/api_tokens/{token_id}/revoke"
    for accept in (None, "text/html", "*/*"):
        headers = {"Authorization": f"Bearer {write_token}"} | ({"Accept": accept} if accept else {})
        page = client.get("/admin/settings/api_tokens", headers=headers)
        assert page.status_code == 302 and page.headers["Location"].startswith("/login")
        # A form post with only a token: no session, so no CSRF token either.
        for path in (revoke, "/admin/settings/api_tokens"):
            assert client.post(path, headers=headers).status_code == 400, (path, accept)
    assert client.get("/admin/events", headers=bearer(write_token)).status_code == 200  # still live


def test_a_session_cookie_never_authenticates_a_json_request(client, logged_in):
    assert client.get("/admin/events").status_code == 200  # the cookie works for HTML
    for method in ("GET", "POST"):
        response = client.open("/admin/events", method=method, headers=JSON)
        assert response.status_code == 401
        assert response.json["error"] == "missing_token"


def test_html_pages_send_vary_accept(client, logged_in):
    assert "Accept" in client.get("/admin/events").headers["Vary"]


# -- authentication rules ---------------------------------------------------------------

def test_missing_token(client, orgs):
    response = client.get("/admin/events", headers=JSON)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="Usetix"'
    assert response.json["error"] == "missing_token"
    assert "Missing" in response.json["message"]


def _bad_checksum(value: str) -> str:
    return value[:-1] + ("A" if value[-1] != "A" else "B")


# RFC 6750 §3.1: another scheme is no bearer credentials at all (no error code); a broken
# Bearer header is invalid_request; a value that parses but cannot be a valid token is
# invalid_token.
@pytest.mark.parametrize(("make_header", "error", "challenge_error"), [
    (lambda t: f"Basic {t}", "missing_token", None),
    (lambda t: "Bearer", "malformed_token", "invalid_request"),
    (lambda t: f"Bearer {t} extra", "malformed_token", "invalid_request"),
    (lambda t: f"Bearer {_bad_checksum(t)}", "malformed_token", "invalid_token"),
    (lambda t: f"Bearer {t[4:]}", "malformed_token", "invalid_token"),
    (lambda t: "Bearer utx_short", "malformed_token", "invalid_token"),
])
def test_malformed_token(app, client, read_token, make_header, error, challenge_error):
    with QueryLog(app) as log:
        response = client.get("/admin/events", headers={**JSON, "Authorization": make_header(read_token)})
    assert response.status_code == 401
    challenge = 'Bearer realm="Usetix"' + (f', error="{challenge_error}"' if challenge_error else "")
    assert response.headers["WWW-Authenticate"] == challenge
    assert response.json["error"] == error
    assert ("Malformed" if error == "malformed_token" else "scheme must be Bearer") in response.json["message"]
    assert log.statements == []  # turned away before any database query


def test_unknown_token(client, orgs):
    response = client.get("/admin/events", headers=bearer(tokens.generate()))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="Usetix", error="invalid_token"'
    assert response.json == {"error": "invalid_token", "message": "Unknown token."}


def test_revoked_token_is_refused_at_once(app, client, read_token):
    assert client.get("/admin/events", headers=bearer(read_token)).status_code == 200
    with app.app_context():
        db.session.execute(sa.update(ApiToken).values(revoked_at=datetime.now(UTC)))
        db.session.commit()
    response = client.get("/admin/events", headers=bearer(read_token))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="Usetix", error="invalid_token"'
    assert response.json["error"] == "revoked_token"
    assert "revoked" in response.json["message"]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("path", ["/admin/events", "/admin/events/1", "/admin/account", "/admin/nowhere"])
def test_read_token_may_only_get_and_head(client, read_token, method, path):
    response = client.open(path, method=method, headers=bearer(read_token))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="Usetix", error="insufficient_scope"'
    assert response.json["error"] == "insufficient_scope"
    assert method in response.json["message"]


def test_read_token_head_works(client, read_token):
    response = client.head("/admin/events", headers=bearer(read_token))
    assert response.status_code == 200
    assert response.data == b""


@pytest.mark.parametrize("method, path, allowed", [
    ("PUT", "/admin/events", {"GET", "HEAD", "POST"}),
    ("PATCH", "/admin/events", {"GET", "HEAD", "POST"}),
    ("DELETE", "/admin/events", {"GET", "HEAD", "POST"}),
    ("PUT", "/admin/events/1", {"GET", "HEAD", "PATCH", "DELETE"}),
    ("POST", "/admin/events/1", {"GET", "HEAD", "PATCH", "DELETE"}),
    ("PUT", "/admin/events/1/attendees/1", {"GET", "HEAD", "PATCH", "DELETE"}),
    ("PATCH", "/admin/events/1/attendees/1/check_in", {"POST", "DELETE"}),
    ("POST", "/admin/account", {"GET", "HEAD"}),
])
def test_write_token_gets_405_where_a_path_has_no_such_method(client, write_token, method, path, allowed):
    response = client.open(path, method=method, headers=bearer(write_token), json={"title": "x"})
    assert response.status_code == 405
    assert response.mimetype == "application/json"
    assert response.json["error"] == "method_not_allowed"
    assert set(response.headers["Allow"].replace(" ", "").split(",")) - {"OPTIONS"} == allowed


def test_write_token_reads_too(client, write_token):
    assert client.get("/admin/events", headers=bearer(write_token)).status_code == 200


# -- endpoints ---------------------------------------------------------------------------

def test_account_describes_the_token(client, orgs, app):
    raw = issue(app, orgs["globex"], "write", description="Mailchimp sync")
    response = client.get("/admin/account", headers=bearer(raw))
    assert response.status_code == 200
    data = response.json["data"]
    assert (data["id"], data["name"]) == (orgs["globex"].account_id, "Globex Live")
    assert (data["token"]["description"], data["token"]["tier"]) == ("Mailchimp sync", "write")
    assert raw not in response.text


def test_events_list_shape_and_utc_timestamps(client, read_token, orgs):
    response = client.get("/admin/events", headers=bearer(read_token))
    body = response.json
    assert body["meta"] == {"page": 1, "per_page": 25, "total": 3}
    assert [e["id"] for e in body["data"]] == orgs["acme"].event_ids
    first = body["data"][0]
    assert set(first) == {"id", "title", "starts_at", "ends_at", "venue", "status", "created_at", "updated_at"}
    assert first["starts_at"] == "2026-06-01T18:30:00Z"
    assert first["ends_at"] == "2026-06-01T20:30:00Z"
    assert first["updated_at"].endswith("Z")
    assert "Link" not in response.headers


def test_numbered_pages_and_their_link_header(app, client, orgs):
    from ..helpers import make_org

    with app.app_context():
        org = make_org("Big", "admin@big.example", events=7, attendees_per_event=0)
    raw = issue(app, org)
    first = client.get("/admin/events?per_page=3&page=1", headers=bearer(raw))
    assert first.json["meta"] == {"page": 1, "per_page": 3, "total": 7}
    assert first.headers["Link"] == '</admin/events?per_page=3&page=2>; rel="next"'
    middle = client.get("/admin/events?per_page=3&page=2", headers=bearer(raw))
    assert middle.headers["Link"] == (
        '</admin/events?per_page=3&page=1>; rel="prev", '
        '</admin/events?per_page=3&page=3>; rel="next"'
    )
    last = client.get("/admin/events?per_page=3&page=3", headers=bearer(raw))
    assert last.headers["Link"] == '</admin/events?per_page=3&page=2>; rel="prev"'
    ids = [e["id"] for page in (first, middle, last) for e in page.json["data"]]
    assert ids == org.event_ids
    beyond = client.get("/admin/events?per_page=3&page=9", headers=bearer(raw))
    assert beyond.json == {"data": [], "meta": {"page": 9, "per_page": 3, "total": 7}}


@pytest.mark.parametrize("extra", ["event_id=9", "_external=0", "_method=POST", "_anchor=x", "foo=bar"])
def test_links_carry_only_the_lists_own_parameters(app, client, read_token, orgs, extra):
    event_id = orgs["acme"].event_ids[0]
    own = client.get(f"/admin/events/{event_id}/attendees?per_page=1&page=1&{extra}", headers=bearer(read_token))
    assert own.status_code == 200
    assert own.headers["Link"] == (
        f'</admin/events/{event_id}/attendees?per_page=1&page=2>; rel="next"')
    # A cursor link carries the cursor alone.
    first = client.get(f"/admin/events/{event_id}/attendees?per_page=1&{extra}", headers=bearer(read_token))
    assert re.fullmatch(rf'</admin/events/{event_id}/attendees\?cursor=[\w.-]+>; rel="next"', first.headers["Link"])
    # Extra parameters change nothing about another account's 404 either.
    foreign_id = orgs["globex"].event_ids[0]
    foreign = client.get(f"/admin/events/{foreign_id}/attendees?per_page=1&{extra}", headers=bearer(read_token))
    assert foreign.status_code == 404


def test_numbered_links_keep_updated_since(client, read_token):
    response = client.get("/admin/events?per_page=1&page=1&updated_since=2020-01-01T00:00:00Z",
                          headers=bearer(read_token))
    assert response.headers["Link"] == (
        '</admin/events?per_page=1&page=2&updated_since=2020-01-01T00%3A00%3A00Z>; rel="next"')


def test_updated_since_filters_for_incremental_sync(app, client, read_token, orgs):
    with app.app_context():
        db.session.execute(sa.update(Event).values(updated_at=datetime(2026, 1, 1, tzinfo=UTC)))
        db.session.execute(sa.update(Event).where(Event.id == orgs["acme"].event_ids[1])
                           .values(updated_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC)))
        db.session.commit()
    response = client.get("/admin/events?updated_since=2026-02-01T00:00:00Z", headers=bearer(read_token))
    assert [e["id"] for e in response.json["data"]] == [orgs["acme"].event_ids[1]]
    assert response.json["meta"]["total"] == 1
    assert response.json["data"][0]["updated_at"] == "2026-03-01T12:00:00Z"
    same = client.get("/admin/events?updated_since=2026-03-01T14:00:00%2B02:00", headers=bearer(read_token))
    assert [e["id"] for e in same.json["data"]] == [orgs["acme"].event_ids[1]]


@pytest.mark.parametrize("query, parameter", [
    ("page=0", "page"), ("page=abc", "page"), ("per_page=abc", "per_page"), ("per_page=101", "per_page"),
    ("updated_since=last-tuesday", "updated_since"),
])
def test_bad_query_values_are_400_naming_the_parameter(client, read_token, query, parameter):
    for path in ("/admin/events", "/admin/events/1/attendees"):
        response = client.get(f"{path}?{query}", headers=bearer(read_token))
        assert response.status_code == 400
        assert response.json["error"] == "invalid_parameter"
        assert response.json["parameter"] == parameter
        assert parameter in response.json["message"]


def test_one_event(client, read_token, orgs):
    event_id = orgs["acme"].event_ids[2]
    response = client.get(f"/admin/events/{event_id}", headers=bearer(read_token))
    assert response.status_code == 200
    assert response.json["data"]["id"] == event_id
    assert response.json["data"]["title"] == "Acme Events event 2"


def test_attendees_of_an_event(app, client, read_token, orgs):
    event_id = orgs["acme"].event_ids[0]
    with app.app_context():
        expected = db.session.scalars(sa.select(Attendee.id).where(Attendee.event_id == event_id)
                                      .order_by(Attendee.id)).all()
    response = client.get(f"/admin/events/{event_id}/attendees", headers=bearer(read_token))
    assert response.status_code == 200
    assert [a["id"] for a in response.json["data"]] == expected
    assert response.json["meta"]["total"] == 2
    attendee = response.json["data"][0]
    assert set(attendee) == {"id", "event_id", "name", "email", "ticket_type", "checked_in", "checked_in_at",
                             "created_at", "updated_at", "ticket_code"}
    assert attendee["event_id"] == event_id and attendee["checked_in"] is False


# -- account scoping ---------------------------------------------------------------------

FOREIGN_PATHS = [
    "/admin/events/{event}",
    "/admin/events/{event}/attendees",
    "/admin/events/{event}/attendees/1",
]


@pytest.mark.parametrize("template", FOREIGN_PATHS)
def test_another_accounts_ids_get_exactly_the_not_found_answer(app, client, orgs, template):
    # Two fresh tokens at one frozen instant, so even the rate-limit headers match.
    first, second = issue(app, orgs["acme"]), issue(app, orgs["acme"])
    with freeze_time(datetime(2026, 6, 1, 9, 0, tzinfo=UTC)):
        foreign = client.get(template.format(event=orgs["globex"].event_ids[0]), headers=bearer(first))
        missing = client.get(template.format(event=987654), headers=bearer(second))
    assert foreign.status_code == missing.status_code == 404
    assert foreign.data == missing.data
    assert sorted(foreign.headers.items()) == sorted(missing.headers.items())
    assert foreign.json["error"] == "not_found"


def test_lists_never_show_another_accounts_rows(client, app, orgs):
    for name, other in (("acme", "globex"), ("globex", "acme")):
        raw = issue(app, orgs[name])
        ids = {e["id"] for e in client.get("/admin/events?per_page=100", headers=bearer(raw)).json["data"]}
        assert ids == set(orgs[name].event_ids)
        assert not ids & set(orgs[other].event_ids)


# -- errors are JSON on JSON requests ------------------------------------------------------

def test_unknown_api_path_is_404_json(client, read_token):
    response = client.get("/admin/nowhere", headers=bearer(read_token))
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    assert response.json["error"] == "not_found"


def test_server_errors_are_json_too(tmp_path):
    from usetix import create_app

    from ..helpers import make_test_config

    # A database without its tables: the token lookup fails with a real exception. (One that
    # cannot be opened at all is a 503: tests/app/test_database_faults.py, tests/live/test_faults.py.)
    broken = create_app({**make_test_config(tmp_path), "PROPAGATE_EXCEPTIONS": False,
                         "DATABASE_URL": f"sqlite:///{tmp_path / 'no-tables.sqlite3'}"})
    response = broken.test_client().get("/admin/events", headers=bearer(tokens.generate()))
    assert response.status_code == 500
    assert response.mimetype == "application/json"
    assert response.json["error"] == "internal_server_error"


# -- cost of authentication -----------------------------------------------------------------

def test_authenticated_list_costs_two_queries_and_last_used_is_written_once_a_minute(app, client, read_token):
    start = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    # buffered=True closes the response, as every server does: the usage write runs then.
    with freeze_time(start) as clock:
        with QueryLog(app) as first:
            client.get("/admin/events", headers=bearer(read_token), buffered=True)
        with QueryLog(app) as second:
            for _ in range(5):
                client.get("/admin/events", headers=bearer(read_token), buffered=True)
        clock.tick(timedelta(seconds=61))
        with QueryLog(app) as later:
            client.get("/admin/events", headers=bearer(read_token), buffered=True)
    updates = lambda log: [s for s in log.statements if s.lstrip().upper().startswith("UPDATE")]  # noqa: E731
    selects = lambda log: [s for s in log.statements if s.lstrip().upper().startswith("SELECT")]  # noqa: E731
    assert len(updates(first)) == 1 and len(updates(later)) == 1
    assert updates(second) == []
    assert len(selects(second)) == 5 * 2  # the token, then the page with its total
    assert not [s for s in first.statements + second.statements if "server_sessions" in s]
    with app.app_context():
        assert db.session.scalar(sa.select(ApiToken.last_used_at)) == start + timedelta(seconds=61)


# -- the OpenAPI document --------------------------------------------------------------------

@pytest.mark.parametrize("accept", ["application/json", "*/*"])
def test_openapi_document_needs_no_token(client, accept):
    response = client.get("/admin/openapi.json", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.json["openapi"].startswith("3.1")


def test_responses_match_the_openapi_document(client, read_token, orgs):
    spec = client.get("/admin/openapi.json").json
    event_id = orgs["acme"].event_ids[0]
    calls = [
        ("/admin/account", "/admin/account", 200),
        ("/admin/events?per_page=2", "/admin/events", 200),
        (f"/admin/events/{event_id}", "/admin/events/{event_id}", 200),
        (f"/admin/events/{event_id}/attendees", "/admin/events/{event_id}/attendees", 200),
        ("/admin/events/987654", "/admin/events/{event_id}", 404),
        ("/admin/events?page=0", "/admin/events", 400),
    ]
    for url, template, status in calls:
        response = client.get(url, headers=bearer(read_token))
        assert response.status_code == status, url
        declared = spec["paths"][template]["get"]["responses"][str(status)]
        if "$ref" in declared:
            declared = spec["components"]["responses"][declared["$ref"].rsplit("/", 1)[1]]
        schema = {**declared["content"]["application/json"]["schema"], "components": spec["components"]}
        jsonschema.validate(response.json, schema, format_checker=jsonschema.FormatChecker())
    unauthorized = client.get("/admin/events", headers=JSON)
    schema = {**spec["paths"]["/admin/events"]["get"]["responses"]["401"]["content"]["application/json"]["schema"],
              "components": spec["components"]}
    jsonschema.validate(unauthorized.json, schema)


def test_an_api_request_makes_no_orm_session(app, client, read_token, monkeypatch):
    """The API reads on its own connection; the request's teardown must not build an ORM
    session just to remove it (it cost every API request ~100k instructions)."""
    from flask_sqlalchemy.session import Session

    made = []
    real_init = Session.__init__

    def counting_init(self, *args, **kwargs):
        made.append(1)
        real_init(self, *args, **kwargs)

    assert client.get("/admin/events", headers=bearer(read_token)).status_code == 200  # warm: last_used_at
    monkeypatch.setattr(Session, "__init__", counting_init)
    assert client.get("/admin/events", headers=bearer(read_token)).status_code == 200
    assert made == []
