"""Settings → API Tokens: list, create (with the ten-second reveal), revoke."""

from __future__ import annotations

import secrets

from flask import abort, flash, make_response, redirect, render_template, request, session, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from ...auth.token_service import DuplicateSubmission, issue_token, revoke_token
from ...extensions import db
from ...models import ApiToken, account_select, get_for_account
from ...web.errors import handle_http_error
from . import bp
from .forms import TokenForm

REVEAL_SECONDS = 10
# Open "new token" forms an admin may have at once (tabs); older nonces are dropped.
MAX_OPEN_FORMS = 5
NONCES_KEY = "token_form_nonces"


def _issue_nonce() -> str:
    nonce = secrets.token_urlsafe(16)
    session[NONCES_KEY] = (session.get(NONCES_KEY, []) + [nonce])[-MAX_OPEN_FORMS:]
    return nonce


def _spend_nonce(nonce: str) -> None:
    session[NONCES_KEY] = [n for n in session.get(NONCES_KEY, []) if n != nonce]


def _already_submitted():
    flash("That form was already submitted, so no new token was created. Your tokens are listed below.", "info")
    return redirect(url_for("dashboard.api_tokens"))


@bp.get("/settings/api_tokens")
def api_tokens():
    live = db.session.scalars(
        account_select(ApiToken, current_user.account_id)
        .where(ApiToken.revoked_at.is_(None))
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    ).all()
    return render_template("dashboard/api_tokens.html", tokens=live)


@bp.get("/settings/api_tokens/new")
def new_api_token():
    form = TokenForm(nonce=_issue_nonce())
    return render_template("dashboard/api_token_new.html", form=form)


@bp.errorhandler(CSRFError)
def csrf_failed(error: CSRFError):
    """A missing or stale CSRF token on the new-token form shows the form again with the
    error (its nonce still unspent); on any other dashboard form, the usual error page."""
    if request.endpoint != "dashboard.create_api_token":
        return handle_http_error(error)
    form = TokenForm()
    form.validate()  # the other fields' errors too, so one resubmission can fix them all
    if not form.csrf_token.errors:  # a valid token, refused for another reason (HTTPS Referer)
        form.csrf_token.errors = [error.description]
    return render_template("dashboard/api_token_new.html", form=form), 400


@bp.post("/settings/api_tokens")
def create_api_token():
    form = TokenForm()
    nonce = request.form.get("nonce", "")
    if nonce not in session.get(NONCES_KEY, []):
        return _already_submitted()
    if not form.validate():
        return render_template("dashboard/api_token_new.html", form=form), 400
    _spend_nonce(nonce)
    try:
        token, raw = issue_token(current_user, form.description.data, form.tier.data, request.remote_addr, nonce)
    except DuplicateSubmission:
        # A second submission that raced past the session check (a double click).
        return _already_submitted()
    # The reveal page is the answer to this POST, so the raw value never has to be kept
    # anywhere to survive a redirect; no-store keeps it out of caches and history.
    response = make_response(
        render_template("dashboard/api_token_reveal.html", token=token, raw_value=raw, seconds=REVEAL_SECONDS)
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.post("/settings/api_tokens/<int:token_id>/revoke")
def revoke_api_token(token_id: int):
    token = get_for_account(ApiToken, current_user.account_id, token_id)
    if token is None:
        abort(404)
    if revoke_token(token, current_user.email, current_user.id, request.remote_addr):
        flash(f"Token “{token.description}” was revoked. Requests using it now get 401.", "success")
    else:
        flash(f"Token “{token.description}” was already revoked.", "info")
    return redirect(url_for("dashboard.api_tokens"))
