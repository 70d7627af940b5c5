"""Property-based tests (hypothesis) of everything that reads a credential or a query string.

The API through the test client (the pure parsers' properties are in
tests/unit/test_fuzz.py): whatever arrives in the Authorization header (text or bytes up
to 64 KiB, unicode, NUL and control characters, runs of spaces, any case of the scheme,
several headers, a well-formed prefix with a broken checksum) gets a 401 with a JSON body
and a Bearer challenge: never a 500, never a session cookie, and never a database query
unless the value passed the format and checksum checks.

Every test is bounded (max_examples, no deadline), so the module runs in seconds.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from usetix.core import token_format as tokens
from usetix.core.authorization import parse_authorization

from ..helpers import bearer, csrf_token_from
from ..queries import recorded_queries
from ..strategies import (
    MAX_HEADER,
    broken_checksum_tokens,
    header_texts,
    long_text,
    one_character_changed,
    well_formed_tokens,
)

# Fuzzing sends thousands of bad credentials from one address: lift the failed-auth limit
# (its 429 has tests of its own in test_throttling.py).
pytestmark = pytest.mark.app_config(API_FAILED_AUTH_LIMIT="1000000 per minute")

# Tests that share one app (and its database) across examples: safe, they only read.
THROUGH_APP = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                                HealthCheck.too_slow,
                                                                                HealthCheck.data_too_large])



# What a WSGI server hands the app: header bytes decoded as latin-1 (PEP 3333).
header_bytes = st.one_of(
    st.binary(max_size=1024),
    st.builds(lambda piece, n: (piece * n)[:MAX_HEADER],
              st.binary(min_size=1, max_size=16), st.integers(1, MAX_HEADER)),
    header_texts().map(lambda text: text.encode("utf-8", "surrogatepass")[:MAX_HEADER]),
).map(lambda raw: raw.decode("latin-1"))


# --- The API through the test client -----------------------------------------------------------

API_PATHS = ["/admin/account", "/admin/events", "/admin/events/1", "/admin/events/1/attendees", "/admin/nope"]


def passes_format_check(header: str | None) -> bool:
    """Whether the value would reach the database: one bearer value, well formed, checksum ok."""
    credential = parse_authorization(header)
    if credential.problem:
        return False
    try:
        tokens.parse(credential.token)
    except tokens.MalformedToken:
        return False
    return True


def assert_refused(response, method: str) -> None:
    assert response.status_code == 401, (response.status_code, response.get_data()[:300])
    assert response.mimetype == "application/json"
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="Usetix"')
    assert "Set-Cookie" not in response.headers
    assert "Cookie" not in response.vary  # no session was opened
    if method != "HEAD":
        body = response.json
        assert set(body) == {"error", "message"}
        assert body["error"] in {"missing_token", "malformed_token", "invalid_token"}


def send(client, app, header: str | None, method: str = "GET", path: str = "/admin/events"):
    environ = {} if header is None else {"HTTP_AUTHORIZATION": header}
    with recorded_queries(app) as queries:
        response = client.open(path, method=method, headers={"Accept": "application/json"},
                               environ_overrides=environ)
    return response, queries


@THROUGH_APP
@given(header=header_texts(), method=st.sampled_from(["GET", "HEAD", "POST", "DELETE", "PATCH", "OPTIONS"]),
       path=st.sampled_from(API_PATHS))
@example(header="", method="GET", path="/admin/events")
@example(header="Bearer", method="GET", path="/admin/events")
@example(header="Bearer \x00", method="GET", path="/admin/events")
@example(header="Bearer utx_" + "\x00" * 36, method="GET", path="/admin/events")
@example(header="Basic dXNlcjpwYXNz", method="GET", path="/admin/events")
@example(header=" " * MAX_HEADER, method="GET", path="/admin/events")
@example(header="Bearer " + "a" * (MAX_HEADER - 7), method="GET", path="/admin/events")
def test_api_refuses_any_header_text(app, client, orgs, header, method, path):
    response, queries = send(client, app, header, method, path)
    assert_refused(response, method)
    if not passes_format_check(header):
        event("refused before the database")
        assert queries == [], queries
    else:
        event("looked up")
        assert len(queries) == 1  # the one look-up by digest
        assert response.json["error"] == "invalid_token" if method != "HEAD" else True


@THROUGH_APP
@given(header=header_bytes)
@example(header="Bearer utx_\xff\xfe")
@example(header="\x00" * 1024)
def test_api_refuses_any_header_bytes(app, client, orgs, header):
    response, queries = send(client, app, header)
    assert_refused(response, "GET")
    if not passes_format_check(header):
        assert queries == []


@THROUGH_APP
@given(token=broken_checksum_tokens() | one_character_changed(), scheme=st.sampled_from(["Bearer", "bearer", "BEARER"]))
def test_api_refuses_a_broken_checksum_without_a_query(app, client, orgs, token, scheme):
    response, queries = send(client, app, f"{scheme} {token}")
    assert_refused(response, "GET")
    assert response.json["error"] == "malformed_token"
    assert "checksum" in response.json["message"]
    assert queries == []


@THROUGH_APP
@given(token=well_formed_tokens)
def test_api_refuses_an_unknown_well_formed_token_after_one_query(app, client, orgs, token):
    response, queries = send(client, app, f"Bearer {token}")
    assert_refused(response, "GET")
    assert response.json["error"] == "invalid_token"
    assert len(queries) == 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(others=st.lists(header_texts(), min_size=1, max_size=3), first=st.booleans())
def test_several_authorization_headers_never_authenticate(app, client, read_token, others, first):
    # A server joins repeated headers with a comma; the real token among them must not pass.
    values = [f"Bearer {read_token}", *others] if first else [*others, f"Bearer {read_token}"]
    response, _ = send(client, app, ",".join(values))
    assert_refused(response, "GET")


def test_the_fuzzed_checks_pass_for_the_real_token(app, client, read_token):
    # The same request with the real token is served, so the refusals above are about the header.
    response, queries = send(client, app, f"Bearer {read_token}")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert queries  # the look-up and the page


@THROUGH_APP
@given(args=st.dictionaries(st.sampled_from(["page", "per_page", "updated_since"]),
                            st.text(max_size=30) | st.integers(-5, 10**10).map(str), min_size=1),
       path=st.sampled_from(["/admin/events", "/admin/events/1/attendees"]))
def test_api_list_parameters_are_200_or_400(client, read_token, args, path):
    response = client.get(path, query_string=args, headers=bearer(read_token))
    assert response.status_code in (200, 400), response.get_data()[:300]
    if response.status_code == 400:
        assert response.json["error"] == "invalid_parameter"
        assert response.json["parameter"] in args


@pytest.mark.parametrize("order", ["real first", "real last"])
def test_two_authorization_header_lines_never_authenticate(client, read_token, order):
    # Two header lines as the test client sends them (joined into one WSGI value).
    lines = [("Authorization", f"Bearer {read_token}"), ("Authorization", "Bearer utx_other")]
    if order == "real last":
        lines.reverse()
    response = client.get("/admin/events", headers=[*lines, ("Accept", "application/json")])
    assert_refused(response, "GET")
    assert response.json["error"] == "malformed_token"


# --- Other headers and the login form ----------------------------------------------------------

@THROUGH_APP
@given(accept=st.text(max_size=200) | st.sampled_from(["application/json;q=nan", "application/json;q=1e309",
                                                        "application/json;q=-0", "*/*;q=0.5, application/json"]),
       path=st.sampled_from(["/admin/events", "/admin/events/1", "/login", "/admin/settings/api_tokens", "/nope"]))
def test_any_accept_header_is_answered_without_a_server_error(client, read_token, accept, path):
    response = client.get(path, environ_overrides={"HTTP_ACCEPT": accept, "HTTP_AUTHORIZATION": f"Bearer {read_token}"})
    assert response.status_code in (200, 302, 401, 404), response.get_data()[:300]
    assert response.mimetype in ("application/json", "text/html")


login_text = st.text(max_size=300) | long_text.map(lambda text: text[:5000])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(email=login_text | st.just("admin@acme.example"), password=login_text)
@example(email="admin@acme.example\x00", password="x")
@example(email="a" * 255, password="x")
@example(email="admin@acme.example", password="\x00")
@pytest.mark.app_config(LOGIN_RATE_LIMIT="1000000 per minute", LOGIN_ADDRESS_RATE_LIMIT="1000000 per minute",
                        LOGIN_EMAIL_RATE_LIMIT="1000000 per minute")
def test_login_form_answers_any_text_without_a_server_error(app, orgs, email, password):
    client = app.test_client()
    page = client.get("/login")
    response = client.post("/login", data={"email": email, "password": password,
                                           "csrf_token": csrf_token_from(page.text)})
    assert response.status_code == 200  # the form again, with an error: never 500, never logged in
    assert "Unknown email or wrong password." in response.text or 'class="error"' in response.text
