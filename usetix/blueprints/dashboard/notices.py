"""The notice of leak reports: on every dashboard page of the account's admins, until each
dismisses it (``POST /admin/credentials/revoke`` makes the reports)."""

from __future__ import annotations

import re

from flask import flash, g, redirect, request, url_for
from flask_login import current_user

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
    target = request.form.get("next", "")
    # Back to the page it was dismissed on, if that is one of ours.
    if not _BACK_TO.fullmatch(target):
        target = url_for("dashboard.api_tokens")
    return redirect(target)
