"""Response headers every page and API answer carries."""

from __future__ import annotations

from flask import Response, current_app

# Pages load only our own static files: no inline script or style, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    # Which blueprint answers depends on Accept (see routing.py), so caches must key on it.
    # (Read and written as a string: response.vary builds a HeaderSet on every response.)
    vary = headers.get("Vary")
    if not vary:
        headers["Vary"] = "Accept"
    elif "accept" not in {value.strip().lower() for value in vary.split(",")}:
        headers["Vary"] = f"{vary}, Accept"
    headers.setdefault("X-Content-Type-Options", "nosniff")
    mimetype = response.mimetype
    if mimetype == "application/json":
        headers.setdefault("Cache-Control", "no-store")
    elif mimetype == "text/html":
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        # Pages show attendees' personal data: Back after logging out must not show them.
        headers.setdefault("Cache-Control", "no-store")
    if current_app.config["SESSION_COOKIE_SECURE"]:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    return response
