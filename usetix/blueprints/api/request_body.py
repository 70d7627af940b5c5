"""A write's JSON body: parsed and validated by the contract's pydantic models, a merge
patch compared with the stored object, and a patched object checked as a whole."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from pydantic import BaseModel, ValidationError

from ...api_contract.bodies import field_errors
from ...core.json_nesting import TOO_DEEP, nests_too_deep
from ...web.responses import error_response
from .refused import Refused

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"


def invalid_body(errors: list[dict[str, str]]) -> Response:
    fields = ", ".join(dict.fromkeys(error["field"] for error in errors))
    return error_response(422, "invalid_body", f"The body is not valid: see errors ({fields}).", errors=errors)


def parse_body(model: type[BaseModel], *, optional: bool = False, merge_patch: bool = False) -> BaseModel | Response:
    """The request's body validated by ``model``, or the answer refusing it (400, 415, 422)."""
    raw = request.get_data(cache=True)
    if optional and not raw:
        return model()
    allowed = (JSON, MERGE_PATCH) if merge_patch else (JSON,)
    if request.mimetype not in allowed:
        return error_response(415, "unsupported_media_type",
                              f"Send the body as JSON, with Content-Type: {' or '.join(allowed)}.")
    if nests_too_deep(raw):
        return error_response(400, "invalid_json", TOO_DEEP)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = field_errors(exc)
        malformed = [error for error in errors if error["code"] == "json_invalid"]
        if malformed:
            return error_response(400, "invalid_json", f"The body is not valid JSON: {malformed[0]['message']}.")
        return invalid_body(errors)


def changed_fields(row: Any, patch: dict[str, Any]) -> dict[str, Any]:
    """The fields of a merge patch whose values differ from the stored row's."""
    return {name: value for name, value in patch.items() if row._mapping[name] != value}


def revalidate(model: type[BaseModel], data: dict[str, Any]) -> BaseModel:
    """A stored object with a patch merged in, checked as a whole (``ends_at`` against the
    stored ``starts_at``, say); raises Refused with the 422."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Refused(invalid_body(field_errors(exc))) from None
