"""Refuse an oversized request body before anything reads it.

Werkzeug enforces ``MAX_CONTENT_LENGTH`` only when a body is read (a form, ``get_json``).
The JSON API reads no body in V1, so without this check a 100 MiB POST would go through
authentication and routing and be answered 401 or 405 while the server drains it. This
hook runs before authentication and answers 413 from the declared ``Content-Length``: a
header look-up and a comparison, nothing more on the hot path. A chunked body (no
Content-Length) is still cut off by Werkzeug when something reads past the limit.
"""

from __future__ import annotations

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge


def refuse_oversized_body() -> None:
    """``before_request``: 413 when the declared body is larger than MAX_CONTENT_LENGTH."""
    req = request._get_current_object()
    if not req.environ.get("CONTENT_LENGTH"):
        return  # no declared length: nothing to check (and no parsing on every GET)
    length = req.content_length
    if length is not None:
        limit = req.max_content_length
        if limit is not None and length > limit:
            raise RequestEntityTooLarge(f"The request body is larger than the {limit} bytes this server accepts.")
