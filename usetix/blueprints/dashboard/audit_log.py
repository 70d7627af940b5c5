"""Settings → Audit log: token changes and every API write, newest first, with filters
by token, admin and action, and Older/Newer pages that keep the filters.

The log grows without bound, so a page is found from a position (audit_log_cursor.py)
by an index, never by counting and skipping the records before it: the newest page, and
the page after or before a record, each read one page and one more record (is there a
next?) from the index that matches the filters (models.AuditEvent's indexes). The page
shows no total for the same reason. A cursor this list did not make is a 400 page.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import abort, current_app, render_template, request, url_for
from flask_login import current_user

from ...core import audit_actions
from ...core.list_query import page_number
from ...database.engine import db
from ...database.models import Admin, ApiToken, AuditEvent, account_select
from . import audit_log_cursor, bp
from .audit_log_cursor import NEWER, OLDER, BadCursor, Position

_ORDER = (AuditEvent.created_at, AuditEvent.id)
# The actions on record, one index probe each (a loose index scan on account_id, action):
# DISTINCT would read every record of the account.
_ACTIONS_ON_RECORD = sa.text("""
    WITH RECURSIVE found(action) AS (
        SELECT MIN(action) FROM audit_events WHERE account_id = :account_id
        UNION ALL
        SELECT (SELECT MIN(action) FROM audit_events WHERE account_id = :account_id AND action > found.action)
        FROM found WHERE found.action IS NOT NULL
    )
    SELECT action FROM found WHERE action IS NOT NULL
""")


def _id_filter(name: str) -> int | None:
    # A page number's rules fit an id too: ASCII digits, no overflow; anything else is no filter.
    return request.args.get(name, None, type=page_number)


def _page(query: sa.Select, position: Position | None, per_page: int) -> tuple[list[AuditEvent], bool, bool]:
    """One page of ``query`` at ``position``, newest first, and whether there are older and
    newer records beyond it."""
    key = sa.tuple_(*_ORDER)
    if position is None:
        rows = db.session.scalars(query.order_by(*(c.desc() for c in _ORDER)).limit(per_page + 1)).all()
        return rows[:per_page], len(rows) > per_page, False
    mark = sa.tuple_(sa.literal(position.created_at, AuditEvent.created_at.type), sa.literal(position.id))
    if position.direction == OLDER:
        rows = db.session.scalars(query.where(key < mark).order_by(*(c.desc() for c in _ORDER))
                                  .limit(per_page + 1)).all()
        return rows[:per_page], len(rows) > per_page, True
    rows = db.session.scalars(query.where(key > mark).order_by(*_ORDER).limit(per_page + 1)).all()
    if len(rows) <= per_page:  # these are the newest: the first page, full
        return _page(query, None, per_page)
    return list(reversed(rows[:per_page])), True, True


@bp.get("/settings/audit_log")
def audit_log():
    account_id = current_user.account_id
    filters = {"token": _id_filter("token"), "admin": _id_filter("admin"), "action": request.args.get("action")}
    filter_args = {k: v for k, v in filters.items() if v}
    cursor_scope = audit_log_cursor.scope(account_id, filter_args)
    secret = current_app.secret_key
    position = None
    if "cursor" in request.args:
        try:
            position = audit_log_cursor.decode(secret, cursor_scope, request.args["cursor"])
        except BadCursor:
            abort(400, "This audit log link is not valid (edited, or made for other filters). "
                       "Open the audit log again.")
    query = account_select(AuditEvent, account_id)
    if filters["token"] is not None:
        query = query.where(AuditEvent.token_id == filters["token"])
    if filters["admin"] is not None:
        query = query.where(AuditEvent.admin_id == filters["admin"])
    if filters["action"]:
        query = query.where(AuditEvent.action == filters["action"])
    entries, has_older, has_newer = _page(query, position, current_app.config["EVENTS_PER_PAGE"])

    def link(direction: str, entry: AuditEvent) -> str:
        cursor = audit_log_cursor.encode(secret, cursor_scope, Position(direction, entry.created_at, entry.id))
        return url_for("dashboard.audit_log", **filter_args, cursor=cursor)

    older = link(OLDER, entries[-1]) if entries and has_older else None
    newer = link(NEWER, entries[0]) if entries and has_newer else None
    # The choices: this account's tokens (revoked ones too), admins, and the actions on record.
    tokens = db.session.execute(
        account_select(ApiToken, account_id, ApiToken.id, ApiToken.description).order_by(ApiToken.id.desc())
    ).all()
    admins = db.session.execute(account_select(Admin, account_id, Admin.id, Admin.email).order_by(Admin.email)).all()
    actions = db.session.scalars(_ACTIONS_ON_RECORD, {"account_id": account_id}).all()
    return render_template(
        "dashboard/audit_log.html", entries=entries, older=older, newer=newer, paged=position is not None,
        tier_labels=ApiToken.TIER_LABELS, action_labels=audit_actions.LABELS, tokens=tokens, admins=admins,
        actions=actions, filters=filters, filter_args=filter_args,
    )
