"""The OAuth 2.0 endpoints a scanner pairs itself with (the device grant, RFC 8628; sign out,
RFC 7009): public (no bearer token, no session, no CSRF: nothing for a forged form to ride
on), form-encoded requests, JSON answers with ``Cache-Control: no-store``, for any Accept.

The machinery (Authlib's endpoints and grant on our storage) is usetix/auth/device_grant.py;
the page where an admin approves a code is the dashboard's (``/admin/devices/activate``).
Errors have OAuth's shape (``error``, ``error_description``, RFC 6749 §5.2) and ours
(``message``, the same sentence), so a generic client and our own scripts both read them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import InsecureTransportError, InvalidRequestError, OAuth2Error
from authlib.oauth2.rfc8628 import SlowDownError
from flask import Response, current_app, request

from ..auth import device_grant
from ..auth.policy import public
from ..core import device_codes
from ..core.printable_text import refused_character
from ..extensions import csrf
from ..ratelimit import LimitsUnavailable, address_key, rate_limits
from ..web.audience import Audience, AudienceBlueprint
from ..web.responses import json_response

bp = AudienceBlueprint("oauth", __name__, url_prefix="/oauth", audience=Audience.BOTH)


# A sentence for the errors Authlib raises without one (our ``message`` always says something).
DEFAULT_MESSAGES = {
    "unsupported_grant_type": "grant_type must be urn:ietf:params:oauth:grant-type:device_code.",
    "invalid_request": "The request is missing a parameter or repeats one.",
    "authorization_pending": "No one has approved this device yet: poll again after the interval.",
    "slow_down": "Polled faster than the interval: wait 5 seconds more between polls from now on.",
    "access_denied": "An admin denied this device.",
    "expired_token": "This device_code expired: ask for a new code.",
    "invalid_scope": "This client may ask for check_in:write and events:read only.",
}


class UsetixAuthorizationServer(AuthorizationServer):
    def handle_response(self, status_code: int, payload: object, headers: list) -> Response:
        """Authlib's answer as our JSON response (Authlib's headers: no-store, no-cache)."""
        if isinstance(payload, dict) and "error" in payload:
            error = payload["error"]
            payload = {**payload, "message": payload.get("error_description") or DEFAULT_MESSAGES.get(error, error)}
        merged = {name: value for name, value in headers if name.lower() != "content-type"}
        return json_response(payload, status_code, merged)


SERVER = device_grant.configure(UsetixAuthorizationServer(query_client=device_grant.query_client,
                                                          save_token=device_grant.no_token_to_save))


def _refused(error: OAuth2Error) -> Response:
    return SERVER.handle_error_response(None, error)


def oauth_request(view: Callable[[], Response]) -> Callable[[], Response]:
    """What every OAuth endpoint refuses before Authlib reads the request: a repeated
    parameter; and plain HTTP, which OAuth 2.0 forbids (RFC 6749 §1.6): Authlib refuses it
    except on a loopback address, and we answer that as an OAuth error instead of a 500."""

    @wraps(view)
    def checked() -> Response:
        # RFC 6749 §3.1: a parameter sent more than once is refused.
        if any(len(values) > 1 for values in request.form.listvalues()):
            return _refused(InvalidRequestError("A parameter was sent more than once."))
        try:
            return view()
        except InsecureTransportError:
            return _refused(InvalidRequestError("OAuth needs HTTPS: ask https:// for this path."))

    return checked


@bp.post("/device_authorization")
@public
@csrf.exempt
@oauth_request
def device_authorization() -> Response:
    """RFC 8628 §3.1: a device asks for a device code and a user code to show."""
    name = request.form.get("device_name", "")
    if len(name) > device_codes.MAX_DEVICE_NAME or refused_character(name):
        return _refused(InvalidRequestError(
            f"device_name is at most {device_codes.MAX_DEVICE_NAME} printable characters."))
    limits = rate_limits(current_app)
    try:  # shared by every worker and host: live codes are what a guesser of user codes aims at
        verdict = limits.hit_shared(limits.device_authorization, "device-authorization",
                                    address_key(request.remote_addr))
    except LimitsUnavailable:
        answer = _refused(OAuth2Error("Codes cannot be handed out for a moment; retry shortly.", status_code=503,
                                      error="temporarily_unavailable"))
        answer.headers["Retry-After"] = "30"
        return answer
    if verdict is not None and not verdict.allowed:
        answer = _refused(SlowDownError("Too many codes asked from this address; retry later.", status_code=429))
        answer.headers.update(verdict.headers)
        return answer
    return SERVER.create_endpoint_response("device_authorization")


@bp.post("/token")
@public
@csrf.exempt
@oauth_request
def token() -> Response:
    """RFC 8628 §3.4-3.5: a device polls with its device code until it gets its token."""
    return SERVER.create_token_response()


@bp.post("/revoke")
@public
@csrf.exempt
@oauth_request
def revoke() -> Response:
    """RFC 7009: a device signs itself out (always 200 for our client)."""
    return SERVER.create_endpoint_response("revocation")
