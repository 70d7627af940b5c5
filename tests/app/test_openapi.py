"""The served OpenAPI document, read as a generated client and a newcomer read it.

tests/app/test_schema.py checks it against the routes and the answers (schemathesis);
tests/live/test_openapi_client.py generates a client from it and syncs with it on real
gunicorn; tests/app/test_openapi_lint.py lints it with Spectral. Here: what every operation
must say (tags, description, examples, the 401 challenge, the rate-limit headers), open
answers and closed request bodies, and error codes that are the ones the code answers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import jsonschema
import pytest
from werkzeug.exceptions import MethodNotAllowed, NotFound, RequestEntityTooLarge

from usetix import create_app
from usetix.api_contract import bodies as api_schemas
from usetix.web.responses import http_error_response

PACKAGE = Path(__file__).resolve().parents[2] / "usetix"
METHODS = ("get", "put", "post", "patch", "delete", "head", "options", "trace")
RATE_LIMIT_HEADERS = {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}


@pytest.fixture(scope="module")
def document_app():
    # The endpoint needs no database: an app that never connects to one serves it.
    return create_app({"TESTING": True, "SECRET_KEY": "openapi-test-secret-key", "DATABASE_URL": "sqlite://"})


@pytest.fixture(scope="module")
def document(document_app):
    response = document_app.test_client().get("/admin/openapi.json")
    assert response.status_code == 200
    return response.json


def operations(document):
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield f"{method.upper()} {path}", item[method]


def authenticated(document, operation) -> bool:
    return operation.get("security", document["security"]) != []


def resolve(document, node: dict) -> dict:
    while "$ref" in node:
        section, kind, name = node["$ref"].removeprefix("#/").split("/")
        node = document[section][kind][name]
    return node


def schema_nodes(document, schema: dict, seen: set | None = None):
    """Every subschema reachable from ``schema``, through $refs too."""
    seen = set() if seen is None else seen
    if "$ref" in schema:
        if schema["$ref"] in seen:
            return
        seen.add(schema["$ref"])
        yield from schema_nodes(document, resolve(document, schema), seen)
        return
    yield schema
    for key, value in schema.items():
        if key in ("properties", "$defs"):
            children = list(value.values())
        elif key in ("allOf", "anyOf", "oneOf", "prefixItems"):
            children = value
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            children = [value]
        else:
            continue
        for child in children:
            yield from schema_nodes(document, child, seen)


def validator(document, schema: dict) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]},
                                           format_checker=jsonschema.FormatChecker())


# -- what a reader sees first ------------------------------------------------------------

def test_the_accept_rule_is_said_where_a_reader_and_a_generator_look_first(document):
    """Without Accept: application/json the API answers like the website (a 302 to /login):
    the first thing a client generated from the document trips over."""
    first_paragraph = document["info"]["description"].split("\n\n")[0]
    assert "Accept: application/json" in first_paragraph and "302" in first_paragraph
    assert "/login" in first_paragraph
    bearer = document["components"]["securitySchemes"]["bearerAuth"]["description"]
    assert "Accept: application/json" in bearer and "302" in bearer
    assert "*Read*" in bearer and "*Read + Write*" in bearer  # the two tiers


def test_every_operation_has_a_tag_a_description_and_examples(document):
    defined_tags = {tag["name"] for tag in document["tags"]}
    assert all(tag.get("description") for tag in document["tags"])
    seen_tags = set()
    for name, operation in operations(document):
        assert operation.get("tags") and set(operation["tags"]) <= defined_tags, name
        seen_tags |= set(operation["tags"])
        assert len(operation.get("description", "")) > len(operation["summary"]), name
        for parameter in operation.get("parameters", []):
            assert parameter.get("description"), (name, parameter["name"])
        for media in operation.get("requestBody", {}).get("content", {}).values():
            assert "example" in media, name
        for status, answer in operation["responses"].items():
            for media in resolve(document, answer).get("content", {}).values():
                assert "example" in media, (name, status)
    assert seen_tags == defined_tags
    assert len({operation["tags"][0] for _, operation in operations(document)}) > 1  # not one "default" module


def test_every_example_is_valid_for_its_schema(document):
    checked = 0
    for _, operation in operations(document):
        bodies = [operation.get("requestBody", {})] + [resolve(document, a) for a in operation["responses"].values()]
        for body in bodies:
            for media in body.get("content", {}).values():
                validator(document, media["schema"]).validate(media["example"])
                checked += 1
    for header in document["components"]["headers"].values():
        validator(document, header["schema"]).validate(header["example"])
    assert checked > 50


# -- authentication and limits -----------------------------------------------------------

def test_every_authenticated_operation_documents_401_with_its_challenge(document):
    for name, operation in operations(document):
        if not authenticated(document, operation):
            assert "401" not in operation["responses"], name
            continue
        answer = resolve(document, operation["responses"]["401"])
        challenge = resolve(document, answer["headers"]["WWW-Authenticate"])
        assert challenge["required"] is True, name
        codes = answer["content"]["application/json"]["schema"]["properties"]["error"]["enum"]
        assert {"missing_token", "invalid_token", "revoked_token", "expired_token"} <= set(codes), name
        # A Read token's write is refused: only a write operation can answer that.
        assert ("insufficient_scope" in codes) == (name.split()[0] not in ("GET", "HEAD")), name


def test_every_answer_to_an_authenticated_request_documents_the_limit_and_expiry_headers(document):
    for name, operation in operations(document):
        for status, answer in operation["responses"].items():
            headers = set(resolve(document, answer).get("headers", {}))
            if status == "429":  # every 429 carries the limit it hit, and when to retry
                assert RATE_LIMIT_HEADERS | {"Retry-After"} <= headers, (name, status)
            # Refused before the token is read: no token, no limit counted for it.
            if not authenticated(document, operation) or status in ("401", "413"):
                assert "Usetix-Token-Expiration" not in headers, (name, status)
                continue
            assert RATE_LIMIT_HEADERS | {"Usetix-Token-Expiration"} <= headers, (name, status)
    for path in ("/admin/events/{event_id}", "/admin/events/{event_id}/attendees/{attendee_id}"):
        assert "ETag" in document["paths"][path]["get"]["responses"]["304"]["headers"]
    location = document["components"]["headers"]["Location"]
    assert location["schema"]["format"] == "uri-reference" and "relative" in location["description"]


# -- open answers, closed requests -------------------------------------------------------

def test_answers_are_open_and_request_bodies_closed(document):
    """A client generated today must read an answer that gains a field in a later release
    (additionalProperties: false made datamodel-code-generator's models refuse it); a
    request with an unknown field stays a 422."""
    answers = 0
    for name, operation in operations(document):
        for status, answer in operation["responses"].items():
            for media in resolve(document, answer).get("content", {}).values():
                for node in schema_nodes(document, media["schema"]):
                    assert node.get("additionalProperties", True) is not False, (name, status, node.get("title"))
                    answers += 1
        for media in operation.get("requestBody", {}).get("content", {}).values():
            model = getattr(api_schemas, media["schema"]["$ref"].rsplit("/", 1)[1])
            if model.model_config.get("extra") != "forbid":
                continue  # the leak report: its view reads `credentials` and ignores the rest
            for node in schema_nodes(document, media["schema"]):
                if node.get("type") == "object":
                    assert node["additionalProperties"] is False, (name, node.get("title"))
    assert answers > 100


def test_an_answer_with_a_field_added_later_is_still_valid(document):
    event = document["paths"]["/admin/events/{event_id}"]["get"]["responses"]["200"]["content"]["application/json"]
    later = {"data": {**event["example"]["data"], "capacity": 300}, "links": {}}
    validator(document, event["schema"]).validate(later)
    page = document["paths"]["/admin/events"]["get"]["responses"]["200"]["content"]["application/json"]
    validator(document, page["schema"]).validate({**page["example"], "meta": {**page["example"]["meta"], "pages": 1}})


def test_one_envelope_component_per_kind_of_answer(document):
    """Every successful body is a shared component: a generated client gets one EventEnvelope,
    not one class per operation that answers an event."""
    refs = set()
    for name, operation in operations(document):
        for status, answer in operation["responses"].items():
            if status.startswith("2"):
                for media in answer.get("content", {}).values():
                    assert set(media["schema"]) == {"$ref"}, (name, status)
                    refs.add(media["schema"]["$ref"].rsplit("/", 1)[1])
    assert refs == {"AccountEnvelope", "EventPage", "EventEnvelope", "AttendeePage", "AttendeeEnvelope",
                    "CheckedInEnvelope", "AdmissionEnvelope", "BatchResults", "CheckInStatusEnvelope", "ScanPage",
                    "LeakReportAccepted", "WebhookEndpointList", "WebhookEndpointEnvelope",
                    "WebhookEndpointCreatedEnvelope", "WebhookSecretEnvelope", "WebhookQueuedEnvelope",
                    "WebhookRecoveredEnvelope", "WebhookDeliveryPage"}


# -- error codes -------------------------------------------------------------------------

def _string(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def codes_in_the_code() -> tuple[set[tuple[int, str]], set[str]]:
    """What the package answers, read from its source: ``(status, code)`` of every
    ``error_response(status, "code", ...)``, and every other ``"error": "code"`` or
    ``Refusal("code", ...)`` (a 401 refusal, or a 429)."""
    with_status, codes = set(), set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and len(node.args) >= 2:
                name = getattr(node.func, "id", getattr(node.func, "attr", None))
                status, code = node.args[0], _string(node.args[1])
                if name == "error_response" and isinstance(status, ast.Constant) and code:
                    with_status.add((status.value, code))
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Refusal" and node.args:
                codes.add(_string(node.args[0]))
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if key is not None and _string(key) == "error" and _string(value):
                        codes.add(_string(value))
    return with_status, codes - {None}


def documented_codes(document) -> set[tuple[int, str]]:
    pairs = set()
    for _, operation in operations(document):
        for status, answer in operation["responses"].items():
            if status[0] in "45":
                schema = resolve(document, answer)["content"]["application/json"]["schema"]
                pairs |= {(int(status), code) for code in schema["properties"]["error"]["enum"]}
    return pairs


def test_the_documented_error_codes_are_the_ones_the_code_answers(document, document_app):
    """Each error response's enum is built from one table (usetix/api_contract/openapi.py); the codes
    themselves are written where each answer is made. A code the package answers that no
    operation documents, or a documented one the package never answers, fails here."""
    with_status, other = codes_in_the_code()
    with document_app.test_request_context():  # Werkzeug's errors, named as the app names them
        werkzeug = {(exc.code, http_error_response(exc()).json["error"])
                    for exc in (NotFound, MethodNotAllowed, RequestEntityTooLarge)}
    documented = documented_codes(document)
    assert with_status | werkzeug <= documented
    assert {code for _, code in documented} == {code for _, code in with_status | werkzeug} | other
    # Of the codes written outside error_response, the 429's and the middleware's 400 are not 401s.
    assert {code for status, code in documented if status == 401} == other - {"rate_limited", "bad_request"}


def test_every_error_response_lists_only_its_statuses_codes(document):
    from usetix.api_contract.openapi import ERROR_CODES

    for name, operation in operations(document):
        for status, answer in operation["responses"].items():
            if status[0] not in "45":
                continue
            answer = resolve(document, answer)
            schema = answer["content"]["application/json"]["schema"]
            assert schema["allOf"] == [{"$ref": "#/components/schemas/Error"}], (name, status)
            codes = schema["properties"]["error"]["enum"]
            assert codes and set(codes) <= set(ERROR_CODES), (name, status)
            assert all(f"`{code}`" in answer["description"] for code in codes), (name, status)
    # The shared Error schema keeps `error` a string: a code added later still reads.
    assert "enum" not in document["components"]["schemas"]["Error"]["properties"]["error"]
