"""The one answer to "who is this request": ``g.principal``.

Set by the API's bearer hook (an account and its token) and by the dashboard's login
check (an account and its admin), never both: a token never opens a session and a
session never authenticates a JSON request. The request log reads it; views read the
account from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from flask import g

if TYPE_CHECKING:
    from .bearer import TokenGrant


class Principal(NamedTuple):
    account_id: int
    token: TokenGrant | None = None  # an API request's token
    admin_id: int | None = None  # a dashboard request's admin


def current_principal() -> Principal | None:
    """This request's principal, or None before (or without) authentication."""
    return g.get("principal")
