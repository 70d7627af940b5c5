"""Pairing scanners with the OAuth 2.0 device authorization grant (RFC 8628), on Authlib.

The device asks for a code (``POST /oauth/device_authorization``: Authlib's
DeviceAuthorizationEndpoint), an admin approves or denies its user code in the dashboard
(:func:`approve`, :func:`deny`), the device polls ``POST /oauth/token`` (Authlib's
DeviceCodeGrant answers every §3.5 error) and gets, once, an ordinary Usetix token
(``utx_...``, stored as its digest) with the check-in-only preset, limited to the events
the admin chose, issued by the token service with its audit record. ``POST /oauth/revoke``
(Authlib's RevocationEndpoint, RFC 7009) lets a device sign itself out.

Authlib is used through its documented extension points: the hooks its classes ask a
subclass to write (``query_device_credential``, ``query_user_grant``, ``should_slow_down``,
``save_device_credential``, ``query_token``, ``revoke_token``), a token generator
registered for the grant type, and a client authentication method. Our own: the device
code is stored hashed; a spent or unknown code is ``invalid_grant``; an unknown client is
``401 invalid_client`` (RFC 6749 §5.2).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import sqlalchemy as sa
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, InvalidClientError, InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE, DeviceAuthorizationEndpoint, DeviceCodeGrant
from flask import current_app, request

from ..core import audit_actions as actions
from ..core import device_codes, token_format
from ..core.permissions import CHECK_IN_PRESET, BadPermissions, store_event_ids
from ..database.engine import db
from ..database.models import Admin, ApiToken, AuditEvent, DeviceAuthorization, Event, utcnow
from .token_service import find_by_value, issue_token, revoke_token

# What a paired device may do: the check-in-only preset's scopes (usetix/core/permissions.py).
DEVICE_SCOPE = " ".join(sorted(CHECK_IN_PRESET.scopes))


class NoLongerPending(Exception):
    """The request was approved, denied or expired meanwhile: nothing was changed."""


def device_code_digest(device_code: str) -> str:
    return hashlib.sha256(device_code.encode("utf-8", "surrogatepass")).hexdigest()


def device_actor(row: DeviceAuthorization) -> str:
    """Who the audit log says acted when the device did (asked, signed out)."""
    return f"device: {row.device_name}"


# -- the dashboard's side: find a request by its user code, approve or deny it ---------------

def pending_by_user_code(user_code: str, now: datetime) -> DeviceAuthorization | None:
    """The live pending request with this user code (stored form), or None."""
    return db.session.scalar(sa.select(DeviceAuthorization).where(
        DeviceAuthorization.user_code == user_code, DeviceAuthorization.expires_at > now,
        DeviceAuthorization.status == "pending"))


def _audit(action: str, row: DeviceAuthorization, actor: str, admin_id: int | None, client_address: str | None,
           created_at: datetime | None = None) -> None:
    db.session.add(AuditEvent(
        account_id=row.account_id, admin_id=admin_id, actor=actor, action=action,
        token_event_ids=row.event_ids, client_address=client_address,
        object_type="device", object_id=row.id, object_label=row.device_name,
        token_permissions=CHECK_IN_PRESET.summary if action == actions.DEVICE_APPROVED else None,
        created_at=created_at or utcnow(),
    ))


def _decide(row: DeviceAuthorization, admin: Admin, status: str, values: dict, client_address: str | None) -> None:
    """Move ``row`` from pending to ``status`` for the admin's account, with the records of
    its request and of the decision; raises NoLongerPending if another decision (or the
    clock) came first. A conditional UPDATE: two admins deciding at once make one decision."""
    now = utcnow()
    changed = db.session.execute(
        sa.update(DeviceAuthorization)
        .where(DeviceAuthorization.id == row.id, DeviceAuthorization.status == "pending",
               DeviceAuthorization.expires_at > now)
        .values(status=status, account_id=admin.account_id, decided_by_id=admin.id, decided_at=now, **values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not changed:
        db.session.rollback()
        raise NoLongerPending
    db.session.refresh(row)
    # The request joins the account's log once an admin of it has seen it; at the time it was made.
    _audit(actions.DEVICE_REQUESTED, row, device_actor(row), None, row.requested_from, row.requested_at)
    _audit(actions.DEVICE_APPROVED if status == "approved" else actions.DEVICE_DENIED, row, admin.email, admin.id,
           client_address)
    db.session.commit()


def approve(row: DeviceAuthorization, admin: Admin, event_ids: list[int], token_expires_at: datetime | None,
            client_address: str | None, replaces: ApiToken | None = None) -> None:
    """Approve the pending request: its device will get a check-in-only token for
    ``event_ids`` (at least one, of the admin's account), expiring at ``token_expires_at``
    (None: never). ``replaces``: a device token of the account that is unpaired (revoked)
    at once. Raises BadPermissions or NoLongerPending (nothing changed)."""
    stored = store_event_ids(event_ids)
    owned = set(db.session.scalars(sa.select(Event.id).where(Event.account_id == admin.account_id,
                                                             Event.id.in_(sorted(set(event_ids))))))
    if owned != set(event_ids):
        raise BadPermissions("A device can only be given events of your account.")
    if replaces is not None and (replaces.account_id != admin.account_id or replaces.device_authorization_id is None):
        raise BadPermissions("Only a device of your account can be replaced.")
    _decide(row, admin, "approved", {"event_ids": stored, "token_expires_at": token_expires_at}, client_address)
    if replaces is not None:
        revoke_token(replaces, admin.email, admin.id, client_address, action=actions.DEVICE_UNPAIRED)


def deny(row: DeviceAuthorization, admin: Admin, client_address: str | None) -> None:
    """Deny the pending request: its device's next poll is ``access_denied``."""
    _decide(row, admin, "denied", {}, client_address)


def paired_devices(account_id: int, now: datetime) -> list[ApiToken]:
    """The account's live device tokens (one per paired device), newest first."""
    return list(db.session.scalars(
        sa.select(ApiToken)
        .where(ApiToken.account_id == account_id, ApiToken.device_authorization_id.is_not(None),
               ApiToken.revoked_at.is_(None), sa.or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now))
        .options(sa.orm.selectinload(ApiToken.created_by), sa.orm.selectinload(ApiToken.device_authorization))
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    ))


def awaiting_pickup(account_id: int, now: datetime) -> list[DeviceAuthorization]:
    """The account's approved requests whose device has not fetched its token yet (it has
    until the code expires), newest first."""
    return list(db.session.scalars(
        sa.select(DeviceAuthorization)
        .where(DeviceAuthorization.account_id == account_id, DeviceAuthorization.status == "approved",
               DeviceAuthorization.expires_at > now)
        .options(sa.orm.selectinload(DeviceAuthorization.decided_by))
        .order_by(DeviceAuthorization.decided_at.desc(), DeviceAuthorization.id.desc())
    ))


def purge_expired_requests(now: datetime) -> int:
    """Delete the requests whose code expired without giving a token (never decided,
    denied, or approved and never fetched); a request that gave a token stays, as its
    token's link to its device. The audit log keeps its records of them."""
    purged = db.session.execute(sa.delete(DeviceAuthorization).where(DeviceAuthorization.expires_at <= now,
                                                                      DeviceAuthorization.status != "issued")).rowcount
    db.session.commit()
    return purged


def unpair(token: ApiToken, admin: Admin, client_address: str | None) -> bool:
    """Revoke a device's token from Settings → Devices; False if it already was."""
    return revoke_token(token, admin.email, admin.id, client_address, action=actions.DEVICE_UNPAIRED)


# -- the device's side: Authlib's endpoints, with our storage ------------------------------

class ScannerClient(ClientMixin):
    """The one client: Usetix's scanner app, a public client (RFC 6749 §2.1: no secret)."""

    def get_client_id(self) -> str:
        return device_codes.CLIENT_ID

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        return DEVICE_SCOPE

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == DEVICE_CODE_GRANT_TYPE


SCANNER = ScannerClient()


def query_client(client_id: str | None) -> ScannerClient | None:
    return SCANNER if client_id == device_codes.CLIENT_ID else None


def authenticate_public_client(query, oauth_request) -> ScannerClient:
    """Client authentication ``none``: the client_id alone. An unknown or missing one is
    401 invalid_client (RFC 6749 §5.2), whatever the endpoint."""
    client = query(oauth_request.payload.client_id)
    if client is None:
        raise InvalidClientError(status_code=401, description="Unknown client_id: this server knows usetix-scanner.")
    return client


class DeviceCredential:
    """A stored request, as Authlib's DeviceCodeGrant reads it (DeviceCredentialMixin)."""

    def __init__(self, row: DeviceAuthorization) -> None:
        self.row = row

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_scope(self) -> str:
        return DEVICE_SCOPE

    def get_user_code(self) -> str:
        return self.row.user_code

    def is_expired(self) -> bool:
        return self.row.expired(utcnow())


class ScannerDeviceAuthorization(DeviceAuthorizationEndpoint):
    EXPIRES_IN = device_codes.EXPIRES_IN
    INTERVAL = device_codes.INTERVAL
    CLIENT_AUTH_METHODS = ["none"]

    def generate_user_code(self) -> str:
        # Authlib's codes are ours (8 of BCDFGHJKLMNPQRSTVWXZ as XXXX-XXXX); one that a live
        # request holds is drawn again, so a user code finds one request.
        while True:
            code = super().generate_user_code()
            stored = code.replace("-", "")
            if not db.session.scalar(sa.select(DeviceAuthorization.id).where(
                    DeviceAuthorization.user_code == stored, DeviceAuthorization.expires_at > utcnow())):
                return code

    def get_verification_uri(self) -> str:
        # The configured public URL, never the Host header (which a client chooses).
        base = (current_app.config.get("PUBLIC_URL") or "").rstrip("/")
        return base + device_codes.ACTIVATE_PATH

    def save_device_credential(self, client_id: str, scope: str | None, data: dict) -> None:
        now = utcnow()
        db.session.add(DeviceAuthorization(
            device_code_digest=device_code_digest(data["device_code"]),
            user_code=data["user_code"].replace("-", ""),
            client_id=client_id, scope=scope,
            device_name=request.form.get("device_name", "").strip() or device_codes.DEFAULT_DEVICE_NAME,
            requested_from=request.remote_addr, requested_at=now,
            expires_at=now + timedelta(seconds=data["expires_in"]), interval=data["interval"],
        ))
        db.session.commit()


class ScannerDeviceCodeGrant(DeviceCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]

    def query_device_credential(self, device_code: str) -> DeviceCredential:
        row = db.session.scalar(sa.select(DeviceAuthorization).where(
            DeviceAuthorization.device_code_digest == device_code_digest(device_code)))
        if row is None or row.status == "issued":  # a code is good for one token
            raise InvalidGrantError("This device_code is unknown or was already exchanged for a token.")
        return DeviceCredential(row)

    def query_user_grant(self, user_code: str) -> tuple[DeviceAuthorization | None, bool] | None:
        # Asked once the credential is known not to be expired: its user code is then unique.
        row = db.session.scalar(sa.select(DeviceAuthorization).where(
            DeviceAuthorization.user_code == user_code, DeviceAuthorization.expires_at > utcnow()))
        if row is None or row.status == "pending":
            return None
        if row.status == "denied":
            return None, False
        return row, True

    def should_slow_down(self, credential: DeviceCredential) -> bool:
        row = credential.row
        now = utcnow()
        too_soon = row.last_polled_at is not None and now < row.last_polled_at + timedelta(seconds=row.interval)
        values = {"last_polled_at": now}
        if too_soon:
            values["interval"] = DeviceAuthorization.interval + device_codes.SLOW_DOWN_STEP
        db.session.execute(sa.update(DeviceAuthorization).where(DeviceAuthorization.id == row.id).values(**values)
                           .execution_options(synchronize_session=False))
        db.session.commit()
        return too_soon


def issue_device_token(grant_type: str, client: ScannerClient, user: DeviceAuthorization, scope: str | None,
                       expires_in: int | None, include_refresh_token: bool) -> dict:
    """The token generator of the device grant: the approved request's token, issued once.

    The request goes from approved to issued in the token's own transaction, by a
    conditional UPDATE: two polls racing with the same device code get one token."""
    row = user
    spent = db.session.execute(
        sa.update(DeviceAuthorization)
        .where(DeviceAuthorization.id == row.id, DeviceAuthorization.status == "approved")
        .values(status="issued")
        .execution_options(synchronize_session=False)
    ).rowcount
    if not spent:
        db.session.rollback()
        raise InvalidGrantError("This device_code was already exchanged for a token.")
    try:
        token, raw = issue_token(row.decided_by, row.device_name, "check_in", request.remote_addr,
                                 expires_at=row.token_expires_at, event_ids=row.restricted_to, device=row)
    except BadPermissions:  # an approved event was deleted since: nothing was issued
        db.session.rollback()
        raise InvalidGrantError("An event this device was approved for no longer exists; pair it again.") from None
    answer = {"access_token": raw, "token_type": "Bearer", "scope": DEVICE_SCOPE}
    if token.expires_at is not None:
        answer["expires_in"] = max(0, int((token.expires_at - utcnow()).total_seconds()))
    return answer


class DeviceToken:
    """A device's own token, as Authlib's RevocationEndpoint reads it (TokenMixin)."""

    def __init__(self, token: ApiToken) -> None:
        self.token = token

    def check_client(self, client: ScannerClient) -> bool:
        return True


class DeviceSignOut(RevocationEndpoint):
    """RFC 7009: always 200; a live device token sent is revoked ("signed out")."""

    CLIENT_AUTH_METHODS = ["none"]

    def check_params(self, oauth_request, client) -> None:
        # RFC 7009 §2.1: a hint the server does not know is only a hint; every token is searched.
        if "token" not in oauth_request.form:
            raise InvalidRequestError("token is required.")

    def query_token(self, token_string: str, token_type_hint: str | None) -> DeviceToken | None:
        try:
            token = find_by_value(token_string)
        except token_format.MalformedToken:
            return None
        # Only a paired device's token: another token sent here is left as it is.
        if token is None or token.device_authorization_id is None or not token.live(utcnow()):
            return None
        return DeviceToken(token)

    def revoke_token(self, token: DeviceToken, oauth_request) -> None:
        device = token.token.device_authorization
        revoke_token(token.token, device_actor(device), None, request.remote_addr, action=actions.DEVICE_SIGNED_OUT)


def configure(server: AuthorizationServer) -> AuthorizationServer:
    """Register the device grant's endpoints, grant, generator and client on ``server``."""
    server.scopes_supported = sorted(CHECK_IN_PRESET.scopes)
    server.register_client_auth_method("none", authenticate_public_client)
    server.register_endpoint(ScannerDeviceAuthorization)
    server.register_endpoint(DeviceSignOut)
    server.register_grant(ScannerDeviceCodeGrant)
    server.register_token_generator(DEVICE_CODE_GRANT_TYPE, issue_device_token)
    return server


def no_token_to_save(token: dict, oauth_request) -> None:
    """Authlib's save_token: the generator has stored the token already (as its digest)."""
