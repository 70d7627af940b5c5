"""The API blueprint object, apart from the modules that add views to it."""

from __future__ import annotations

from ...extensions import csrf
from ...web.audience import Audience, AudienceBlueprint

bp = AudienceBlueprint("api", __name__, url_prefix="/admin", audience=Audience.JSON)
csrf.exempt(bp)  # bearer tokens, never cookies: there is nothing for a forged form to ride on
