"""Which views need no token: declared on the view, read in one place.

``@public`` marks a view that answers without authentication (the health check, the
OpenAPI document). The API's bearer hook and the credential gate both ask
:func:`is_public`; no list of endpoint names is kept anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

View = TypeVar("View", bound=Callable)

_MARK = "usetix_public"


def public(view: View) -> View:
    """Mark ``view`` as needing no token (apply it under the route decorator)."""
    setattr(view, _MARK, True)
    return view


def is_public(view: Callable | None) -> bool:
    return bool(getattr(view, _MARK, False))
