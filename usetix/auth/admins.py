"""The dashboard's logged-in admin: Flask-Login's settings and loader, logging in and out."""

from __future__ import annotations

from flask import Flask, g, session
from flask_login import login_user, logout_user

from ..database.engine import db
from ..database.models import Admin
from ..extensions import login_manager
from .principal import Principal
from .sessions.hooks import bind_to_client, save_now


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_message = "Please log in to see that page."
    # Off: Flask-Login's "strong" mode reads the first X-Forwarded-For entry, whoever sent
    # it. sessions.check_session binds a login to the address the app trusts instead.
    login_manager.session_protection = None


def set_login_view(endpoint: str) -> None:
    """The login form's endpoint, where a visitor who must log in is sent (given by create_app,
    which registers the login blueprint)."""
    login_manager.login_view = endpoint


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
    bind_to_client()
    save_now()  # stored before the browser is told it is logged in (a failing store: 503)
    g.principal = Principal(admin.account_id, admin_id=admin.id)


def log_out() -> None:
    """End the session: its record is deleted before the browser is told so."""
    logout_user()
    session.clear()
    session.rotate()
    save_now()
