"""The API's lists and account endpoint (single objects, with ETags, are in ``writes.py``).
Each reads its account from ``g.principal``."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Response, g

from ...core.list_query import BadParameter
from ...database.connection import request_connection
from ...database.models import Account, ApiToken, Event, account_select
from ...web.responses import error_response, json_response, not_found
from . import bp
from .lists import ATTENDEES, EVENTS


@bp.errorhandler(BadParameter)
def bad_parameter(exc: BadParameter) -> Response:
    return error_response(400, "invalid_parameter", exc.message, parameter=exc.parameter)


@bp.get("/account")
def account() -> Response:
    token_id = g.principal.token.id
    row = request_connection().execute(
        sa.select(Account.id, Account.name, ApiToken.description, ApiToken.tier, ApiToken.created_at,
                  ApiToken.expires_at)
        .join(ApiToken, ApiToken.account_id == Account.id)
        .where(ApiToken.id == token_id)
    ).one()
    return json_response({"data": {
        "id": row.id,
        "name": row.name,
        "token": {"id": token_id, "description": row.description, "tier": row.tier, "created_at": row.created_at,
                  "expires_at": row.expires_at},
    }})


@bp.get("/events")
def events() -> Response:
    return EVENTS.response(g.principal.account_id)


@bp.get("/events/<int:event_id>/attendees")
def attendees(event_id: int) -> Response:
    account_id = g.principal.account_id
    owned = request_connection().scalar(account_select(Event, account_id, Event.id).where(Event.id == event_id))
    if owned is None:
        return not_found()
    return ATTENDEES.response(account_id, event_id=event_id)
