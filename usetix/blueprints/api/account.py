"""``GET /admin/account``: the token's account and the token itself, with its permissions
and event restriction."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Response, g

from ...core.permissions import listed_event_ids, requires
from ...database.connection import request_connection
from ...database.models import Account, ApiToken
from ...web.responses import json_response
from .blueprint import bp


@bp.get("/account")
@requires(None)  # any token: a script checks its token here first
def account() -> Response:
    token = g.principal.token
    token_id = token.id
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
                  "expires_at": row.expires_at,
                  # As the token's lookup read them for this request: fixed since its creation.
                  "permissions": {"events": token.events_permission, "attendees": token.attendees_permission,
                                  "check_in": token.check_in_permission, "webhooks": token.webhooks_permission},
                  "events": listed_event_ids(token.event_ids)},
    }})
