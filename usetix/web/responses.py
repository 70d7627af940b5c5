"""The app's response class; JSON answers: the API's body encoding and its one error shape."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from flask import Response
from werkzeug.exceptions import HTTPException

# Naive datetimes are stored UTC values (see usetix/blueprints/api/pagination.py): OPT_NAIVE_UTC says so.
_JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS | orjson.OPT_NON_STR_KEYS | orjson.OPT_NAIVE_UTC


def _json_default(value: Any) -> Any:
    # orjson encodes datetime itself but not subclasses of it (freezegun's, in tests).
    if isinstance(value, datetime):
        if value.tzinfo is None:  # naive means UTC here, as with OPT_NAIVE_UTC
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# Where a before-request hook leaves headers for this request's answer, as a list of (name,
# value) pairs (the API token's RateLimit-* and expiry: usetix/blueprints/api/authentication.py).
# A WSGI server puts a client's headers under HTTP_*: no client can set this key.
ANSWER_HEADERS = "usetix.answer_headers"


class UsetixResponse(Response):
    """Flask's response, plus the headers left under ``ANSWER_HEADERS`` in the request's
    WSGI environ, appended to the header list as the answer starts: Werkzeug's
    ``Headers.add`` checks each value anew, three times on every authenticated API request,
    for values the app made itself (docs/performance.md)."""

    def get_wsgi_response(self, environ: dict) -> tuple:
        app_iter, status, headers = super().get_wsgi_response(environ)
        answer_headers = environ.get(ANSWER_HEADERS)
        if answer_headers:
            headers += answer_headers
        return app_iter, status, headers


def json_body(payload: Any) -> bytes:
    return orjson.dumps(payload, default=_json_default, option=_JSON_OPTIONS)


def json_response(payload: Any, status: int = 200, headers: dict | None = None) -> Response:
    return UsetixResponse(json_body(payload), status=status, headers=headers, mimetype="application/json")


def error_response(status: int, error: str, message: str, headers: dict | None = None, **extra: Any) -> Response:
    """Every API error has this shape: ``{"error": code, "message": sentence, ...}``."""
    return json_response({"error": error, "message": message, **extra}, status, headers)


def not_found() -> Response:
    # The same answer whether the id belongs to another account or to none.
    return error_response(404, "not_found", "No such resource in this account.")


def error_headers(exc: HTTPException) -> dict[str, str]:
    """The headers an HTTPException carries (Allow, Retry-After, ...), less its Content-Type."""
    return {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}


def http_error_response(exc: HTTPException) -> Response:
    """An HTTPException (404, 405, 413, 429, 500, ...) as JSON, keeping its headers (Allow, Retry-After)."""
    headers = error_headers(exc)
    code = (exc.name or "error").lower().replace(" ", "_").replace("'", "")
    return error_response(exc.code or 500, code, exc.description or exc.name, headers)
