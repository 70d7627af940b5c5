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

import json
from importlib.resources import files

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from usetix import create_app

from .conftest import bearer

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

BOUNDED = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def test_served_document_is_the_packaged_one(client):
    response = client.get("/admin/openapi.json")
    assert response.status_code == 200
    assert response.json == json.loads(files("usetix").joinpath("openapi.json").read_text())
    # Every operation is covered below.
    assert {(op.method.upper(), op.path) for op in (r.ok() for r in schema.get_all_operations())} == {
        ("GET", "/admin/account"),
        ("GET", "/admin/events"),
        ("GET", "/admin/events/{event_id}"),
        ("GET", "/admin/events/{event_id}/attendees"),
        ("POST", "/admin/credentials/revoke"),
    }


# Looked up by its documented name (`st run --exclude-checks unsupported_method`).
UNSUPPORTED_METHOD = schemathesis.checks.CHECKS.get_one("unsupported_method")


def _excluded(case) -> list:
    # The leak report needs no token, but a request that carries one is still judged by it:
    # a read token's TRACE there is 401 insufficient_scope, "whatever the path" (README).
    return [UNSUPPORTED_METHOD] if case.path == "/admin/credentials/revoke" else []


@schema.parametrize()
@BOUNDED
def test_api_conforms_with_a_read_token(case, app, read_token):
    response = case.call_and_validate(headers=bearer(read_token), app=app, excluded_checks=_excluded(case))
    assert response.status_code < 500


@schema.parametrize()
@BOUNDED
def test_api_conforms_with_a_write_token(case, app, write_token):
    response = case.call_and_validate(headers=bearer(write_token), app=app, excluded_checks=_excluded(case))
    assert response.status_code < 500


def test_documented_bounds_are_the_apps(app):
    from usetix.core.list_query import MAX_PAGE, MAX_PER_PAGE

    document = json.loads(files("usetix").joinpath("openapi.json").read_text())
    largest_id = app.url_map.converters["int"](app.url_map).max
    for path, operation in ((p, op) for p, item in document["paths"].items() for op in item.values()):
        for parameter in operation.get("parameters", []):
            schema_ = parameter["schema"]
            expected = {"event_id": (0, largest_id), "page": (1, MAX_PAGE), "per_page": (1, MAX_PER_PAGE)}
            if parameter["name"] in expected:
                assert (schema_["minimum"], schema_["maximum"]) == expected[parameter["name"]], (path, parameter)
