"""The admin dashboard: HTML pages behind a session login.

Every view here belongs to the logged-in admin's account; the pages live in
``events.py``, ``api_tokens.py`` (Settings → API Tokens and the audit log),
``devices.py`` (Settings → Devices: pairing scanners) and ``webhooks.py`` (Settings →
Webhooks); ``notices.py`` shows leak reports on every page.
"""

from __future__ import annotations

from flask import redirect, url_for
from flask_login import current_user

from ...auth.sessions.hooks import check_session
from ...extensions import login_manager
from ...web.audience import Audience, AudienceBlueprint

bp = AudienceBlueprint("dashboard", __name__, url_prefix="/admin", audience=Audience.HTML)
# First: a store that failed is a 503, a cookie from another client is logged out.
bp.before_request(check_session)


@bp.before_request
def require_login():
    """Every dashboard page needs a logged-in admin; anonymous visitors go to /login."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


@bp.get("/")
def home():
    return redirect(url_for("dashboard.events"))


from . import api_tokens, audit_log, devices, events, notices, webhooks  # noqa: E402,F401  (they add their views to bp)
