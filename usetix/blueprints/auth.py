"""Log in and log out of the dashboard (server-side session, Flask-Login)."""

from __future__ import annotations

from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from ..extensions import db, limiter, login_manager
from ..models import Admin
from ..validators import NoControlCharacters

bp = Blueprint("auth", __name__)

login_manager.login_view = "auth.login"
login_manager.login_message = "Please log in to see that page."
login_manager.session_protection = "strong"

BAD_CREDENTIALS = "Unknown email or wrong password."


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254), NoControlCharacters()])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


@login_manager.user_loader
def load_admin(admin_id: str) -> Admin | None:
    try:
        return db.session.get(Admin, int(admin_id))
    except ValueError:
        return None


def hash_password(password: str) -> str:
    """A scrypt hash (the method is configurable so tests can use a cheaper cost)."""
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def _dummy_hash() -> str:
    # Checked against for unknown emails, so they cost the same time as a wrong password.
    cache = current_app.extensions.setdefault("usetix_dummy_hash", {})
    method = current_app.config["PASSWORD_HASH_METHOD"]
    if method not in cache:
        cache[method] = hash_password("not-a-real-password")
    return cache[method]


@bp.record_once
def _prepare_dummy_hash(state) -> None:
    # Made with the app, not at the first unknown email: that login would cost two hashes.
    with state.app.app_context():
        _dummy_hash()


def authenticate(email: str, password: str) -> Admin | None:
    """The admin with this email and password, or None (in the same time either way)."""
    admin = db.session.scalar(sa.select(Admin).where(Admin.email == Admin.normalize_email(email)))
    password_ok = check_password_hash(admin.password_hash if admin else _dummy_hash(), password)
    return admin if admin and password_ok else None


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None (no open redirect)."""
    if not target or target.startswith(("//", "\\")) or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return None
    return target


def _login_email_key() -> str:
    return "email:" + Admin.normalize_email(request.form.get("email", ""))


def _failed_login_only(response) -> bool:
    # Only failed attempts count towards the limits; a successful login redirects.
    return response.status_code == 200 and request.method == "POST"


THROTTLED = "Too many failed logins for this email or from this address. Try again in a few minutes."


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"],
               deduct_when=_failed_login_only, error_message=THROTTLED)
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"],
               key_func=_login_email_key, deduct_when=_failed_login_only, error_message=THROTTLED)
def login():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.events"))
    form = LoginForm()
    if form.validate_on_submit():
        admin = authenticate(form.email.data, form.password.data)
        if admin is not None:
            session.clear()
            session.rotate()
            # Never remember=True: Flask-Login's remember-me cookie would outlive the server-side session.
            login_user(admin, remember=False)
            return redirect(safe_next(request.args.get("next")) or url_for("dashboard.events"))
        form.password.errors.append(BAD_CREDENTIALS)
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    session.clear()
    session.rotate()
    flash("You have been logged out.", "info")
    return redirect(url_for("auth.login"))
