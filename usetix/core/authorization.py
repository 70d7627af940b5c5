"""Parse an ``Authorization`` header into a bearer credential (RFC 6750 §2.1). No Flask."""

from __future__ import annotations

from typing import NamedTuple


class Credential(NamedTuple):
    """The outcome of reading the header: a token, or why there is none.

    ``problem`` is None when ``token`` holds the presented value, ``"missing"`` when no
    credentials were sent, ``"scheme"`` (with ``detail``) when they use another scheme than
    Bearer, and ``"malformed"`` (with ``detail``) when a Bearer header is not
    ``Bearer <one value>``.
    """

    token: str | None = None
    problem: str | None = None
    detail: str = ""


MISSING = Credential(problem="missing", detail="No Authorization header was sent.")


def parse_authorization(header: str | None) -> Credential:
    """Read ``Bearer <token>``; the scheme is case-insensitive, exactly one value follows."""
    if header is None:
        return MISSING
    parts = header.split()  # on whitespace, as strip() strips it
    if len(parts) == 2 and parts[0].lower() == "bearer":  # the usual header, tested first
        return Credential(parts[1])
    if not parts:
        return MISSING
    if parts[0].lower() != "bearer":
        return Credential(problem="scheme", detail="The Authorization scheme must be Bearer.")
    if len(parts) == 1:
        return Credential(problem="malformed", detail="The Bearer scheme needs a token after it.")
    if len(parts) > 2:
        return Credential(problem="malformed", detail="The Authorization header must hold exactly one token.")
    return Credential(token=parts[1])
