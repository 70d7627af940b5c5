"""Admin passwords: hashing, and checking an email and password in constant work."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask, current_app
from werkzeug.security import check_password_hash, generate_password_hash

from ..database.engine import db
from ..database.models import Admin

_DUMMY_HASHES = "usetix.dummy_password_hash"


def hash_password(password: str) -> str:
    """A scrypt hash (the method is configurable so tests can use a cheaper cost)."""
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def _dummy_hash() -> str:
    # Checked against for unknown emails, so they cost the same time as a wrong password.
    cache = current_app.extensions.setdefault(_DUMMY_HASHES, {})
    method = current_app.config["PASSWORD_HASH_METHOD"]
    if method not in cache:
        cache[method] = hash_password("not-a-real-password")
    return cache[method]


def init_app(app: Flask) -> None:
    """Make the dummy hash with the app, not at the first unknown email: that login
    would cost two hashes."""
    with app.app_context():
        _dummy_hash()


def check_admin_password(email: str, password: str) -> Admin | None:
    """The admin with this email and password, or None (in the same time either way)."""
    admin = db.session.scalar(sa.select(Admin).where(Admin.email == Admin.normalize_email(email)))
    password_ok = check_password_hash(admin.password_hash if admin else _dummy_hash(), password)
    return admin if admin and password_ok else None
