"""Settings → Audit log: token changes and every API write, newest first, with filters
by token, admin and action, and pages that keep the filters."""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app, render_template, request
from flask_login import current_user

from ...core import audit_actions
from ...core.list_query import page_number
from ...database.engine import db
from ...database.models import Admin, ApiToken, AuditEvent, account_select
from . import bp


def _id_filter(name: str) -> int | None:
    # A page number's rules fit an id too: ASCII digits, no overflow; anything else is no filter.
    return request.args.get(name, None, type=page_number)


@bp.get("/settings/audit_log")
def audit_log():
    account_id = current_user.account_id
    filters = {"token": _id_filter("token"), "admin": _id_filter("admin"), "action": request.args.get("action")}
    query = account_select(AuditEvent, account_id)
    if filters["token"] is not None:
        query = query.where(AuditEvent.token_id == filters["token"])
    if filters["admin"] is not None:
        query = query.where(AuditEvent.admin_id == filters["admin"])
    if filters["action"]:
        query = query.where(AuditEvent.action == filters["action"])
    pagination = db.paginate(
        query.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc()),
        page=request.args.get("page", 1, type=page_number),
        per_page=current_app.config["EVENTS_PER_PAGE"],
        error_out=False,
    )
    # The choices: this account's tokens (revoked ones too), admins, and the actions on record.
    tokens = db.session.execute(
        account_select(ApiToken, account_id, ApiToken.id, ApiToken.description).order_by(ApiToken.id.desc())
    ).all()
    admins = db.session.execute(account_select(Admin, account_id, Admin.id, Admin.email).order_by(Admin.email)).all()
    actions = db.session.scalars(
        account_select(AuditEvent, account_id, sa.distinct(AuditEvent.action)).order_by(AuditEvent.action)
    ).all()
    return render_template(
        "dashboard/audit_log.html", pagination=pagination, tier_labels=ApiToken.TIER_LABELS,
        action_labels=audit_actions.LABELS, tokens=tokens, admins=admins, actions=actions,
        filters=filters, filter_args={k: v for k, v in filters.items() if v},
    )
