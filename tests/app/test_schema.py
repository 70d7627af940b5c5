"""The API against its own OpenAPI document, with schemathesis.

The document is the one the app serves at /admin/openapi.json. schemathesis generates
valid and invalid requests for every operation from it (examples, boundary values, random
data, unsupported methods, missing or broken credentials) and checks every response: no
5xx, a status code, content type, headers and body the document declares, invalid input
refused, and a request without valid credentials never served.

The requests go through the WSGI app of each test (a fresh database with two accounts, as
everywhere else). Generation is bounded so the whole module stays well under a minute.
"""

from __future__ import annotations

import re
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.config import PositiveDataAcceptanceConfig

from usetix import create_app
from usetix.database.idempotency import valid_key

from ..helpers import bearer

# Schemathesis sends hundreds of requests with bad credentials on purpose (and expects a
# 401 for each): the failed-authentication limit per address has its own tests.
pytestmark = pytest.mark.app_config(API_FAILED_AUTH_LIMIT="1000000 per minute")

# The document as served: the endpoint needs no database, so an app that never connects
# to one is enough to fetch it when the module is collected.
_document_app = create_app({"TESTING": True, "SECRET_KEY": "schema-test-secret-key", "DATABASE_URL": "sqlite://"})
schema = schemathesis.openapi.from_wsgi("/admin/openapi.json", _document_app)
# The tests send their own real token; schemathesis must not replace or drop it in
# requests it means as valid (it still sends requests with no and with broken credentials
# to check that they are refused).
schema.config.generation.update(with_security_parameters=False)
# Two answers to schema-valid requests that JSON Schema cannot foresee: 412 for a generated
# If-Match that names no version, 422 for what a schema cannot say (ends_at before
# starts_at). tests/app/test_api_writes.py checks both precisely.
schema.config.checks.positive_data_acceptance = PositiveDataAcceptanceConfig(
    expected_statuses=["2xx", "3xx", "401", "403", "404", "409", "412", "422", "429"])

BOUNDED = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _operations_of_the_app(app) -> set[tuple[str, str]]:
    """(METHOD, OpenAPI path) of every JSON operation the app serves."""
    operations = set()
    for rule in app.json_url_map.iter_rules():
        # The API's routes, and the leak report (public, but an API operation all the same).
        if (rule.endpoint.partition(".")[0] != "api" or rule.endpoint.startswith("api.bench")) \
                and rule.endpoint != "leak_report.report_leaked_credentials":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        operations |= {(method, path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return operations


def test_served_document_and_routes_agree(client, app):
    """The document is built from the code (usetix/api_contract/openapi.py): every route the API
    serves is documented, and nothing is documented that the API does not serve."""
    client.get("/admin/openapi.json")  # builds the URL maps
    documented = {(op.method.upper(), op.path) for op in (r.ok() for r in schema.get_all_operations())}
    assert documented == _operations_of_the_app(app)
    assert ("POST", "/admin/events/{event_id}/attendees/{attendee_id}/check_in") in documented
    assert not any(method == "PUT" for method, _ in documented)


def test_served_document_is_built_from_the_validating_models(client):
    from usetix.api_contract import bodies as api_schemas

    document = client.get("/admin/openapi.json").json
    schemas = document["components"]["schemas"]
    # The request bodies are the models' own JSON Schema: the same limits, the same required fields.
    expected = api_schemas.EventCreate.model_json_schema(ref_template="#/components/schemas/{model}")
    assert schemas["EventCreate"]["required"] == expected["required"]
    assert schemas["EventCreate"]["properties"]["title"]["maxLength"] == 200
    assert schemas["EventCreate"]["additionalProperties"] is False
    assert schemas["EventPatch"].get("required", []) == []
    body = document["paths"]["/admin/events/{event_id}"]["patch"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/merge-patch+json"}
    listed = [p["name"] for p in document["paths"]["/admin/events"]["get"]["parameters"]]
    assert "include_deleted" in listed and "updated_since" in listed


# Looked up by its documented name (`st run --exclude-checks unsupported_method`).
UNSUPPORTED_METHOD = schemathesis.checks.CHECKS.get_one("unsupported_method")


POSITIVE_DATA_ACCEPTANCE = schemathesis.checks.CHECKS.get_one("positive_data_acceptance")


def _excluded(case) -> list:
    # The leak report needs no token, but a request that carries one is still judged by it:
    # a read token's TRACE there is 401 insufficient_scope, "whatever the path" (README).
    if case.path == "/admin/credentials/revoke":
        return [UNSUPPORTED_METHOD]
    # A cursor is signed by the server: no generated one is good, and each is its 400
    # (tests/app/test_cursor_pages.py). The rest of its answer is still checked.
    if "cursor" in (case.query or {}):
        return [POSITIVE_DATA_ACCEPTANCE]
    return []


@schema.parametrize()
@BOUNDED
def test_api_conforms_with_a_read_token(case, app, read_token):
    response = case.call_and_validate(headers=bearer(read_token), app=app, excluded_checks=_excluded(case))
    assert response.status_code < 500


@schema.parametrize()
@BOUNDED
def test_api_conforms_with_a_write_token(case, app, write_token):
    response = case.call_and_validate(headers=_write_headers(case, write_token), app=app,
                                      excluded_checks=_excluded(case))
    assert response.status_code < 500


def _write_headers(case, token: str) -> dict:
    # schemathesis may send one generated Idempotency-Key with different bodies: that is a
    # 422 idempotency_key_reused by design (tests/app/test_api_writes.py), so each call with a
    # valid key gets its own (an invalid one is kept: its 400 is checked).
    headers = bearer(token)
    if valid_key((case.headers or {}).get("Idempotency-Key") or ""):
        headers["Idempotency-Key"] = str(uuid.uuid4())
    return headers


def test_documented_bounds_are_the_apps(app, client):
    from usetix.core.list_query import MAX_PAGE, MAX_PER_PAGE

    document = client.get("/admin/openapi.json").json
    largest_id = app.url_map.converters["row_id"](app.url_map).max
    expected = {"event_id": (0, largest_id), "attendee_id": (0, largest_id), "page": (1, MAX_PAGE),
                "per_page": (1, MAX_PER_PAGE)}
    seen = set()
    for path, item in document["paths"].items():
        operations = [op for key, op in item.items() if key != "parameters"]
        for parameter in item.get("parameters", []) + [p for op in operations for p in op.get("parameters", [])]:
            if parameter["name"] in expected:
                schema_ = parameter["schema"]
                assert (schema_["minimum"], schema_["maximum"]) == expected[parameter["name"]], (path, parameter)
                seen.add(parameter["name"])
    assert seen == set(expected)


# The stateful run sends the test's real token wherever schemathesis would put generated
# credentials, so its "invalid credentials accepted" check would misfire; the tests above
# check refused credentials for every operation.
# It starts from creating an event: the lists and the account are left out, so the
# bounded run goes deep along the write links rather than wide; so are the webhook
# operations, which have no links (the tests above send them generated requests).
stateful_schema = schemathesis.openapi.from_wsgi("/admin/openapi.json", _document_app).exclude(
    operation_id=["getAccount", "listEvents", "listAttendees", "listScans", "reportLeakedCredentials"]).exclude(
    tag="Webhooks")
# Valid data only, so that chains go on: invalid input is the tests above's business.
stateful_schema.config.generation.update(with_security_parameters=False, modes=[GenerationMode.POSITIVE])
stateful_schema.config.checks.update(excluded_check_names=["ignored_auth"])
# Only the document's own links: links inferred from Location headers would send an event's
# id where an attendee's belongs (their calls are 404s that end a chain).
stateful_schema.config.phases.stateful.inference.algorithms = []
stateful_schema.config.checks.positive_data_acceptance = schema.config.checks.positive_data_acceptance


def test_stateful_sequences_through_the_documents_links(app, write_token):
    """schemathesis follows the document's OpenAPI links from one answer to the next
    operation (create → read → update → add an attendee → check in → undo → delete), and
    checks every answer; the test then asserts that such chains really ran on created objects."""
    created_events: set[int] = set()
    created_attendees: set[int] = set()
    reached: set[str] = set()

    class Workflow(stateful_schema.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"app": app, "headers": _write_headers(case, write_token)}

        def before_call(self, case):
            # A scan dated in the future is a 422 by design; positive data knows no "now".
            if case.operation.path.endswith("/check_in") and isinstance(case.body, dict) \
                    and "checked_in_at" in case.body:
                case.body["checked_in_at"] = "2026-01-01T00:00:00Z"

        def after_call(self, response, case):
            ids = case.path_parameters or {}
            body = response.json() if response.status_code in (200, 201) else {}
            if case.operation.path == "/admin/events" and case.method.upper() == "POST" and response.status_code == 201:
                created_events.add(body["data"]["id"])
            elif case.operation.path.endswith("/attendees") and case.method.upper() == "POST" \
                    and response.status_code == 201:
                created_attendees.add(body["data"]["id"])
                if ids.get("event_id") in created_events:
                    reached.add("attendee of a created event")
            elif response.status_code < 300 and (ids.get("event_id") in created_events
                                                 or ids.get("attendee_id") in created_attendees):
                reached.add(f"{case.method.upper()} {case.operation.path}")

    Workflow.run(settings=settings(max_examples=60, stateful_step_count=10, deadline=None, derandomize=True,
                                   suppress_health_check=list(HealthCheck)))
    assert created_events and created_attendees
    assert {"GET /admin/events/{event_id}", "PATCH /admin/events/{event_id}", "attendee of a created event"} <= reached
    # Which operation a created attendee's links lead to first is the generator's draw (Hypothesis
    # seeds it with the package's own string constants, so any new literal moves it): one of them.
    attendee_operations = {f"{method} /admin/events/{{event_id}}/attendees/{{attendee_id}}{tail}"
                           for method, tail in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/check_in"),
                                                ("DELETE", "/check_in"), ("POST", "/reissue_ticket"))}
    assert attendee_operations & reached, reached
