"""The API's bearer hook: every JSON request that reaches Flask is authenticated here.

It runs before routing errors are raised, so it judges every JSON request, including
those that would end in 404 or 405: a read token's POST is a 401 whatever the path.
Refusals that need no query are mostly given earlier, by the credential gate
(``usetix/web/credential_gate.py``), from the same policy (``usetix.auth.bearer``).

Flask's context proxies are read once here, through ``_get_current_object()`` (Werkzeug's
documented way to the object behind a proxy): every API request passes here, and each
attribute read through a proxy costs several times a plain one (bench/RESULTS.md).
"""

from __future__ import annotations

from flask import Response, current_app, g, request

from ...auth import bearer
from ...auth.refusals import Refusal, refusal_answer, too_many_requests
from ...database.connection import request_connection
from ...models import utcnow
from ...ratelimit import rate_limits
from ...web.credential_gate import SCREENED_DIGEST
from ...web.responses import json_response
from . import bp


def _refuse(refusal: Refusal) -> Response:
    status, headers, body = refusal_answer(rate_limits(current_app), request.remote_addr, refusal)
    return json_response(body, status, headers)


@bp.before_app_request
def authenticate_bearer() -> Response | None:
    """Set ``g.principal`` from the request's bearer token, or answer 401 (429 past a limit)."""
    req = request._get_current_object()
    app = current_app._get_current_object()
    if not req.wants_json or req.endpoint in app.public_endpoints:
        return None
    screened = req.environ.get(SCREENED_DIGEST) or bearer.screen_credentials(req.headers.get("Authorization"))
    principal = bearer.authenticate(screened, req.method, request_connection)
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
    if bearer.use_is_stale(token, now):
        bearer.record_use(request_connection(), token, now)
    request_globals.principal = principal
    return None


@bp.after_app_request
def add_rate_limit_headers(response: Response) -> Response:
    headers = g._get_current_object().get("rate_limit_headers")
    if headers:
        add = response.headers.add  # a third of what extend() costs: it walks a generic multi-item iterator
        for name, value in headers.items():
            add(name, value)
    return response
