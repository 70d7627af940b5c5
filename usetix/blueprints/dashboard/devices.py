"""Settings → Devices: pair a scanner by the code it shows (the approval page of the OAuth
device grant, RFC 8628 §3.3: ``/admin/devices/activate``), the paired devices, Unpair.

A user code is looked up only under a throttle, per login session and per client address
(shared by every worker and host, like the login throttle; SECURITY.md says the numbers),
so that a code of another pending request cannot be found by guessing.
"""

from __future__ import annotations

import secrets

from flask import abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user

from ...auth import device_grant
from ...core import device_codes
from ...core.permissions import BadPermissions
from ...database.engine import db
from ...database.models import ApiToken, DeviceAuthorization, Event, account_select, get_for_account, utcnow
from ...ratelimit import LimitsUnavailable, address_key, rate_limits
from . import bp
from .forms import DeviceApprovalForm, UserCodeForm

# The session's own key in the code throttle (a random id, not the session's: that is secret).
THROTTLE_KEY = "device_code_throttle"
WRONG_CODE = "No device is waiting with this code. Check the code on the device; a code lasts 10 minutes."


class Throttled(Exception):
    def __init__(self, headers: dict[str, str]):
        self.headers = headers


def _count_code_lookup() -> None:
    """Count one user-code lookup for this session and this address; raises Throttled
    when either has had its share, LimitsUnavailable when the shared storage is down."""
    limits = rate_limits(current_app)
    if THROTTLE_KEY not in session:
        session[THROTTLE_KEY] = secrets.token_urlsafe(12)
    for item, key in ((limits.device_code, ("device-code-session", session[THROTTLE_KEY])),
                      (limits.device_code_address, ("device-code-address", address_key(request.remote_addr)))):
        verdict = limits.hit_shared(item, *key)
        if verdict is not None and not verdict.allowed:
            raise Throttled(verdict.headers)


def _look_up(stored_code: str) -> DeviceAuthorization | None:
    _count_code_lookup()
    return device_grant.pending_by_user_code(stored_code, utcnow())


def _event_choices() -> list[tuple[int, str]]:
    return [(row.id, f"{row.title} ({row.starts_at:%Y-%m-%d})")
            for row in db.session.execute(account_select(Event, current_user.account_id, Event.id, Event.title,
                                                         Event.starts_at).order_by(Event.starts_at, Event.id))]


def _approval_form(**values) -> DeviceApprovalForm:
    form = DeviceApprovalForm(**values)
    form.events.choices = _event_choices()
    form.replaces.choices = [(0, "No, this is another device")] + [
        (token.id, f"Replaces “{token.description}” (paired {token.created_at:%Y-%m-%d}): unpair it now")
        for token in device_grant.paired_devices(current_user.account_id, utcnow())]
    return form


def _code_page(form: UserCodeForm, status: int = 200, headers: dict | None = None):
    return render_template("dashboard/device_activate.html", form=form), status, headers or {}


def _refused_lookup(form: UserCodeForm, exc: Exception):
    if isinstance(exc, Throttled):
        form.user_code.errors = [*form.user_code.errors, "Too many codes tried from here. Wait a few minutes, "
                                 "then type the code again."]
        return _code_page(form, 429, exc.headers)
    form.user_code.errors = [*form.user_code.errors, "Codes cannot be checked for a moment; retry shortly."]
    return _code_page(form, 503, {"Retry-After": "30"})


def _confirm_page(row: DeviceAuthorization, form: DeviceApprovalForm | None = None, status: int = 200):
    form = form or _approval_form(formdata=None, user_code=row.user_code)
    return render_template("dashboard/device_confirm.html", form=form, device=row,
                           code=device_codes.display_user_code(row.user_code)), status


@bp.route("/devices/activate", methods=["GET", "POST"])
def activate_device():
    """The code entry (GET, or POST ``user_code``); a found code shows what asks and the
    approval form. ``?user_code=`` (the device's verification_uri_complete) looks the code
    up as typed, and still shows it to be checked against the device before anything is approved."""
    prefilled = request.method != "POST" and "user_code" in request.args
    if prefilled:  # a GET changes nothing: no CSRF token to check (the decision's POST has one)
        form = UserCodeForm(formdata=request.args, meta={"csrf": False})
    else:
        form = UserCodeForm(formdata=None) if request.method != "POST" else UserCodeForm()
    if request.method != "POST" and not prefilled:
        return _code_page(form)
    if not form.validate():
        return _code_page(form, 400)
    try:
        row = _look_up(form.stored_code)
    except (Throttled, LimitsUnavailable) as exc:
        return _refused_lookup(form, exc)
    if row is None:
        form.user_code.errors = [WRONG_CODE]
        return _code_page(form, 404 if prefilled else 400)
    return _confirm_page(row)


@bp.post("/devices/activate/decision")
def decide_device():
    """Approve (with events and expiry) or Deny the request of a user code."""
    form = _approval_form()
    stored = device_codes.normalize_user_code(form.user_code.data)
    code_form = UserCodeForm(formdata=None, user_code=device_codes.display_user_code(stored) if stored else "")
    if stored is None:
        code_form.user_code.errors = [WRONG_CODE]
        return _code_page(code_form, 400)
    try:  # counted again: a decision names a code as a lookup does
        row = _look_up(stored)
    except (Throttled, LimitsUnavailable) as exc:
        return _refused_lookup(code_form, exc)
    if row is None:
        code_form.user_code.errors = [WRONG_CODE]
        return _code_page(code_form, 400)
    decision = request.form.get("decision")
    try:
        if decision == "deny":
            device_grant.deny(row, current_user, request.remote_addr)
            flash(f"Denied “{row.device_name}”: it gets no token.", "info")
            return redirect(url_for("dashboard.devices"))
        if decision != "approve" or not form.validate():
            return _confirm_page(row, form, 400)
        replaces = None
        if form.replaces.data:
            replaces = get_for_account(ApiToken, current_user.account_id, form.replaces.data)
        device_grant.approve(row, current_user, list(form.events.data), form.expiry(utcnow()), request.remote_addr,
                             replaces=replaces)
    except device_grant.NoLongerPending:
        code_form.user_code.errors = ["This request was decided or expired meanwhile. Ask the device for a new code."]
        return _code_page(code_form, 409)
    except BadPermissions as exc:  # an event deleted since the page was shown
        form.events.errors = [*form.events.errors, str(exc)]
        return _confirm_page(row, form, 400)
    flash(f"Approved “{row.device_name}”: it will sign in within a few seconds.", "success")
    return redirect(url_for("dashboard.devices"))


@bp.get("/settings/devices")
def devices():
    now = utcnow()
    paired = device_grant.paired_devices(current_user.account_id, now)
    wanted = sorted({event_id for token in paired for event_id in token.restricted_to or ()})
    query = account_select(Event, current_user.account_id, Event.id, Event.title).where(Event.id.in_(wanted))
    titles = dict(db.session.execute(query).tuples().all())
    return render_template("dashboard/devices.html", devices=paired, titles=titles, now=now,
                           waiting=device_grant.awaiting_pickup(current_user.account_id, now))


@bp.route("/settings/devices/<row_id:token_id>/unpair", methods=["GET", "POST"])
def unpair_device(token_id: int):
    """Unpair after a confirmation (confirm.js sends ``confirm=yes``; without script, or on
    GET, this page asks)."""
    token = db.session.scalar(account_select(ApiToken, current_user.account_id)
                              .where(ApiToken.id == token_id, ApiToken.device_authorization_id.is_not(None)))
    if token is None:
        abort(404)
    if request.method != "POST" or request.form.get("confirm") != "yes":
        return render_template("dashboard/device_unpair.html", token=token)
    if device_grant.unpair(token, current_user, request.remote_addr):
        flash(f"Unpaired “{token.description}”: its token now gets 401.", "success")
    else:
        flash(f"“{token.description}” was already unpaired.", "info")
    return redirect(url_for("dashboard.devices"))
