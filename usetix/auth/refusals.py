"""Why an API request's credentials are turned away, and the answer it gets.

The answer is ``(status, headers, body)``, built without a request context, so the
bearer hook and the credential gate (which runs before Flask) give the very same one.
The challenge follows RFC 6750 §3.1: no ``error`` attribute when no bearer credentials
were sent (none at all, or another scheme); ``invalid_request`` for a broken Bearer
header; ``invalid_token`` for a token that parses but is not valid (wrong shape or
checksum, unknown, revoked, expired); ``insufficient_scope`` for a read token's write method
(401, the public document's tier rule) and for a token without the permission an operation
needs (403, naming the scope in the challenge and as the body's ``required``). The JSON
body's ``error`` says which case it was.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from ..ratelimit import RateLimits, address_key

CHALLENGE = 'Bearer realm="Usetix"'


class Refusal(NamedTuple):
    """The body's ``error`` and ``message``, and the challenge's RFC 6750 error code; for a
    missing permission, its status 403 and the scope it needed."""

    error: str
    message: str
    challenge_error: str | None
    status: int = 401
    scope: str | None = None


MISSING_TOKEN = Refusal("missing_token", "Missing token: send Authorization: Bearer <token>.", None)
UNKNOWN_TOKEN = Refusal("invalid_token", "Unknown token.", "invalid_token")
REVOKED_TOKEN = Refusal("revoked_token", "This token has been revoked.", "invalid_token")


def expired_token(expires_at: str) -> Refusal:
    """``expires_at`` as ISO 8601 UTC: the message says when."""
    return Refusal("expired_token", f"This token expired at {expires_at}.", "invalid_token")


def other_scheme(detail: str) -> Refusal:
    return Refusal("missing_token", f"Missing bearer token: {detail}", None)


def malformed_header(detail: str) -> Refusal:
    return Refusal("malformed_token", f"Malformed Authorization header: {detail}", "invalid_request")


def malformed_token(detail: str) -> Refusal:
    return Refusal("malformed_token", f"Malformed token: {detail}.", "invalid_token")


def insufficient_scope(method: str) -> Refusal:
    return Refusal("insufficient_scope", f"A read token allows GET and HEAD only, not {method}.",
                   "insufficient_scope")


@lru_cache(maxsize=16)  # one per scope
def missing_permission(scope: str) -> Refusal:
    """A valid token without the permission an operation needs (RFC 6750 §3.1's 403)."""
    return Refusal("insufficient_scope", f"This token does not have the {scope} permission this operation needs; "
                                         "ask an admin for a token that has it.", "insufficient_scope", 403, scope)


Answer = tuple[int, dict[str, str], dict[str, str]]


def refusal_answer(limits: RateLimits, remote_addr: str | None, refusal: Refusal) -> Answer:
    """401 (403 for a missing permission) with its challenge, or 429 once this address has
    failed too often. Every refusal counts against that limit."""
    verdict = limits.hit_quietly(limits.failed_auth, "api-auth-failures", address_key(remote_addr))
    if verdict is not None and not verdict.allowed:
        return too_many_requests(verdict.headers, "Too many failed authentications from this address; retry later.")
    if refusal.scope is not None:
        return _permission_answer(refusal)
    challenge = CHALLENGE
    if refusal.challenge_error:
        challenge += f', error="{refusal.challenge_error}"'
    return refusal.status, {"WWW-Authenticate": challenge}, {"error": refusal.error, "message": refusal.message}


@lru_cache(maxsize=16)  # one per scope; callers only read the answer (json_response copies the headers)
def _permission_answer(refusal: Refusal) -> Answer:
    """A missing permission's 403: the challenge and the body name the scope (RFC 6750 §3.1)."""
    challenge = f'{CHALLENGE}, error="{refusal.challenge_error}", scope="{refusal.scope}"'
    return refusal.status, {"WWW-Authenticate": challenge}, {"error": refusal.error, "message": refusal.message,
                                                             "required": refusal.scope}


def too_many_requests(headers: dict[str, str], message: str) -> Answer:
    return 429, headers, {"error": "rate_limited", "message": message}
