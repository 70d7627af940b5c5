"""The API's bearer hook: every JSON request that reaches Flask is authenticated here.

It runs before routing errors are raised, so it judges every JSON request, including
those that would end in 404 or 405: a read token's POST is a 401 whatever the path.
Refusals that need no query are mostly given earlier, by the credential gate
(``usetix/web/credential_gate.py``), from the same policy (``usetix.auth.bearer``).

Flask's context proxies are read once here, through ``_get_current_object()`` (Werkzeug's
documented way to the object behind a proxy; why: docs/performance.md).
"""

from __future__ import annotations

from flask import Request, Response, current_app, g, request

from ...auth import bearer
from ...auth.refusals import Refusal, refusal_answer, too_many_requests
from ...auth.usage import UsageRecorder
from ...core.permissions import event_ids
from ...database.connection import first_read
from ...database.engine import db
from ...database.models import utcnow
from ...ratelimit import rate_limits
from ...web.credential_gate import SCREENED_DIGEST
from ...web.responses import error_response, json_response, not_found
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
    for name in ("principal", "rate_limit_headers", "usage_writer"):
        request_globals.pop(name, None)  # nothing of the token's own on this answer
    return _refuse(verdict)


@bp.before_app_request
def authenticate_bearer() -> Response | None:
    """Set ``g.principal`` from the request's bearer token, or answer 401 (429 past a limit)."""
    req = request._get_current_object()
    app = current_app._get_current_object()
    if not req.wants_json or req.endpoint in app.public_endpoints:
        return None
    # What the view declares (usetix/core/permissions.py requires); nothing for a path that
    # matched no view (its 404 or 405 follows), nor for OPTIONS, which only lists methods.
    view = app.view_functions.get(req.endpoint) if req.method != "OPTIONS" else None
    principal = bearer.authenticate(_screened(req), req.method, first_read, getattr(view, "required_scope", None))
    if isinstance(principal, Refusal):
        return _refuse(principal)
    token = principal.token
    limits = rate_limits(app)
    verdict = limits.hit(limits.api, "api-token", str(token.id))
    request_globals = g._get_current_object()
    if verdict is not None:
        if not verdict.allowed:  # the 429 carries the headers itself
            status, headers, body = too_many_requests(verdict.headers,
                                                      "This token has made too many requests; retry later.")
            return json_response(body, status, headers)
        request_globals.rate_limit_headers = verdict.headers  # added to whatever the view answers
    now = utcnow()
    recorder = app.extensions[USAGE_RECORDER]
    if recorder.count(token.id, token.last_used_at, bearer.naive_utc(now)):
        # Written after the response is sent (add_token_headers), never inside the request.
        request_globals.usage_writer = recorder.writer(token.id, now, req.remote_addr,
                                                       req.headers.get("User-Agent"))
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


@bp.record_once
def _make_usage_recorder(state) -> None:
    state.app.extensions[USAGE_RECORDER] = UsageRecorder(lambda: db.engine)


@bp.after_app_request
def add_token_headers(response: Response) -> Response:
    """The rate-limit headers, the token's expiry, and the usage write after the response."""
    request_globals = g._get_current_object()
    principal = request_globals.get("principal")
    if principal is None or principal.token is None:
        return response
    add = response.headers.add  # not extend(): docs/performance.md
    headers = request_globals.get("rate_limit_headers")
    if headers:
        for name, value in headers.items():
            add(name, value)
    if principal.token.expires_at is not None:
        # As GitHub's GitHub-Authentication-Token-Expiration: scripts can warn their owners.
        add("Usetix-Token-Expiration", bearer.iso_utc(principal.token.expires_at))
    writer = request_globals.get("usage_writer")
    if writer is not None:
        response.call_on_close(writer)
    return response
