"""The notice an admin gets when the login throttle refused logins for their email.

Failures from one address never lock an admin out elsewhere, but they do mean someone is
trying passwords for that email. Each refusal for the email (its window with one address,
or its loose window from every address) is counted on the admin's row, in the shared
database, so the notice waits for the admin's next login on any worker or host, however
long that takes; the dashboard shows it until the admin dismisses it.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from ..database.engine import db
from ..database.models import Admin, utcnow

logger = logging.getLogger("usetix.auth")


def note_throttled_login(email: str) -> None:
    """Count a refused login for the admin with ``email``, if there is one (one atomic
    UPDATE, whatever the number of workers refusing at once). Best effort: a database that
    fails here leaves the 429 as it is, and is logged."""
    try:
        db.session.execute(
            sa.update(Admin).where(Admin.email == Admin.normalize_email(email))
            .values(throttled_logins=Admin.throttled_logins + 1, last_throttled_login_at=utcnow())
        )
        db.session.commit()
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        logger.exception("a throttled login could not be noted for its admin's dashboard notice")


def dismiss_throttle_notice(admin: Admin) -> None:
    admin.throttled_logins = 0
    db.session.commit()
