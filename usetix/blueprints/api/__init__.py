"""The JSON API blueprint, one module per resource, each holding its reads and writes:
``account.py``, ``events.py``, ``attendees.py``, ``check_in.py``, ``webhooks.py``.

Requests reach it only when they ask for JSON (see ``usetix/web/app.py``). Beside the
resources, under names that say what they are: ``authentication.py`` (the bearer hook),
``pagination.py`` (the lists), and what every write shares: ``transaction.py``
(``@write_view``: one transaction per write), ``request_body.py``, ``idempotency_key.py``,
``conditional_requests.py`` (ETag, If-Match, If-None-Match), ``audit.py`` and
``refused.py``. Views read ``g.principal``, never the login session.
"""

from __future__ import annotations

from . import account, attendees, authentication, check_in, door, events, webhooks  # noqa: F401  (they add their hooks and views to bp)
from .blueprint import bp

__all__ = ["bp"]
