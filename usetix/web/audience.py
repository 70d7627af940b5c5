"""Which requests a blueprint answers, declared by the blueprint itself and read by the
app class when it builds its two URL maps (``usetix/web/app.py``)."""

from __future__ import annotations

from enum import Enum

from flask import Blueprint


class Audience(Enum):
    HTML = "html"  # pages for people: asked for without JSON in Accept
    JSON = "json"  # the API: asked for with Accept: application/json
    BOTH = "both"  # for machines and people alike (the health check, the OpenAPI document)


class AudienceBlueprint(Blueprint):
    """A blueprint that says which requests it answers (HTML ones unless told)."""

    def __init__(self, *args, audience: Audience = Audience.HTML, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.audience = audience
