"""Decide whether a request is a JSON (API) request from its ``Accept`` header. No Flask.

The public document says bearer auth fires only on JSON requests. A request is one when
its Accept header names ``application/json`` explicitly and prefers it at least as much as
``text/html``. ``*/*`` alone (curl's default) or no header at all is a browser-style
request: wildcards never make a request JSON.
"""

from __future__ import annotations


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def prefers_json(accept: str | None) -> bool:
    """True when ``accept`` asks for JSON explicitly and ranks it no lower than HTML."""
    if not accept:
        return False
    if accept == "application/json":  # what almost every script sends
        return True
    json_q = None
    html_q = None
    wildcard_q = {"*/*": 0.0, "text/*": 0.0}
    for item in accept.split(","):
        media_type, *params = item.split(";")
        media_type = media_type.strip().lower()
        q = _quality(params)
        if media_type == "application/json":
            json_q = max(q, json_q or 0.0)
        elif media_type == "text/html":
            html_q = max(html_q or 0.0, q)
        elif media_type in wildcard_q:
            wildcard_q[media_type] = max(wildcard_q[media_type], q)
    if not json_q:
        return False
    # An explicit text/html entry outranks wildcards (RFC 9110 §12.5.1).
    if html_q is None:
        html_q = max(wildcard_q.values())
    return json_q >= html_q
