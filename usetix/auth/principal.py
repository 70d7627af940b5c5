"""The one answer to "who is this request": ``g.principal``.

Set by the API's bearer hook (an account and its token) and by the dashboard's login
check (an account and its admin), never both: a token never opens a session and a
session never authenticates a JSON request. The request log reads it; views read the
account from it.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from flask import g

from ..core.permissions import granted_scopes


class TokenGrant(NamedTuple):
    """What authentication learns of a presented token (``g.principal.token``)."""

    id: int
    account_id: int
    tier: str
    revoked: bool
    last_used_at: datetime | None  # naive UTC, as stored
    expires_at: datetime | None  # naive UTC, as stored; None: never
    events_permission: str  # none, read, write (usetix/core/permissions.py)
    attendees_permission: str
    check_in_permission: str
    webhooks_permission: str
    event_ids: str | None  # the restriction as stored (a JSON array of ids); None: every event

    @property
    def scopes(self) -> frozenset[str]:
        """The scopes it holds (``attendees:read``, ...)."""
        return granted_scopes(self.events_permission, self.attendees_permission, self.check_in_permission,
                              self.webhooks_permission)


class Principal(NamedTuple):
    account_id: int
    token: TokenGrant | None = None  # an API request's token
    admin_id: int | None = None  # a dashboard request's admin


def current_principal() -> Principal | None:
    """This request's principal, or None before (or without) authentication."""
    return g.get("principal")
