"""Settings → Webhooks: the account's endpoints (add, with the secret's one-time reveal;
rotate the secret, likewise; test, enable, disable, delete), each endpoint's delivery log
(replay a message, recover the failed ones), and the notices of failing endpoints on every
page. What each does is usetix/webhooks/endpoints.py's, shared with the API."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import abort, current_app, flash, g, make_response, redirect, render_template, request, url_for
from flask_login import current_user

from ...core import audit_actions as actions
from ...core.webhooks import DISABLE_AFTER_HOURS, WARN_AFTER_HOURS, RefusedTarget
from ...database.engine import db
from ...database.models import WebhookAttempt, WebhookEndpoint, utcnow
from ...webhooks import endpoints as service
from . import bp
from .admin_audit import record_admin_action
from .api_tokens import REVEAL_SECONDS
from .forms import WebhookEndpointForm, WebhookRecoverForm

LOG_PAGE_SIZE = 50


@bp.before_request
def load_webhook_notices():
    """Endpoints failing for two days (disabled in a day) and those disabled for failing,
    for the notice on every dashboard page."""
    if not current_user.is_authenticated:
        return
    endpoints = WebhookEndpoint.__table__
    warn_before = utcnow() - timedelta(hours=WARN_AFTER_HOURS)
    g.webhook_notices = db.session.execute(
        sa.select(endpoints.c.id, endpoints.c.url, endpoints.c.enabled, endpoints.c.failing_since,
                  endpoints.c.disabled_at)
        .where(endpoints.c.account_id == current_user.account_id,
               sa.or_(sa.and_(endpoints.c.enabled.is_(True), endpoints.c.failing_since <= warn_before),
                      sa.and_(endpoints.c.enabled.is_(False), endpoints.c.disabled_reason == "failing")))
        .order_by(endpoints.c.id)).all()


@bp.app_template_global()
def webhook_disabled_at(failing_since):
    return failing_since + timedelta(hours=DISABLE_AFTER_HOURS)


def _connection() -> sa.Connection:
    return db.session.connection()


def _endpoint_or_404(endpoint_id: int) -> dict:
    endpoint = service.get_endpoint(_connection(), current_user.account_id, endpoint_id)
    if endpoint is None:
        abort(404)  # the same whether it is another account's or nobody's
    return endpoint


def _list_page(form: WebhookEndpointForm, status: int = 200):
    endpoints = service.list_endpoints(_connection(), current_user.account_id)
    return render_template("dashboard/webhooks.html", endpoints=endpoints, form=form), status


def _reveal(endpoint: dict, secret: str, heading: str):
    # The answer to the POST, so the secret is never kept anywhere to survive a redirect;
    # no-store keeps it out of caches and history (as a new token's reveal).
    response = make_response(render_template("dashboard/webhook_secret.html", endpoint=endpoint, secret=secret,
                                             heading=heading, seconds=REVEAL_SECONDS))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/settings/webhooks")
def webhooks():
    return _list_page(WebhookEndpointForm())


@bp.post("/settings/webhooks")
def create_webhook():
    form = WebhookEndpointForm()
    if not form.validate():
        return _list_page(form, 400)
    try:
        endpoint, secret = service.create_endpoint(
            _connection(), current_user.account_id, form.url.data, list(form.events.data), form.description.data or "",
            bool(current_app.config["WEBHOOKS_ALLOW_PRIVATE_TARGETS"]))
    except RefusedTarget as refused:
        db.session.rollback()
        form.url.errors = [*form.url.errors, str(refused)]
        return _list_page(form, 400)
    record_admin_action(actions.WEBHOOK_CREATED, "webhook", endpoint["id"], endpoint["url"])
    db.session.commit()
    return _reveal(endpoint, secret, "Copy the signing secret of your new endpoint now")


@bp.post("/settings/webhooks/<row_id:endpoint_id>/rotate_secret")
def rotate_webhook_secret(endpoint_id: int):
    endpoint = _endpoint_or_404(endpoint_id)
    secret, _ = service.rotate_secret(_connection(), current_user.account_id, endpoint_id)
    record_admin_action(actions.WEBHOOK_SECRET_ROTATED, "webhook", endpoint_id, endpoint["url"])
    db.session.commit()
    return _reveal(endpoint, secret, "Copy the new signing secret now (the previous one signs too for 24 hours)")


@bp.post("/settings/webhooks/<row_id:endpoint_id>/test")
def test_webhook(endpoint_id: int):
    endpoint = _endpoint_or_404(endpoint_id)
    message_id = service.send_test(_connection(), current_user.account_id, endpoint_id)
    db.session.commit()
    flash(f"A webhook.test message ({message_id}) is on its way to {endpoint['url']}.", "success")
    return redirect(url_for("dashboard.webhook_deliveries", endpoint_id=endpoint_id))


@bp.post("/settings/webhooks/<row_id:endpoint_id>/enabled")
def set_webhook_enabled(endpoint_id: int):
    endpoint = _endpoint_or_404(endpoint_id)
    enabled = request.form.get("enabled") == "yes"
    service.update_endpoint(_connection(), current_user.account_id, endpoint_id, {"enabled": enabled},
                            bool(current_app.config["WEBHOOKS_ALLOW_PRIVATE_TARGETS"]))
    record_admin_action(actions.WEBHOOK_UPDATED, "webhook", endpoint_id, endpoint["url"])
    db.session.commit()
    flash(f"{endpoint['url']} is {'enabled' if enabled else 'disabled'}.", "success")
    return redirect(url_for("dashboard.webhooks"))


@bp.route("/settings/webhooks/<row_id:endpoint_id>/delete", methods=["GET", "POST"])
def delete_webhook(endpoint_id: int):
    """Delete after a confirmation: the page's script asks and sends ``confirm=yes``;
    without script (or on GET) this page asks instead."""
    endpoint = _endpoint_or_404(endpoint_id)
    if request.method != "POST" or request.form.get("confirm") != "yes":
        return render_template("dashboard/webhook_delete.html", endpoint=endpoint)
    service.delete_endpoint(_connection(), current_user.account_id, endpoint_id)
    record_admin_action(actions.WEBHOOK_DELETED, "webhook", endpoint_id, endpoint["url"])
    db.session.commit()
    flash(f"Endpoint {endpoint['url']} was deleted: nothing more is sent to it.", "success")
    return redirect(url_for("dashboard.webhooks"))


@bp.get("/settings/webhooks/<row_id:endpoint_id>/deliveries")
def webhook_deliveries(endpoint_id: int):
    endpoint = _endpoint_or_404(endpoint_id)
    failed_only = request.args.get("status") == "failed"
    query = (sa.select(WebhookAttempt).where(WebhookAttempt.account_id == current_user.account_id,
                                             WebhookAttempt.endpoint_id == endpoint_id)
             .order_by(WebhookAttempt.id.desc()).limit(LOG_PAGE_SIZE))
    if failed_only:
        query = query.where(WebhookAttempt.succeeded.is_(False))
    attempts = db.session.scalars(query).all()
    return render_template("dashboard/webhook_deliveries.html", endpoint=endpoint, attempts=attempts,
                           failed_only=failed_only, recover_form=WebhookRecoverForm(), page_size=LOG_PAGE_SIZE)


@bp.post("/settings/webhooks/<row_id:endpoint_id>/deliveries/<message_id>/replay")
def replay_webhook_message(endpoint_id: int, message_id: str):
    _endpoint_or_404(endpoint_id)
    if not service.replay(_connection(), current_user.account_id, endpoint_id, message_id[:40]):
        abort(404)
    db.session.commit()
    flash(f"Message {message_id} is queued again.", "success")
    return redirect(url_for("dashboard.webhook_deliveries", endpoint_id=endpoint_id))


@bp.post("/settings/webhooks/<row_id:endpoint_id>/recover")
def recover_webhook(endpoint_id: int):
    _endpoint_or_404(endpoint_id)
    form = WebhookRecoverForm()
    if not form.validate():
        flash(" ".join(form.since.errors), "error")
        return redirect(url_for("dashboard.webhook_deliveries", endpoint_id=endpoint_id))
    requeued = service.recover(_connection(), current_user.account_id, endpoint_id, form.since_at)
    db.session.commit()
    flash(f"{requeued} failed message{'s' if requeued != 1 else ''} queued again.", "success")
    return redirect(url_for("dashboard.webhook_deliveries", endpoint_id=endpoint_id))
