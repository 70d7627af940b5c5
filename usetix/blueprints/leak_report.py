"""The leak kill-switch, ``POST /admin/credentials/revoke``: anyone who finds Usetix tokens
posts them here, with no login or token, and every live one is revoked at once. It answers
HTML and JSON requests alike (scanners do not always say JSON)."""

from __future__ import annotations

import orjson
from flask import Response, current_app, request

from ..auth.policy import public
from ..auth.token_service import MAX_LEAK_REPORT_VALUES, revoke_leaked
from ..core.json_nesting import TOO_DEEP, nests_too_deep
from ..extensions import csrf
from ..ratelimit import LimitsUnavailable, address_key, rate_limits
from ..web.audience import Audience, AudienceBlueprint
from ..web.responses import error_response, json_response

bp = AudienceBlueprint("leak_report", __name__, audience=Audience.BOTH)

LEAK_REPORT_USAGE = f'Send a JSON object: {{"credentials": ["utx_...", ...]}}, at most {MAX_LEAK_REPORT_VALUES} values.'
LEAK_REPORT_ACCEPTED = {
    "message": "Thank you. Every live Usetix token among these values is now revoked, and its account's "
               "admins are told. This answer is the same whether or not any value was a token.",
}


@bp.post("/admin/credentials/revoke")
@public
@csrf.exempt  # no cookie, no session: there is nothing for a forged form to ride on
def report_leaked_credentials() -> Response:
    """The leak kill-switch: anyone who finds Usetix tokens (a person, a secret scanner)
    posts them here, with no authentication, and every live one is revoked at once.

    The answer is always 202 with the same body, so it tells nothing about which values were
    real. Values of the wrong shape or checksum are dropped without a query; the rest are
    matched in one batched UPDATE. Limited per client address (LEAK_REPORT_RATE_LIMIT).
    """
    limits = rate_limits(current_app)
    try:  # shared by every worker and host, so a flood cannot multiply by the worker count
        verdict = limits.hit_shared(limits.leak_report, "leak-report", address_key(request.remote_addr))
    except LimitsUnavailable:
        return error_response(503, "unavailable", "Leak reports are paused for a moment; retry shortly.",
                              {"Retry-After": "30"})
    if verdict is not None and not verdict.allowed:
        return error_response(429, "rate_limited", "Too many leak reports from this address; retry later.",
                              verdict.headers)
    raw = request.get_data(cache=True)  # read whatever the label: scanners do not always say JSON
    if nests_too_deep(raw):
        return error_response(400, "invalid_json", TOO_DEEP)
    try:  # UTF-8 only (RFC 8259), which is what the depth scan reads
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        return error_response(400, "invalid_request", LEAK_REPORT_USAGE)
    values = body.get("credentials")
    if (not isinstance(values, list) or not 1 <= len(values) <= MAX_LEAK_REPORT_VALUES
            or not all(isinstance(value, str) for value in values)):
        return error_response(422, "invalid_parameter",
                              f"credentials must be a list of 1 to {MAX_LEAK_REPORT_VALUES} strings.",
                              parameter="credentials")
    revoked = revoke_leaked(values, request.remote_addr)
    if revoked:  # for the operators (the reporter never learns it); never the values themselves
        current_app.logger.warning("leak report from %s revoked %d token(s) (%d value(s) sent)",
                                   request.remote_addr, revoked, len(values))
    return json_response(LEAK_REPORT_ACCEPTED, 202)

