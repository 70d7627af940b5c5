"""The login screens: log in to the dashboard and log out (server-side session, Flask-Login)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.exceptions import ServiceUnavailable, TooManyRequests
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from ..auth.admins import log_in, log_out
from ..auth.passwords import check_admin_password
from ..auth.sessions.hooks import check_session
from ..auth.throttle_notices import note_throttled_login
from ..database.engine import db
from ..database.faults import check_reachable
from ..ratelimit import LimitsUnavailable, rate_limits
from ..web.audience import Audience, AudienceBlueprint
from ..web.form_validators import NoControlCharacters
from ..web.forms import TextForm

bp = AudienceBlueprint("login", __name__, audience=Audience.HTML)
# Where Flask-Login sends a visitor who must log in first (create_app tells it so).
LOGIN_ENDPOINT = "login.login"
bp.before_request(check_session)  # as on the dashboard: a failed store is a 503, a foreign cookie logged out

BAD_CREDENTIALS = "Unknown email or wrong password."
THROTTLED = "Too many failed logins for this email or from this address. Try again in a few minutes."
PAUSED = ("Logging in is paused for a moment: the login throttle's storage cannot be reached, and no password "
          "is checked uncounted. Try again in a minute.")
PAUSED_RETRY_SECONDS = 60


class LoginForm(TextForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254), NoControlCharacters()])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


# A path of printable ASCII: no control character (a header-splitting newline), space or
# non-ASCII letter goes into the Location header.
_PRINTABLE_PATH = re.compile(r"/[\x21-\x7e]*")


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site that can go into a Location header as it
    is, else None (no open redirect, no broken header): the login then goes to the
    default page."""
    if not target or not _PRINTABLE_PATH.fullmatch(target) or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.events"))
    if request.method == "GET":
        refuse_while_logins_cannot_work()
    form = LoginForm()
    if form.validate_on_submit():
        # Counted before the password is checked, so attempts in flight on other workers
        # cannot pass the limit together; only failures keep their place.
        try:
            attempt = rate_limits(current_app).reserve_login_attempt(form.email.data, request.remote_addr)
        except LimitsUnavailable:  # fails closed (and was logged): no password is tried uncounted
            raise ServiceUnavailable(PAUSED, retry_after=PAUSED_RETRY_SECONDS) from None
        if attempt.refused is not None:
            if attempt.email_throttled:  # the admin is told on the dashboard
                note_throttled_login(form.email.data)
            raise LoginThrottled(attempt.refused)
        admin = check_admin_password(form.email.data, form.password.data)
        if admin is not None:
            attempt.release()
            log_in(admin)
            return redirect(safe_next(request.args.get("next")) or url_for("dashboard.events"))
        form.password.errors.append(BAD_CREDENTIALS)
    return render_template("login/login.html", form=form)


def refuse_while_logins_cannot_work() -> None:
    """A login needs the database (the admin and the password): while it cannot be reached,
    the form is our 503 page with ``Retry-After`` (usetix/web/database_failures.py), not a
    form whose every submission fails. (A session store that fails is met by the
    submission, as before: an anonymous visit needs no store.)"""
    check_reachable(db.engine)


class LoginThrottled(TooManyRequests):
    """429 with the window's ``Retry-After`` and ``RateLimit-*`` headers."""

    def __init__(self, limit_headers: dict[str, str]) -> None:
        super().__init__(THROTTLED)
        self.limit_headers = limit_headers

    def get_headers(self, *args, **kwargs) -> list[tuple[str, str]]:
        return [*super().get_headers(*args, **kwargs), *self.limit_headers.items()]


@bp.post("/logout")
@login_required
def logout():
    log_out()
    flash("You have been logged out.", "info")
    return redirect(url_for("login.login"))
