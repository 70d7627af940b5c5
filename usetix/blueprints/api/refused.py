"""How a write view answers an error: raise :class:`Refused` with the answer."""

from __future__ import annotations

from flask import Response


class Refused(Exception):
    """Raised by a view to answer an error: its writes are rolled back, and its
    Idempotency-Key is released (only a 2xx is kept)."""

    def __init__(self, response: Response):
        self.response = response
