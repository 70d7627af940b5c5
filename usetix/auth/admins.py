"""The dashboard's logged-in admin: Flask-Login's settings and loader, logging in and out."""

from __future__ import annotations

from flask import Flask, g, session
from flask_login import login_user, logout_user

from ..extensions import db, login_manager
from ..models import Admin
from .principal import Principal

LOGIN_VIEW = "login.login"


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = LOGIN_VIEW
    login_manager.login_message = "Please log in to see that page."
    login_manager.session_protection = "strong"


@login_manager.user_loader
def load_admin(admin_id: str) -> Admin | None:
    try:
        admin = db.session.get(Admin, int(admin_id))
    except ValueError:
        return None
    if admin is not None:
        g.principal = Principal(admin.account_id, admin_id=admin.id)
    return admin


def log_in(admin: Admin) -> None:
    """Start ``admin``'s session under a fresh session id (no session fixation)."""
    session.clear()
    session.rotate()
    # Never remember=True: Flask-Login's remember-me cookie would outlive the server-side session.
    login_user(admin, remember=False)
    g.principal = Principal(admin.account_id, admin_id=admin.id)


def log_out() -> None:
    """End the session: its data goes and its id is replaced."""
    logout_user()
    session.clear()
    session.rotate()
