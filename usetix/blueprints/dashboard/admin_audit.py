"""The audit record of a change an admin made on the dashboard (the API's name their token)."""

from __future__ import annotations

from flask import request
from flask_login import current_user

from ...database.engine import db
from ...database.models import AuditEvent


def record_admin_action(action: str, object_type: str, object_id: int, label: str) -> None:
    """Add the record to the session, to commit with the change it describes."""
    db.session.add(AuditEvent(account_id=current_user.account_id, admin_id=current_user.id, actor=current_user.email,
                              action=action, client_address=request.remote_addr, object_type=object_type,
                              object_id=object_id, object_label=label[:200]))
