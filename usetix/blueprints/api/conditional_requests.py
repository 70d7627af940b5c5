"""ETags and the conditional requests they answer: If-None-Match on a single-object GET
(304), If-Match on a write (412 when it names another version)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Response, current_app, request

from ...web.responses import error_response, json_response, not_found
from .refused import Refused

# 96 bits: two versions of one object never share a tag.
ETAG_BYTES = 12
# A PATCH that loses a race without If-Match reads the row again and retries this often.
PATCH_ATTEMPTS = 3


def etag(object_id: int, version: int, created_at: datetime) -> str:
    """A strong, opaque ETag: a digest of the row's id, version (every write bumps it) and
    creation time, keyed with the app's secret so that it tells nothing (not the creation
    time to the microsecond, which the body gives to the second). The creation time keeps
    tags apart even for an id that SQLite gave twice before migration d19a11fe0001."""
    digest = hashlib.blake2b(f"{object_id}.{version}.{round(created_at.timestamp() * 1_000_000)}".encode(),
                             key=_etag_key(current_app.config["SECRET_KEY"]), digest_size=ETAG_BYTES)
    return digest.hexdigest()  # unquoted, as Werkzeug's ETags hold them


@functools.lru_cache(maxsize=4)
def _etag_key(secret: str | bytes) -> bytes:
    secret = secret.encode() if isinstance(secret, str) else secret
    return hashlib.blake2b(secret, person=b"usetix.etag").digest()


def row_etag(row: Any) -> str:
    """The ETag of a row selected with its ``id``, ``version`` and ``created_at``."""
    return etag(row.id, row.version, row.created_at)


def check_if_match(current: str) -> None:
    """412 unless If-Match (when sent) names ``current`` or is ``*`` (strong comparison)."""
    if "If-Match" in request.headers and not request.if_match.contains(current):
        raise Refused(precondition_failed())


def precondition_failed() -> Response:
    return error_response(412, "precondition_failed",
                          "If-Match does not name the current version (its ETag); nothing changed. "
                          "GET it again and retry.")


def lost_race() -> Response:
    """Another write changed the object between our read and our conditional write: with
    If-Match that is a stale tag (412); without, a conflict to retry (409, never stored)."""
    if "If-Match" in request.headers:
        return precondition_failed()
    return error_response(409, "edit_conflict", "The object changed while this request ran; retry it.")


def not_modified(current: str) -> Response | None:
    if request.if_none_match.contains_weak(current):
        return Response(status=304, headers={"ETag": f'"{current}"'})
    return None


def json_with_etag(payload: Any, tag: str, status: int = 200, headers: dict | None = None) -> Response:
    return json_response({"data": payload}, status, {**(headers or {}), "ETag": f'"{tag}"'})


def single_object(row: Any, to_json: Callable[[Any], dict]) -> Response:
    """A single-object GET's answer: 404, 304 when If-None-Match names its ETag, or the object."""
    if row is None:
        return not_found()
    tag = row_etag(row)
    return not_modified(tag) or json_with_etag(to_json(row), tag)
