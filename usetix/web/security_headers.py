"""Response headers every page and API answer carries."""

from __future__ import annotations

from functools import lru_cache

from flask import Response, current_app

# Pages load only our own static files: no inline script or style, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"


@lru_cache(maxsize=8)
def fixed_headers(mimetype: str, https_only: bool) -> tuple[tuple[str, str], ...]:
    """The headers a response of this type carries unless its view set them itself.

    ``https_only`` is the ``SESSION_COOKIE_SECURE`` setting: a site served over HTTPS
    only also gets HSTS. (Vary is not here: it is merged, see ``add_security_headers``.)
    """
    headers = [("X-Content-Type-Options", "nosniff")]
    if mimetype == "application/json":
        headers.append(("Cache-Control", "no-store"))
    elif mimetype == "text/html":
        headers += [
            ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
            ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", "same-origin"),
            # Pages show attendees' personal data: Back after logging out must not show them.
            ("Cache-Control", "no-store"),
        ]
    if https_only:
        headers.append(("Strict-Transport-Security", HSTS))
    return tuple(headers)


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    # One pass over the headers: the API answers every request through here.
    present, mimetype = set(), ""
    for name, value in headers.items():
        name = name.lower()
        present.add(name)
        if name == "content-type":
            mimetype = value.partition(";")[0].strip().lower()
    # Which blueprint answers depends on Accept (see routing.py), so caches must key on it.
    vary = headers.get("Vary") if "vary" in present else None
    if vary is None:
        headers.add("Vary", "Accept")  # appended: a set would scan the headers again
    elif not vary.strip():
        headers["Vary"] = "Accept"
    elif "accept" not in {value.strip().lower() for value in vary.split(",")}:
        headers["Vary"] = f"{vary}, Accept"
    for name, value in fixed_headers(mimetype, current_app._get_current_object().config["SESSION_COOKIE_SECURE"]):
        if name.lower() not in present:
            headers.add(name, value)
    return response
