"""Settings → API Tokens: list, create (with expiry and the ten-second reveal), one token's
page (usage and history), revoke (confirmed, with or without script)."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from flask import abort, current_app, flash, make_response, redirect, render_template, request, session, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from ...auth.sessions.hooks import still_logged_in
from ...auth.token_service import DuplicateSubmission, NoLongerAuthorized, issue_token, revoke_token
from ...core import audit_actions, token_lifetime
from ...core.list_query import page_number
from ...core.permissions import LEVEL_LABELS, RESOURCE_LABELS, BadPermissions, preset_label
from ...database.engine import db
from ...database.models import ApiToken, AuditEvent, Event, account_select, get_for_account, utcnow
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


@bp.app_template_global()
def token_expiry(token: ApiToken, now=None) -> dict:
    """What a page says of a token's expiry: the sentence, whether to highlight it."""
    now = now or utcnow()
    return {
        "text": token_lifetime.describe_expiry(token.expires_at, now),
        "soon": token.revoked_at is None and token_lifetime.expiring_soon(token.expires_at, now),
    }


@bp.app_template_global()
def token_access(token: ApiToken) -> dict:
    """What a page says of what a token may do: its preset, each permission, its events."""
    chosen = token.permissions
    restricted = token.restricted_to
    return {
        "preset": preset_label(chosen),
        "permissions": " · ".join(f"{RESOURCE_LABELS[resource]}: {LEVEL_LABELS[level]}"
                                  for resource, level in chosen.as_dict().items()),
        "events": "All events" if restricted is None else
                  f"{len(restricted)} event{'s' if len(restricted) != 1 else ''} only",
    }


@bp.app_template_global()
def token_status(token: ApiToken, now=None) -> str:
    if token.revoked_at is not None:
        return "Revoked"
    return "Expired" if token.expired(now or utcnow()) else "Live"


@bp.get("/settings/api_tokens")
def api_tokens():
    active_only = request.args.get("active") == "1"
    query = account_select(ApiToken, current_user.account_id)
    if active_only:
        now = utcnow()
        query = query.where(ApiToken.revoked_at.is_(None),
                            sa.or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now))
    pagination = db.paginate(
        # The creators in one more query, not one per row.
        query.options(sa.orm.selectinload(ApiToken.created_by))
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc()),
        page=request.args.get("page", 1, type=page_number),
        per_page=current_app.config["EVENTS_PER_PAGE"],
        error_out=False,
    )
    return render_template("dashboard/api_tokens.html", pagination=pagination, active_only=active_only,
                           now=utcnow())


@bp.get("/settings/api_tokens/<row_id:token_id>")
def api_token(token_id: int):
    token = get_for_account(ApiToken, current_user.account_id, token_id)
    if token is None:
        abort(404)  # the same whether the token is another account's or nobody's
    now = utcnow()
    history = [
        {"at": entry.created_at, "what": audit_actions.LABELS.get(entry.action, entry.action), "who": entry.actor,
         "where": entry.client_address}
        for entry in db.session.scalars(
            account_select(AuditEvent, current_user.account_id)
            .where(AuditEvent.token_id == token.id)
            .order_by(AuditEvent.created_at, AuditEvent.id)
        )
    ]
    if token.expired(now):  # no one acts when a token expires, so no audit record says so
        history.append({"at": token.expires_at, "what": "Expired", "who": None, "where": None})
        history.sort(key=lambda item: item["at"])
    events = None
    if token.restricted_to is not None:  # its events by name (one deleted since shows as its id)
        titles = dict(db.session.execute(account_select(Event, current_user.account_id, Event.id, Event.title)
                                         .where(Event.id.in_(token.restricted_to))).tuples())
        events = [(event_id, titles.get(event_id)) for event_id in token.restricted_to]
    return render_template("dashboard/api_token.html", token=token, history=history, now=now, events=events)


def _token_form(**values) -> TokenForm:
    """The new-token form, its event choices the account's events (soonest first); none
    before login (the CSRF check can refuse an anonymous post before the login check runs)."""
    form = TokenForm(**values)
    if not current_user.is_authenticated:
        form.events.choices = []
        return form
    form.events.choices = [
        (row.id, f"{row.title} ({row.starts_at:%Y-%m-%d})")
        for row in db.session.execute(account_select(Event, current_user.account_id, Event.id, Event.title,
                                                     Event.starts_at).order_by(Event.starts_at, Event.id))
    ]
    return form


@bp.get("/settings/api_tokens/new")
def new_api_token():
    form = _token_form(nonce=_issue_nonce())
    return render_template("dashboard/api_token_new.html", form=form)


@bp.errorhandler(CSRFError)
def csrf_failed(error: CSRFError):
    """A missing or stale CSRF token on the new-token form shows the form again with the
    error (its nonce still unspent); on any other dashboard form, the usual error page."""
    if request.endpoint != "dashboard.create_api_token":
        return handle_http_error(error)
    form = _token_form()
    form.validate()  # the other fields' errors too, so one resubmission can fix them all
    if not form.csrf_token.errors:  # a valid token, refused for another reason (HTTPS Referer)
        form.csrf_token.errors = [error.description]
    return render_template("dashboard/api_token_new.html", form=form), 400


@bp.post("/settings/api_tokens")
def create_api_token():
    form = _token_form()
    nonce = request.form.get("nonce", "")
    if nonce not in session.get(NONCES_KEY, []):
        return _already_submitted()
    if not form.validate():
        return render_template("dashboard/api_token_new.html", form=form), 400
    _spend_nonce(nonce)
    try:
        token, raw = issue_token(current_user, form.description.data, form.tier.data, request.remote_addr, nonce,
                                 expires_at=form.expiry(utcnow()), still_authorized=still_logged_in,
                                 permissions=form.permissions, event_ids=form.restriction())
    except DuplicateSubmission:
        # A second submission that raced past the session check (a double click).
        return _already_submitted()
    except NoLongerAuthorized:  # logged out while this request ran: nothing was made
        return current_app.login_manager.unauthorized()
    except BadPermissions as exc:  # a chosen event was deleted since the form was shown: nothing was made
        form = _token_form(formdata=request.form)
        form.validate()
        form.events.errors = [*form.events.errors, str(exc)]
        form.nonce.data = _issue_nonce()
        return render_template("dashboard/api_token_new.html", form=form), 400
    # The reveal page is the answer to this POST, so the raw value never has to be kept
    # anywhere to survive a redirect; no-store keeps it out of caches and history.
    response = make_response(
        render_template("dashboard/api_token_reveal.html", token=token, raw_value=raw, seconds=REVEAL_SECONDS,
                        now=utcnow())
    )
    # Referrer-Policy stays same-origin (security_headers.py): the value is never in a URL,
    # and the header's Log out form needs a Referer for Flask-WTF's check over HTTPS.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/settings/api_tokens/<row_id:token_id>/revoke", methods=["GET", "POST"])
def revoke_api_token(token_id: int):
    """Revoke after a confirmation: the list's script asks in a dialog and sends
    ``confirm=yes``; without script (or on GET) this page asks instead."""
    token = get_for_account(ApiToken, current_user.account_id, token_id)
    if token is None:
        abort(404)
    if request.method != "POST" or request.form.get("confirm") != "yes":  # HEAD and GET never revoke
        return render_template("dashboard/api_token_revoke.html", token=token, now=utcnow())
    if revoke_token(token, current_user.email, current_user.id, request.remote_addr):
        flash(f"Token “{token.description}” was revoked. Requests using it now get 401.", "success")
    else:
        flash(f"Token “{token.description}” was already revoked.", "info")
    return redirect(url_for("dashboard.api_tokens"))
