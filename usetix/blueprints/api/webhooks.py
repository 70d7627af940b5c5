"""The account's webhook endpoints (issue 25): list, create (the secret shown this once),
read, change, delete, rotate the secret, send a test; each endpoint's delivery log,
replaying one message and recovering the failed ones. What they do is in
usetix/webhooks/endpoints.py, shared with the dashboard; delivery is the workers'."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Response, current_app, request, url_for

from ...api_contract import bodies as schemas
from ...core import audit_actions as actions
from ...core.list_query import BadParameter
from ...core.permissions import requires
from ...core.webhooks import RefusedTarget
from ...database.connection import request_connection
from ...database.models import WebhookAttempt, WebhookEndpoint
from ...web.responses import json_response, not_found
from ...webhooks import endpoints as service
from .audit import audit
from .authentication import token_ids
from .blueprint import bp
from .pagination import AccountList
from .refused import Refused
from .request_body import invalid_body
from .transaction import write_view

DELIVERY_FIELDS = tuple(schemas.WebhookDelivery.model_fields)
_delivery_columns = [getattr(WebhookAttempt, name) for name in DELIVERY_FIELDS]
_of_endpoint = WebhookAttempt.endpoint_id == sa.bindparam("endpoint_id")
DELIVERIES = AccountList("webhook_deliveries", WebhookAttempt, _delivery_columns, (WebhookAttempt.id,), _of_endpoint,
                         scope="endpoint_id")
FAILED_DELIVERIES = AccountList("webhook_failed_deliveries", WebhookAttempt, _delivery_columns, (WebhookAttempt.id,),
                                _of_endpoint, WebhookAttempt.succeeded.is_(False), scope="endpoint_id",
                                carried=("status",))


def _allow_private() -> bool:
    return bool(current_app.config["WEBHOOKS_ALLOW_PRIVATE_TARGETS"])


def _refused_url(refused: RefusedTarget) -> Refused:
    return Refused(invalid_body([{"field": "url", "code": "refused_url", "message": str(refused)}]))


@bp.get("/webhooks")
@requires("webhooks:read")
def webhooks() -> Response:
    account_id, _ = token_ids()
    return json_response({"data": service.list_endpoints(request_connection(), account_id)})


@bp.post("/webhooks")
@requires("webhooks:write")
@write_view(schemas.WebhookEndpointCreate)
def create_webhook(body: schemas.WebhookEndpointCreate) -> Response:
    account_id, _ = token_ids()
    connection = request_connection()
    try:
        endpoint, secret = service.create_endpoint(connection, account_id, body.url, list(body.events),
                                                   body.description, _allow_private())
    except RefusedTarget as refused:
        raise _refused_url(refused) from None
    audit(connection, actions.WEBHOOK_CREATED, "webhook", endpoint["id"], endpoint["url"])
    return json_response({"data": {**endpoint, "secret": secret}}, 201,
                         {"Location": url_for("api.webhook", endpoint_id=endpoint["id"])})


@bp.get("/webhooks/<row_id:endpoint_id>")
@requires("webhooks:read")
def webhook(endpoint_id: int) -> Response:
    account_id, _ = token_ids()
    endpoint = service.get_endpoint(request_connection(), account_id, endpoint_id)
    return not_found() if endpoint is None else json_response({"data": endpoint})


@bp.patch("/webhooks/<row_id:endpoint_id>")
@requires("webhooks:write")
@write_view(schemas.WebhookEndpointPatch, merge_patch=True)
def update_webhook(endpoint_id: int, body: schemas.WebhookEndpointPatch) -> Response:
    account_id, _ = token_ids()
    connection = request_connection()
    try:
        endpoint = service.update_endpoint(connection, account_id, endpoint_id, body.model_dump(exclude_unset=True),
                                           _allow_private())
    except RefusedTarget as refused:
        raise _refused_url(refused) from None
    if endpoint is None:
        return not_found()
    audit(connection, actions.WEBHOOK_UPDATED, "webhook", endpoint_id, endpoint["url"])
    return json_response({"data": endpoint})


@bp.delete("/webhooks/<row_id:endpoint_id>")
@requires("webhooks:write")
@write_view()
def delete_webhook(endpoint_id: int) -> Response:
    account_id, _ = token_ids()
    connection = request_connection()
    endpoint = service.delete_endpoint(connection, account_id, endpoint_id)
    if endpoint is None:
        return not_found()
    audit(connection, actions.WEBHOOK_DELETED, "webhook", endpoint_id, endpoint["url"])
    return Response(status=204)


@bp.post("/webhooks/<row_id:endpoint_id>/rotate_secret")
@requires("webhooks:write")
@write_view()
def rotate_webhook_secret(endpoint_id: int) -> Response:
    account_id, _ = token_ids()
    connection = request_connection()
    rotated = service.rotate_secret(connection, account_id, endpoint_id)
    if rotated is None:
        return not_found()
    audit(connection, actions.WEBHOOK_SECRET_ROTATED, "webhook", endpoint_id, f"endpoint {endpoint_id}")
    secret, previous_expires = rotated
    return json_response({"data": {"secret": secret, "previous_secret_expires_at": previous_expires}})


@bp.post("/webhooks/<row_id:endpoint_id>/test")
@requires("webhooks:write")
@write_view()
def test_webhook(endpoint_id: int) -> Response:
    account_id, _ = token_ids()
    message_id = service.send_test(request_connection(), account_id, endpoint_id)
    return not_found() if message_id is None else json_response({"data": {"message_id": message_id}}, 202)


def _owned_endpoint(account_id: int, endpoint_id: int) -> bool:
    table = WebhookEndpoint.__table__
    return request_connection().scalar(sa.select(table.c.id).where(
        table.c.id == endpoint_id, table.c.account_id == account_id)) is not None


@bp.get("/webhooks/<row_id:endpoint_id>/deliveries")
@requires("webhooks:read")
def webhook_deliveries(endpoint_id: int) -> Response:
    account_id, _ = token_ids()
    status = request.args.get("status")
    if status not in (None, "failed"):
        raise BadParameter("status", "status takes one value: failed (every attempt without it).")
    if "updated_since" in request.args or "include_deleted" in request.args:
        raise BadParameter("updated_since" if "updated_since" in request.args else "include_deleted",
                           "The delivery log is not synced: page through it with its links.")
    if not _owned_endpoint(account_id, endpoint_id):
        return not_found()
    listed = FAILED_DELIVERIES if status == "failed" else DELIVERIES
    return listed.response(account_id, endpoint_id=endpoint_id)


@bp.post("/webhooks/<row_id:endpoint_id>/deliveries/<message_id>/replay")
@requires("webhooks:write")
@write_view()
def replay_webhook_message(endpoint_id: int, message_id: str) -> Response:
    account_id, _ = token_ids()
    if not service.replay(request_connection(), account_id, endpoint_id, message_id[:40]):
        return not_found()
    return json_response({"data": {"message_id": message_id}}, 202)


@bp.post("/webhooks/<row_id:endpoint_id>/recover")
@requires("webhooks:write")
@write_view(schemas.WebhookRecover)
def recover_webhook(endpoint_id: int, body: schemas.WebhookRecover) -> Response:
    account_id, _ = token_ids()
    if not _owned_endpoint(account_id, endpoint_id):
        return not_found()
    requeued = service.recover(request_connection(), account_id, endpoint_id, body.since)
    return json_response({"data": {"requeued": requeued}}, 202)
