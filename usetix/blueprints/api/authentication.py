"""The API's bearer hook: every JSON request that reaches Flask is authenticated here.

It runs before routing errors are raised, so it judges every JSON request, including
those that would end in 404 or 405: a read token's POST is a 401 whatever the path.
Refusals that need no query are mostly given earlier, by the credential gate
(``usetix/web/credential_gate.py``), from the same policy (``usetix.auth.bearer``).

Flask's context proxies are read once here, through ``_get_current_object()`` (Werkzeug's
documented way to the object behind a proxy; why: docs/performance.md).
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Request, Response, after_this_request, current_app, g, request

from ...auth import bearer
from ...auth.refusals import Refusal, refusal_answer, too_many_requests
from ...auth.usage import UsageRecorder
from ...core.permissions import event_ids
from ...database.connection import first_read
from ...database.engine import db
from ...ratelimit import rate_limits
from ...ratelimit.limits import EXTENSION_KEY as RATE_LIMITS
from ...web.credential_gate import SCREENED_DIGEST
from ...web.responses import ANSWER_HEADERS, error_response, json_response, not_found
from .blueprint import bp

# Where each app keeps its worker's usage counts (usetix/auth/usage.py).
USAGE_RECORDER = "usetix.usage"


def _refuse(refusal: Refusal) -> Response:
    status, headers, body = refusal_answer(rate_limits(current_app), request.remote_addr, refusal)
    return json_response(body, status, headers)


def _screened(req: Request) -> str | Refusal:
    return req.environ.get(SCREENED_DIGEST) or bearer.screen_credentials(req.headers.get("Authorization"))


def token_ids() -> tuple[int, int]:
    """``(account_id, token_id)`` of this request's token."""
    principal = g.principal
    return principal.account_id, principal.token.id


def refuse_again() -> Response:
    """The token stopped being valid while this request ran (a write found it revoked or
    expired when it wrote its audit record): judge it again and answer exactly as this hook
    answers such a token, a 401 of the same headers and body, counted as a failure."""
    req = request._get_current_object()
    verdict = bearer.authenticate(_screened(req), req.method, first_read)
    if not isinstance(verdict, Refusal):
        raise RuntimeError("the token's write found it invalid, and its authentication valid")
    request_globals = g._get_current_object()
    for name in ("principal", "usage_writer"):
        request_globals.pop(name, None)  # nothing of the token's own on this answer
    req.environ.pop(ANSWER_HEADERS, None)
    return _refuse(verdict)


@bp.before_app_request
def authenticate_bearer() -> Response | None:
    """Set ``g.principal`` from the request's bearer token, or answer 401 (429 past a limit).
    The token's answer headers (RateLimit-*, Usetix-Token-Expiration) go under
    ``ANSWER_HEADERS``, where the response class appends them."""
    req = request._get_current_object()
    app = current_app._get_current_object()
    if not req.wants_json or req.endpoint in app.public_endpoints:
        return None
    environ = req.environ
    screened = environ.get(SCREENED_DIGEST) or bearer.screen_credentials(req.headers.get("Authorization"))
    # What the view declares (usetix/core/permissions.py requires); nothing for a path that
    # matched no view (its 404 or 405 follows), nor for OPTIONS, which only lists methods.
    view = app.view_functions.get(req.endpoint) if req.method != "OPTIONS" else None
    principal = bearer.authenticate(screened, req.method, first_read, getattr(view, "required_scope", None))
    if isinstance(principal, Refusal):
        return _refuse(principal)
    token = principal.token
    limits = app.extensions[RATE_LIMITS]
    verdict = limits.hit(limits.api, "api-token", str(token.id))
    answer_headers = []
    if verdict is not None:
        if not verdict.allowed:  # the 429 carries the headers itself
            status, headers, body = too_many_requests(verdict.headers,
                                                      "This token has made too many requests; retry later.")
            return json_response(body, status, headers)
        answer_headers += verdict.headers.items()
    if token.expires_at is not None:
        # As GitHub's GitHub-Authentication-Token-Expiration: scripts can warn their owners.
        answer_headers.append(("Usetix-Token-Expiration", bearer.iso_utc(token.expires_at)))
    if answer_headers:
        environ[ANSWER_HEADERS] = answer_headers
    request_globals = g._get_current_object()
    now = datetime.now(UTC)  # as models.utcnow, without its call
    recorder = app.extensions[USAGE_RECORDER]
    if recorder.count(token.id, token.last_used_at, bearer.naive_utc(now)):
        request_globals.usage_writer = recorder.writer(token.id, now, req.remote_addr, req.headers.get("User-Agent"))
        after_this_request(_write_usage)
    request_globals.principal = principal
    if token.event_ids is not None and view is not None:
        return _outside_restriction(req, view, token.event_ids)
    return None


def _outside_restriction(req: Request, view, stored_event_ids: str) -> Response | None:
    """A restricted token's answer for a path outside its events: the very 404 of a missing
    event (a path under an event it may not see), or the 403 of an operation it may never
    call (creating an event). None when the request may go on to its view."""
    if getattr(view, "refused_to_restricted", False):
        return error_response(403, "restricted_token", "This token is limited to some events, so it cannot "
                                                       "create events; ask an admin for a token that is not.")
    event_id = (req.view_args or {}).get("event_id")
    if event_id is not None and event_id not in event_ids(stored_event_ids):
        return not_found()
    return None


def _write_usage(response: Response) -> Response:
    """The usage write, after the response is sent, never inside the request (unless
    :func:`refuse_again` dropped it)."""
    writer = g.get("usage_writer")
    if writer is not None:
        response.call_on_close(writer)
    return response


@bp.record_once
def _make_usage_recorder(state) -> None:
    state.app.extensions[USAGE_RECORDER] = UsageRecorder(lambda: db.engine)
