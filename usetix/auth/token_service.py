"""Issuing and revoking API tokens, each with its audit record, in one transaction.

Used by the dashboard (Settings → API Tokens) and by ``usetix revoke-token``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..core import token_format
from ..extensions import db
from ..models import Admin, ApiToken, AuditEvent, utcnow

TIERS = tuple(ApiToken.TIER_LABELS)


class DuplicateSubmission(Exception):
    """A token was already made from this form (its nonce is spent)."""


def _audit(action: str, token: ApiToken, actor: str, admin_id: int | None, client_address: str | None) -> None:
    db.session.add(
        AuditEvent(
            account_id=token.account_id,
            admin_id=admin_id,
            actor=actor,
            action=action,
            token_id=token.id,
            token_description=token.description,
            token_tier=token.tier,
            client_address=client_address,
        )
    )


def issue_token(admin: Admin, description: str, tier: str, client_address: str | None,
                form_nonce: str | None = None) -> tuple[ApiToken, str]:
    """Create a token for the admin's account; returns the row and the raw value, which
    exists only in this return value and is never written anywhere.

    Raises DuplicateSubmission if ``form_nonce`` already made a token.
    """
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}")
    raw = token_format.generate()
    token = ApiToken(
        account_id=admin.account_id,
        created_by_id=admin.id,
        description=description,
        tier=tier,
        digest=token_format.digest(raw),
        form_nonce=form_nonce,
    )
    db.session.add(token)
    try:
        db.session.flush()  # assigns token.id for the audit row; enforces the unique nonce
    except IntegrityError:
        db.session.rollback()
        if form_nonce and db.session.scalar(sa.select(ApiToken.id).where(ApiToken.form_nonce == form_nonce)):
            raise DuplicateSubmission from None
        raise
    _audit("token.created", token, admin.email, admin.id, client_address)
    db.session.commit()
    return token, raw


def revoke_token(token: ApiToken, actor: str, admin_id: int | None, client_address: str | None) -> bool:
    """Revoke ``token`` now. False if it was already revoked (nothing changes then)."""
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
    _audit("token.revoked", token, actor, admin_id, client_address)
    db.session.commit()
    return True


def find_by_value(raw: str) -> ApiToken | None:
    """The token row for a raw value (any account), or None; raises MalformedToken."""
    return db.session.scalar(sa.select(ApiToken).where(ApiToken.digest == token_format.digest(token_format.parse(raw))))
