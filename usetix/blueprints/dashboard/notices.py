"""The dashboard's notices, on every page until dismissed: leak reports on the account's
tokens (``POST /admin/credentials/revoke`` makes them), and logins for the admin's own
email refused by the login throttle (usetix/auth/throttle_notices.py)."""

from __future__ import annotations

import re

from flask import flash, g, redirect, request, url_for
from flask_login import current_user

from ...auth.throttle_notices import dismiss_throttle_notice
from ...auth.token_service import dismiss_leak_reports, leak_reports_for
from . import bp

# Where Dismiss may lead back to: a dashboard path of plain characters (no scheme, host,
# query, or anything a Location header could not carry).
_BACK_TO = re.compile(r"/admin/(?:[A-Za-z0-9_-][A-Za-z0-9_.-]*/?)*")


@bp.before_request
def load_leak_reports():
    """Leak reports the admin has not dismissed, for the notice on every dashboard page."""
    if current_user.is_authenticated:
        g.leak_reports = leak_reports_for(current_user)


@bp.post("/notices/leak_reports/dismiss")
def dismiss_leak_notice():
    dismiss_leak_reports(current_user)
    flash("Leak notice dismissed. The reports stay in the audit log.", "info")
    return _back()


@bp.post("/notices/throttled_logins/dismiss")
def dismiss_throttled_logins_notice():
    dismiss_throttle_notice(current_user)
    flash("Notice of refused logins dismissed.", "info")
    return _back()


def _back():
    """Back to the page the notice was dismissed on, if that is one of ours."""
    target = request.form.get("next", "")
    if not _BACK_TO.fullmatch(target):
        target = url_for("dashboard.api_tokens")
    return redirect(target)
