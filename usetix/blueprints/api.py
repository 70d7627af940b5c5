"""The JSON API: bearer-token authentication and the V1 read-only endpoints.

Requests reach this blueprint only when they ask for JSON (see ``usetix.routing``). The
``authenticate`` hook runs before routing errors are raised, so it judges every JSON
request that reaches Flask, including those that would end in 404 or 405: a read token's
POST is a 401 whatever the path. (Refusals that need no query are mostly given earlier,
with this module's functions, by ``usetix.credential_gate``.) Views read ``g.api_token``
and never the login session.

What runs on every API request reads Flask's context proxies (``request``, ``g``,
``current_app``) once, through ``_get_current_object()``: each attribute read through a
proxy costs about a microsecond, ten times a plain one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import urlencode

import orjson
import sqlalchemy as sa
from flask import Blueprint, Response, current_app, g, request
from limits import RateLimitItem, parse
from werkzeug.exceptions import HTTPException

from .. import tokens
from ..bearer import parse_authorization
from ..extensions import csrf, db, limiter
from ..models import Account, ApiToken, Attendee, Event, UTCDateTime, account_select, utcnow
from ..pagination import BadParameter, ListQuery, parse_list_query
from ..prepared import PreparedSelect

bp = Blueprint("api", __name__, url_prefix="/admin")
csrf.exempt(bp)  # bearer tokens, never cookies: there is nothing for a forged form to ride on

# The benchmark's unauthenticated twin of GET /admin/events (usetix/benchmark.py); it
# exists only when the BENCH_TWIN_ROUTE setting is on.
BENCH_TWIN_ENDPOINT = "api.bench_twin_events"
# JSON endpoints that need no token (they live in the "meta" blueprint, but for the twin).
PUBLIC_ENDPOINTS = frozenset({"meta.openapi", "meta.healthz", "static", BENCH_TWIN_ENDPOINT})
READ_METHODS = frozenset({"GET", "HEAD"})
# Where the credential gate leaves the digest of the well-formed token it screened.
# (A WSGI server puts a client's headers under HTTP_*; no client can set this key.)
SCREENED_DIGEST = "usetix.screened_digest"
# last_used_at is for auditing, not accounting: one write per token per minute is plenty.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# Naive datetimes are the stored UTC values (see AccountList): OPT_NAIVE_UTC says so.
_JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS | orjson.OPT_NON_STR_KEYS | orjson.OPT_NAIVE_UTC

EVENT_COLUMNS = (Event.id, Event.title, Event.starts_at, Event.ends_at, Event.venue, Event.status,
                 Event.created_at, Event.updated_at)
ATTENDEE_COLUMNS = (Attendee.id, Attendee.event_id, Attendee.name, Attendee.email, Attendee.ticket_type,
                    Attendee.checked_in, Attendee.created_at, Attendee.updated_at)


class TokenGrant(NamedTuple):
    """What the bearer hook learns of a presented token (``g.api_token``)."""

    id: int
    account_id: int
    tier: str
    revoked: bool
    last_used_at: datetime | None  # naive UTC, as stored


# The hot path's statements are built once, here: everything that varies per request is a
# bind parameter, and they run on the driver's cursor (usetix/prepared.py).
_tokens = ApiToken.__table__.c
TOKEN_BY_DIGEST = PreparedSelect(
    sa.select(_tokens.id, _tokens.account_id, _tokens.tier, _tokens.revoked_at.is_not(None),
              sa.type_coerce(_tokens.last_used_at, sa.DateTime))
    .where(_tokens.digest == sa.bindparam("digest"))
)


def _db() -> sa.Connection:
    """This request's database connection (one per request, opened on first use)."""
    request_globals = g._get_current_object()
    connection = request_globals.get("api_connection")
    if connection is None:
        connection = request_globals.api_connection = db.engine.connect()
    return connection


@bp.teardown_app_request
def _close_db(exc: BaseException | None) -> None:
    connection = g._get_current_object().pop("api_connection", None)
    if connection is not None:
        connection.close()  # rolls back whatever was not committed, returns it to the pool


def _json_default(value: Any) -> Any:
    # orjson encodes datetime itself but not subclasses of it (freezegun's, in tests).
    if isinstance(value, datetime):
        if value.tzinfo is None:  # naive means UTC here, as with OPT_NAIVE_UTC
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_response(payload: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(
        orjson.dumps(payload, default=_json_default, option=_JSON_OPTIONS),
        status=status, headers=headers, mimetype="application/json",
    )


def error_response(status: int, error: str, message: str, headers: dict | None = None, **extra: Any) -> Response:
    """Every API error has this shape: ``{"error": code, "message": sentence, ...}``."""
    return json_response({"error": error, "message": message, **extra}, status, headers)


def error_headers(exc: HTTPException) -> dict[str, str]:
    """The headers an HTTPException carries (Allow, Retry-After, ...), less its Content-Type."""
    return {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}


def http_error_response(exc: HTTPException) -> Response:
    """An HTTPException (404, 405, 413, 429, 500, ...) as JSON, keeping its headers (Allow, Retry-After)."""
    headers = error_headers(exc)
    code = (exc.name or "error").lower().replace(" ", "_").replace("'", "")
    return error_response(exc.code or 500, code, exc.description or exc.name, headers)


@lru_cache(maxsize=8)
def _rate_limit(setting: str) -> RateLimitItem:
    return parse(setting)


@lru_cache(maxsize=4096)
def _limit_key(item: RateLimitItem, *key: str) -> str:
    return item.key_for(*key)  # joined from the limit's parts and the key: the same every time


def _count_request(item: RateLimitItem, *key: str) -> tuple[int, str]:
    """Count one request against a fixed-window limit: ``(count in this window, storage key)``.

    With ``_rate_limit_headers``, what limits' ``FixedWindowRateLimiter.hit`` and then
    ``get_window_stats`` tell, from one counter update and one expiry read (two Redis round
    trips, not three; a refusal within its limit needs only the first). The API's limits are
    fixed windows whatever Flask-Limiter's strategy setting, which governs the login form.
    """
    name = _limit_key(item, *key)
    return limiter.limiter.storage.incr(name, item.get_expiry()), name


def _rate_limit_headers(item: RateLimitItem, name: str, count: int) -> dict[str, str]:
    reset_at = limiter.limiter.storage.get_expiry(name)
    return {
        "RateLimit-Limit": str(item.amount),
        "RateLimit-Remaining": str(max(0, item.amount - count)),
        "RateLimit-Reset": str(max(1, round(reset_at - time.time()))),
    }


@dataclass(frozen=True)
class Refusal:
    """Why a request's credentials are turned away: the body's ``error`` and ``message``, and
    the RFC 6750 error code for the challenge (None when no credentials were sent, §3)."""

    error: str
    message: str
    challenge_error: str | None


MISSING_TOKEN = Refusal("missing_token", "Missing token: send Authorization: Bearer <token>.", None)
UNKNOWN_TOKEN = Refusal("invalid_token", "Unknown token.", "invalid_token")
REVOKED_TOKEN = Refusal("revoked_token", "This token has been revoked.", "invalid_token")


def screen_credentials(authorization: str | None) -> str | Refusal:
    """The digest to look up for this ``Authorization`` header, or the refusal it earns
    without one: a missing token, a malformed header, a token of the wrong shape or
    checksum. No query, no Flask (the credential gate calls it before Flask runs)."""
    credential = parse_authorization(authorization)
    if credential.problem == "missing":
        return MISSING_TOKEN
    if credential.problem:
        return Refusal("malformed_token", f"Malformed Authorization header: {credential.detail}", "invalid_request")
    try:
        return tokens.digest(tokens.parse(credential.token))
    except tokens.MalformedToken as exc:
        return Refusal("malformed_token", f"Malformed token: {exc}.", "invalid_request")


def refusal_answer(config: Mapping[str, Any], remote_addr: str | None,
                   refusal: Refusal) -> tuple[int, dict[str, str], dict[str, str]]:
    """``(status, headers, body)`` for a refusal: 401 with an RFC 6750 challenge, or 429
    once this address has failed too often. Every refusal counts against that limit.
    Needs no request context, so the credential gate gives the very same answer."""
    item = _rate_limit(config["API_FAILED_AUTH_LIMIT"])
    count, name = _count_request(item, "api-auth-failures", remote_addr or "")
    if count > item.amount:
        return _too_many_requests(_rate_limit_headers(item, name, count),
                                  "Too many failed authentications from this address; retry later.")
    challenge = 'Bearer realm="Usetix"'
    if refusal.challenge_error:
        challenge += f', error="{refusal.challenge_error}"'
    return 401, {"WWW-Authenticate": challenge}, {"error": refusal.error, "message": refusal.message}


def _too_many_requests(headers: dict[str, str], message: str) -> tuple[int, dict[str, str], dict[str, str]]:
    return 429, {**headers, "Retry-After": headers["RateLimit-Reset"]}, {"error": "rate_limited", "message": message}


def _refuse(refusal: Refusal) -> Response:
    status, headers, body = refusal_answer(current_app.config, request.remote_addr, refusal)
    return json_response(body, status, headers)


@bp.before_app_request
def authenticate() -> Response | None:
    """Resolve the bearer token of a JSON request into ``g.api_token``, or answer 401.

    Refusals that need no query are usually given before Flask runs, by the credential
    gate (usetix/credential_gate.py); this hook still decides every case itself.
    """
    req = request._get_current_object()  # read once: every request passes here
    if not req.wants_json or req.endpoint in PUBLIC_ENDPOINTS:
        return None
    screened = req.environ.get(SCREENED_DIGEST) or screen_credentials(req.headers.get("Authorization"))
    if isinstance(screened, Refusal):
        return _refuse(screened)  # before any database query
    row = TOKEN_BY_DIGEST.first(_db(), {"digest": screened})
    if row is None:
        return _refuse(UNKNOWN_TOKEN)
    token = TokenGrant._make(row)
    if token.revoked:
        return _refuse(REVOKED_TOKEN)
    if token.tier == "read" and req.method not in READ_METHODS:
        return _refuse(Refusal("insufficient_scope",
                               f"A read token allows GET and HEAD only, not {req.method}.", "insufficient_scope"))
    request_globals = g._get_current_object()
    item = _rate_limit(current_app._get_current_object().config["API_RATE_LIMIT"])
    count, name = _count_request(item, "api-token", str(token.id))
    limit_headers = _rate_limit_headers(item, name, count)
    if count > item.amount:  # the 429 carries the headers itself
        status, headers, body = _too_many_requests(limit_headers, "This token has made too many requests; retry later.")
        return json_response(body, status, headers)
    request_globals.rate_limit_headers = limit_headers  # for add_rate_limit_headers, whatever the view answers
    now = utcnow()
    if token.last_used_at is None or now.replace(tzinfo=None) - token.last_used_at >= LAST_USED_RESOLUTION:
        _record_use(token, now)
    request_globals.api_token = token
    return None


@bp.after_app_request
def add_rate_limit_headers(response: Response) -> Response:
    headers = g._get_current_object().get("rate_limit_headers")
    if headers:
        add = response.headers.add  # a third of what extend() costs: it walks a generic multi-item iterator
        for name, value in headers.items():
            add(name, value)
    return response


def _record_use(token: TokenGrant, now: datetime) -> None:
    # Conditional, so concurrent workers write once between them.
    table = ApiToken.__table__
    connection = _db()
    connection.execute(
        sa.update(table)
        .where(table.c.id == token.id,
               sa.or_(table.c.last_used_at.is_(None), table.c.last_used_at <= now - LAST_USED_RESOLUTION))
        .values(last_used_at=now)
    )
    connection.commit()


@bp.errorhandler(BadParameter)
def bad_parameter(exc: BadParameter) -> Response:
    return error_response(400, "invalid_parameter", exc.message, parameter=exc.parameter)


def _not_found() -> Response:
    # The same answer whether the id belongs to another account or to none.
    return error_response(404, "not_found", "No such resource in this account.")


def _page_links(query: ListQuery, total: int) -> str | None:
    """RFC 8288 Link header with rel="prev" / rel="next" for this list.

    Only the list's own parameters are carried over: anything else in the query string is
    the client's and has no say in our links.
    """
    def link(page: int, rel: str) -> str:
        params = {"per_page": query.per_page, "page": page}
        if "updated_since" in request.args:
            params["updated_since"] = request.args["updated_since"]
        return f'<{request.base_url}?{urlencode(params)}>; rel="{rel}"'

    links = []
    if query.page > 1:
        links.append(link(query.page - 1, "prev"))
    if query.offset + query.per_page < total:
        links.append(link(query.page + 1, "next"))
    return ", ".join(links) or None


class AccountList:
    """One list endpoint over an account-owned table, its statements built once.

    A page is one query: the total rides along as a scalar subquery, which SQLite
    evaluates once and PostgreSQL as an InitPlan (a ``count() OVER ()`` window would make
    SQLite sort the rows again in a temporary B-tree). Only a page past the end, with no
    row to carry the total, costs a separate COUNT. The page runs on the driver's cursor
    (usetix/prepared.py). Timestamps are read as the stored naive UTC and encoded with
    ``OPT_NAIVE_UTC``: the same JSON as ``UTCDateTime``'s aware values, without a Python
    call per value.
    """

    def __init__(self, model: Any, columns: Iterable, order_by: Iterable, *criteria: Any):
        table = model.__table__
        columns = [column.property.columns[0] for column in columns]
        self.names = [column.key for column in columns]
        selected = [sa.type_coerce(c, c.type.impl_instance).label(c.key) if isinstance(c.type, UTCDateTime) else c
                    for c in columns]
        order_by = [column.property.columns[0] for column in order_by]
        where = (table.c.account_id == sa.bindparam("account_id"), *criteria)
        self.statements = {}
        for since in (False, True):
            conditions = (*where, table.c.updated_at >= sa.bindparam("updated_since")) if since else where
            count = sa.select(sa.func.count()).select_from(table).where(*conditions)
            page = (sa.select(*selected, count.scalar_subquery()).where(*conditions).order_by(*order_by)
                    .limit(sa.bindparam("limit", type_=sa.Integer)).offset(sa.bindparam("offset", type_=sa.Integer)))
            self.statements[since] = (PreparedSelect(page), count)

    def response(self, account_id: int, **params: Any) -> Response:
        """One page as ``{"data": [...], "meta": {...}}``, with a Link header to its neighbours."""
        query = parse_list_query(request._get_current_object().args)
        page, count = self.statements[query.updated_since is not None]
        params["account_id"] = account_id
        if query.updated_since is not None:
            params["updated_since"] = query.updated_since
        connection = _db()
        rows = page.rows(connection, {**params, "limit": query.per_page, "offset": query.offset})
        if rows:
            total = rows[0][-1]
        elif query.page == 1:
            total = 0
        else:
            total = connection.scalar(count, params)
        names = self.names
        body = {
            "data": [dict(zip(names, row)) for row in rows],  # zip drops the trailing total
            "meta": {"page": query.page, "per_page": query.per_page, "total": total},
        }
        links = _page_links(query, total)
        return json_response(body, headers={"Link": links} if links else None)


EVENTS = AccountList(Event, EVENT_COLUMNS, (Event.starts_at, Event.id))
ATTENDEES = AccountList(Attendee, ATTENDEE_COLUMNS, (Attendee.id,),
                        Attendee.__table__.c.event_id == sa.bindparam("event_id"))


@bp.get("/account")
def account() -> Response:
    token_id = g.api_token.id
    row = _db().execute(
        sa.select(Account.id, Account.name, ApiToken.description, ApiToken.tier, ApiToken.created_at)
        .join(ApiToken, ApiToken.account_id == Account.id)
        .where(ApiToken.id == token_id)
    ).one()
    return json_response({"data": {
        "id": row.id,
        "name": row.name,
        "token": {"id": token_id, "description": row.description, "tier": row.tier, "created_at": row.created_at},
    }})


@bp.get("/events")
def events() -> Response:
    return EVENTS.response(g.api_token.account_id)


@bp.get("/events/<int:event_id>")
def event(event_id: int) -> Response:
    row = _db().execute(
        account_select(Event, g.api_token.account_id, *EVENT_COLUMNS).where(Event.id == event_id)
    ).first()
    if row is None:
        return _not_found()
    return json_response({"data": row._asdict()})


@bp.get("/events/<int:event_id>/attendees")
def attendees(event_id: int) -> Response:
    owned = _db().scalar(account_select(Event, g.api_token.account_id, Event.id).where(Event.id == event_id))
    if owned is None:
        return _not_found()
    return ATTENDEES.response(g.api_token.account_id, event_id=event_id)
