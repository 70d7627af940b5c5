"""Issuing and revoking API tokens, each with its audit record, in one transaction.

Used by the dashboard (Settings → API Tokens) and by ``usetix revoke-token``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..core import audit_actions as actions
from ..core import token_format
from ..core.permissions import BadPermissions, Permissions, checked_permissions, preset_permissions, store_event_ids
from ..database.engine import db
from ..database.models import Admin, ApiToken, AuditEvent, DeviceAuthorization, Event, utcnow

# The audit log's actor for a revocation by an unauthenticated leak report.
LEAK_REPORT_ACTOR = "leak report"
# At most this many values in one leak report (as GitHub's credential-revocation API).
MAX_LEAK_REPORT_VALUES = 1000


class DuplicateSubmission(Exception):
    """A token was already made from this form (its nonce is spent)."""


class NoLongerAuthorized(Exception):
    """Whoever asked for the token stopped being allowed to while it was made (logged out)."""


def _audit(action: str, token: ApiToken, actor: str, admin_id: int | None, client_address: str | None) -> None:
    device = token.device_authorization
    db.session.add(
        AuditEvent(
            account_id=token.account_id,
            admin_id=admin_id,
            actor=actor,
            action=action,
            token_id=token.id,
            token_description=token.description,
            token_tier=token.tier,
            token_permissions=token.permissions.summary,
            token_event_ids=token.event_ids,
            client_address=client_address,
            # A device's token names its device, as the pairing's other records do.
            object_type="device" if device is not None else None,
            object_id=device.id if device is not None else None,
            object_label=device.device_name if device is not None else None,
        )
    )


def issue_token(admin: Admin, description: str, tier: str, client_address: str | None,
                form_nonce: str | None = None, expires_at: datetime | None = None,
                still_authorized: Callable[[], bool] | None = None, *, permissions: Permissions | None = None,
                event_ids: list[int] | None = None, device: DeviceAuthorization | None = None
                ) -> tuple[ApiToken, str]:
    """Create a token for the admin's account; returns the row and the raw value, which
    exists only in this return value and is never written anywhere. ``expires_at`` None
    makes a token that never expires.

    ``tier`` names a preset (``read``, ``write``, ``check_in``: usetix/core/permissions.py);
    ``permissions`` given instead say each permission (the custom preset), and the tier
    follows from them. ``event_ids`` (ids of the account's events) limits the token to those
    events; None: every event. Raises BadPermissions (nothing made) for a token with no
    permission, an unknown preset, or an event that is not the account's.

    Raises DuplicateSubmission if ``form_nonce`` already made a token, and
    NoLongerAuthorized (nothing made) if ``still_authorized``, asked inside the transaction
    once the token is written, says no: the dashboard's login was logged out meanwhile.

    ``device``: the device pairing (usetix/auth/device_grant.py) the token is issued to; its
    audit record is then ``device.token_issued``, from the device's address.
    """
    chosen = checked_permissions(*permissions) if permissions is not None else preset_permissions(tier)
    stored_event_ids = store_event_ids(event_ids)
    if event_ids is not None:
        owned = set(db.session.scalars(sa.select(Event.id).where(Event.account_id == admin.account_id,
                                                                 Event.id.in_(sorted(set(event_ids))))))
        if owned != set(event_ids):
            raise BadPermissions("A token can only be limited to events of its own account.")
    raw = token_format.generate()
    token = ApiToken(
        account_id=admin.account_id,
        created_by_id=admin.id,
        description=description,
        tier=chosen.tier,
        events_permission=chosen.events,
        attendees_permission=chosen.attendees,
        check_in_permission=chosen.check_in,
        webhooks_permission=chosen.webhooks,
        event_ids=stored_event_ids,
        digest=token_format.digest(raw),
        form_nonce=form_nonce,
        expires_at=expires_at,
        device_authorization=device,
    )
    db.session.add(token)
    try:
        db.session.flush()  # assigns token.id for the audit row; enforces the unique nonce
    except IntegrityError:
        db.session.rollback()
        if form_nonce and db.session.scalar(sa.select(ApiToken.id).where(ApiToken.form_nonce == form_nonce)):
            raise DuplicateSubmission from None
        raise
    if still_authorized is not None and not still_authorized():
        db.session.rollback()
        raise NoLongerAuthorized
    _audit(actions.TOKEN_CREATED if device is None else actions.DEVICE_TOKEN_ISSUED, token, admin.email, admin.id,
           client_address)
    db.session.commit()
    return token, raw


def revoke_token(token: ApiToken, actor: str, admin_id: int | None, client_address: str | None,
                 action: str = actions.TOKEN_REVOKED) -> bool:
    """Revoke ``token`` now. False if it was already revoked (nothing changes then).
    ``action``: what the audit record calls it (a device unpaired, or signed out)."""
    # A conditional UPDATE, so two admins revoking at once record one revocation.
    revoked = db.session.execute(
        sa.update(ApiToken)
        .where(ApiToken.id == token.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not revoked:
        db.session.rollback()
        return False
    _audit(action, token, actor, admin_id, client_address)
    db.session.commit()
    return True


def find_by_value(raw: str) -> ApiToken | None:
    """The token row for a raw value (any account), or None; raises MalformedToken."""
    return db.session.scalar(sa.select(ApiToken).where(ApiToken.digest == token_format.digest(token_format.parse(raw))))


def revoke_leaked(values: Iterable[str], reporter_address: str | None) -> int:
    """Revoke every live token among ``values`` (raw values reported as leaked, by anyone).

    Values that are not well-formed tokens (wrong shape or checksum) are dropped without a
    query; the rest are matched in one batched UPDATE, whatever their number. Each token
    revoked gets a ``token.reported_leaked`` audit record with the reporter's address,
    which its account's admins see as a dashboard notice. Returns how many were revoked
    (for the caller's log only: the reporter must not learn it).
    """
    digests = set()
    for value in values:
        try:
            digests.add(token_format.digest(token_format.parse(value)))
        except token_format.MalformedToken:
            continue
    if not digests:
        return 0
    now = utcnow()
    table = ApiToken.__table__
    # One statement whatever the number of values; RETURNING (SQLite 3.35+, PostgreSQL)
    # gives what the audit records need without a second query.
    revoked = db.session.execute(
        sa.update(table)
        .where(table.c.digest.in_(sorted(digests)), table.c.revoked_at.is_(None),
               sa.or_(table.c.expires_at.is_(None), table.c.expires_at > now))
        .values(revoked_at=now)
        .returning(table.c.id, table.c.account_id, table.c.description, table.c.tier, table.c.events_permission,
                   table.c.attendees_permission, table.c.check_in_permission, table.c.webhooks_permission,
                   table.c.event_ids)
    ).all()
    if revoked:
        db.session.execute(sa.insert(AuditEvent.__table__), [
            {"account_id": row.account_id, "admin_id": None, "actor": LEAK_REPORT_ACTOR,
             "action": actions.TOKEN_REPORTED_LEAKED, "token_id": row.id, "token_description": row.description,
             "token_tier": row.tier, "client_address": reporter_address, "created_at": now,
             "token_permissions": Permissions(row.events_permission, row.attendees_permission,
                                              row.check_in_permission, row.webhooks_permission).summary,
             "token_event_ids": row.event_ids}
            for row in revoked
        ])
    db.session.commit()
    return len(revoked)


def leak_reports_for(admin: Admin) -> list[AuditEvent]:
    """The leak reports on the admin's account's tokens that the admin has not dismissed
    (nor predate the admin), newest first: one indexed query."""
    since = admin.leak_notices_dismissed_at or admin.created_at
    return list(db.session.scalars(
        sa.select(AuditEvent)
        .where(AuditEvent.account_id == admin.account_id, AuditEvent.created_at > since,
               AuditEvent.action == actions.TOKEN_REPORTED_LEAKED)
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
        .limit(20)
    ))


def dismiss_leak_reports(admin: Admin) -> None:
    admin.leak_notices_dismissed_at = utcnow()
    db.session.commit()
