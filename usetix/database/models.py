"""Every model of Usetix, in typed SQLAlchemy 2 style.

Account-owned rows carry an indexed ``account_id``; read them through
:func:`account_select` / :func:`get_for_account` so the account filter cannot be forgotten.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..core import permissions as token_permissions
from ..core import ticket_codes
from .engine import db


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator):
    """Stores naive UTC, hands back aware UTC, on SQLite (which keeps no offset) and
    PostgreSQL alike, so every timestamp the app sees has an explicit offset."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class UTCWholeSecond(UTCDateTime):
    """A UTCDateTime stored to the whole second, whatever the value given: a token's expiry,
    which its header, its error message and its check must all state as the same second."""

    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        stored = super().process_bind_param(value, dialect)
        return None if stored is None else stored.replace(microsecond=0)


# Ids that reach a client or a tombstone are never given twice: SQLite's AUTOINCREMENT
# (PostgreSQL's sequences never go back anyway). Without it SQLite hands the highest
# deleted id out again, and a sync would drop the new object as the deleted one.
NEVER_REUSED_IDS = {"sqlite_autoincrement": True}


class Account(db.Model):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Admin(db.Model):
    """A dashboard user. What Flask-Login asks of a user (``is_authenticated``, ``get_id`` ...)
    is given in the auth layer (usetix/auth/admins.py), beside the login manager."""

    __tablename__ = "admins"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"), index=True)
    # Stored lower-cased (see normalize_email), so the unique index is case-insensitive.
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Leak reports on the account's tokens after this moment show as a dashboard notice
    # until this admin dismisses them (None: since the admin was created).
    leak_notices_dismissed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Logins for this email the throttle refused since the admin last dismissed their notice,
    # and the last one (usetix/auth/throttle_notices.py).
    throttled_logins: Mapped[int] = mapped_column(default=0, server_default="0")
    last_throttled_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    account: Mapped[Account] = relationship()

    # What Flask-Login asks of a user object (its UserMixin's protocol), written out so that
    # the database layer imports no Flask-Login (setup.cfg's contract).
    is_active = True
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)

    @staticmethod
    def normalize_email(email: str) -> str:
        return email.strip().lower()


class Event(db.Model):
    __tablename__ = "events"
    __table_args__ = (
        sa.CheckConstraint("status IN ('draft', 'published', 'cancelled')", name="status"),
        # The list's order and the order of change (cursor pages, sync walks). Each leads with
        # account_id, so it also serves every per-account lookup.
        sa.Index("ix_events_account_starts", "account_id", "starts_at", "id"),
        sa.Index("ix_events_account_updated", "account_id", "updated_at", "id"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"))
    title: Mapped[str] = mapped_column(sa.String(200))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    venue: Mapped[str] = mapped_column(sa.String(200))
    status: Mapped[str] = mapped_column(sa.String(20), default="draft")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Bumped by every API write: the strong ETag, and the guard of a conditional UPDATE.
    version: Mapped[int] = mapped_column(default=1, server_default="1")


class Attendee(db.Model):
    __tablename__ = "attendees"
    __table_args__ = (
        # An event's list in its order and in the order of change (cursor pages, sync walks).
        sa.Index("ix_attendees_event_id_id", "event_id", "id"),
        sa.Index("ix_attendees_event_updated", "event_id", "updated_at", "id"),
        # The door's lookup by code; unique in the account (usetix/core/ticket_codes.py).
        sa.UniqueConstraint("account_id", "ticket_code", name="uq_attendees_account_ticket_code"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Not indexed alone: an attendee is always reached through its event, and an index on
    # the account made SQLite read all of the account's attendees for one event's list.
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"))
    event_id: Mapped[int] = mapped_column(sa.ForeignKey("events.id"))
    name: Mapped[str] = mapped_column(sa.String(200))
    email: Mapped[str] = mapped_column(sa.String(254))
    ticket_type: Mapped[str] = mapped_column(sa.String(50))
    checked_in: Mapped[bool] = mapped_column(default=False)
    # Set with checked_in (kept for the existing readers); None when not checked in.
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    # What the door scans (a secret of the attendee's: never logged, only shown to a token
    # that may read attendees). A reissue moves the old one to ReissuedTicketCode.
    ticket_code: Mapped[str] = mapped_column(sa.String(ticket_codes.LENGTH), default=ticket_codes.new_code)


class ReissuedTicketCode(db.Model):
    """A code an attendee had before a reissue: the door refuses it as ``ticket_reissued``
    (not as unknown), so the volunteer knows the ticket was replaced."""

    __tablename__ = "reissued_ticket_codes"
    __table_args__ = (sa.UniqueConstraint("account_id", "code", name="uq_reissued_ticket_codes_account_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"))
    # No foreign key: the attendee may be deleted, the code stays refused.
    attendee_id: Mapped[int]
    code: Mapped[str] = mapped_column(sa.String(ticket_codes.LENGTH))
    reissued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Scan(db.Model):
    """Every scan at an event's door, admitted or refused, online or from an offline batch.

    Only the code's last characters are kept (``code_tail``); ``code_digest`` (SHA-256 of the
    normalized code) tells whether a nonce sent again carries the same code. ``nonce`` is the
    batch scan's nonce or the redeem's Idempotency-Key, unique in the account, kept as long
    as the scan (never purged: at least the 30 days a scanner may stay offline).
    ``result`` and ``checked_in_at`` may change once: an offline scan that arrives later
    with an earlier ``scanned_at`` takes the check-in over, and the scan that had it becomes
    ``already_checked_in`` (``updated_at`` says when, for ``?updated_since=``).
    """

    __tablename__ = "scans"
    __table_args__ = (
        sa.CheckConstraint("result IN ('admitted', 'already_checked_in', 'ticket_reissued', 'event_cancelled', "
                           "'wrong_event', 'unknown_code')", name="result"),
        sa.UniqueConstraint("account_id", "nonce", name="uq_scans_account_nonce"),
        # An event's history newest first, by result, and in the order of change.
        sa.Index("ix_scans_event_id", "event_id", "id"),
        sa.Index("ix_scans_event_result_id", "event_id", "result", "id"),
        sa.Index("ix_scans_event_updated", "event_id", "updated_at", "id"),
        # The scan that holds an attendee's check-in, when an earlier one takes it over.
        sa.Index("ix_scans_attendee_result", "attendee_id", "result"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"))
    # The door it was scanned at (no foreign keys: the history outlives a deleted event or attendee).
    event_id: Mapped[int]
    attendee_id: Mapped[int | None]
    token_id: Mapped[int] = mapped_column(sa.ForeignKey("api_tokens.id"))
    result: Mapped[str] = mapped_column(sa.String(20))
    code_tail: Mapped[str] = mapped_column(sa.String(ticket_codes.TAIL_LENGTH))
    code_digest: Mapped[str] = mapped_column(sa.String(64))
    nonce: Mapped[str | None] = mapped_column(sa.String(255))
    # "online" (a redeem) or "batch".
    source: Mapped[str] = mapped_column(sa.String(10))
    scanned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # admitted: the check-in it made; already_checked_in: the check-in it met.
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiToken(db.Model):
    """A bearer token. Only the SHA-256 digest of its value is stored; a revoked token
    stays as a row for the audit trail and is never accepted again."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        sa.CheckConstraint("tier IN ('read', 'write')", name="tier"),
        sa.CheckConstraint("events_permission IN ('none', 'read', 'write')", name="events_permission"),
        sa.CheckConstraint("attendees_permission IN ('none', 'read', 'write')", name="attendees_permission"),
        sa.CheckConstraint("check_in_permission IN ('none', 'write')", name="check_in_permission"),
        sa.CheckConstraint("webhooks_permission IN ('none', 'read', 'write')", name="webhooks_permission"),
        NEVER_REUSED_IDS,
    )

    TIER_LABELS = {"read": "Read", "write": "Read + Write"}

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"), index=True)
    created_by_id: Mapped[int] = mapped_column(sa.ForeignKey("admins.id"))
    description: Mapped[str] = mapped_column(sa.String(100))
    tier: Mapped[str] = mapped_column(sa.String(10))
    digest: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # What it may touch (usetix/core/permissions.py), fixed at creation and read with the
    # token's one lookup per request. The defaults are the read preset: a row written
    # without them can do no more than a read token.
    events_permission: Mapped[str] = mapped_column(sa.String(5), server_default="read")
    attendees_permission: Mapped[str] = mapped_column(sa.String(5), server_default="read")
    check_in_permission: Mapped[str] = mapped_column(sa.String(5), server_default="none")
    webhooks_permission: Mapped[str] = mapped_column(sa.String(5), server_default="none")
    # The events it is limited to, a JSON array of ids; None: every event, future ones too.
    event_ids: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # None: the token never expires. It is refused from this second on (a fraction given is dropped).
    expires_at: Mapped[datetime | None] = mapped_column(UTCWholeSecond)
    # Usage, written at most once a minute per token after the response (usetix/auth/usage.py):
    # the last request's time, client address and User-Agent, and an approximate count.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_address: Mapped[str | None] = mapped_column(sa.String(64))
    last_used_agent: Mapped[str | None] = mapped_column(sa.String(255))
    use_count: Mapped[int] = mapped_column(default=0, server_default="0")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The one-time nonce of the dashboard form that made it. Unique, so two submissions
    # racing past the session's nonce check (a double click) still make one token.
    form_nonce: Mapped[str | None] = mapped_column(sa.String(32), unique=True)
    # The device pairing that issued it (the OAuth device grant); None: made in the dashboard.
    device_authorization_id: Mapped[int | None] = mapped_column(sa.ForeignKey("device_authorizations.id"),
                                                                unique=True)

    created_by: Mapped[Admin] = relationship()
    device_authorization: Mapped[DeviceAuthorization | None] = relationship()

    @property
    def tier_label(self) -> str:
        return self.TIER_LABELS[self.tier]

    @property
    def permissions(self) -> token_permissions.Permissions:
        return token_permissions.Permissions(self.events_permission, self.attendees_permission,
                                             self.check_in_permission, self.webhooks_permission)

    @property
    def restricted_to(self) -> list[int] | None:
        """The event ids it is limited to, sorted; None: every event."""
        return token_permissions.listed_event_ids(self.event_ids)

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def live(self, now: datetime) -> bool:
        return self.revoked_at is None and not self.expired(now)


class DeviceAuthorization(db.Model):
    """A device's request to be paired (RFC 8628's device authorization request), from the
    code it asked for to the token it was given.

    The ``device_code`` the device polls with is stored as its SHA-256 digest only; the
    ``user_code`` (8 letters, stored without the dash) is shown to the person who approves,
    lives ``expires_in`` seconds, and is looked up only under a throttle. ``status`` goes
    pending → approved → issued (the token handed out once), or pending → denied. The
    account is the approving (or denying) admin's: a device belongs to none before.
    """

    __tablename__ = "device_authorizations"
    __table_args__ = (
        sa.CheckConstraint("status IN ('pending', 'approved', 'denied', 'issued')", name="status"),
        sa.Index("ix_device_authorizations_user_code", "user_code", "expires_at"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    device_code_digest: Mapped[str] = mapped_column(sa.String(64), unique=True)
    user_code: Mapped[str] = mapped_column(sa.String(8))
    client_id: Mapped[str] = mapped_column(sa.String(64))
    scope: Mapped[str | None] = mapped_column(sa.String(100))
    device_name: Mapped[str] = mapped_column(sa.String(64))
    requested_from: Mapped[str | None] = mapped_column(sa.String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(sa.String(10), default="pending", server_default="pending")
    # The polling interval the device must keep (grows by 5 s at each slow_down), and its last poll.
    interval: Mapped[int] = mapped_column(default=5, server_default="5")
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set by the approval or the denial.
    account_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id"), index=True)
    decided_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("admins.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What the approval grants: the events (JSON array, as ApiToken.event_ids) and the
    # token's expiry (None: never), as chosen on the approval page.
    event_ids: Mapped[str | None] = mapped_column(sa.Text)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCWholeSecond)

    decided_by: Mapped[Admin | None] = relationship()

    @property
    def restricted_to(self) -> list[int] | None:
        return token_permissions.listed_event_ids(self.event_ids)

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


class AuditEvent(db.Model):
    """Something done to or with a token: who, what (as it was then), when, from where.

    Actions: ``token.created``, ``token.revoked``, ``token.reported_leaked`` (revoked by an
    unauthenticated leak report: actor "leak report", the reporter's address, no admin), and
    one per API write (``event.created``, ...), which names the token that made it
    (``admin_id`` is None) and the object it touched (``object_*``, None on token records).
    A device pairing's steps (``device.*``, usetix/core/audit_actions.py) name the device as
    their object (``object_type`` "device"); those before its token exists name no token.
    """

    __tablename__ = "audit_events"
    # The dashboard's log reads a page from a position in (created_at, id) order, newest
    # first, unfiltered or by one filter: an index for each, so that a page at any depth of
    # a million records reads one page of index entries (blueprints/dashboard/audit_log.py).
    # The first leads with account_id, so it also serves every per-account lookup; the
    # admin filter's is partial, as API writes (most records) name no admin.
    __table_args__ = (
        sa.Index("ix_audit_events_account_created_id", "account_id", "created_at", "id"),
        sa.Index("ix_audit_events_account_action_created_id", "account_id", "action", "created_at", "id"),
        sa.Index("ix_audit_events_token_created_id", "token_id", "created_at", "id"),
        sa.Index("ix_audit_events_admin_created_id", "admin_id", "created_at", "id",
                 postgresql_where=sa.text("admin_id IS NOT NULL"), sqlite_where=sa.text("admin_id IS NOT NULL")),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"))
    # None when an operator acted from the command line (e.g. revoking a leaked token).
    admin_id: Mapped[int | None] = mapped_column(sa.ForeignKey("admins.id"))
    actor: Mapped[str] = mapped_column(sa.String(254))
    action: Mapped[str] = mapped_column(sa.String(40))
    # None on a device pairing's records made before its token exists (requested, approved, denied).
    token_id: Mapped[int | None] = mapped_column(sa.ForeignKey("api_tokens.id"))
    token_description: Mapped[str | None] = mapped_column(sa.String(100))
    token_tier: Mapped[str | None] = mapped_column(sa.String(10))
    # The token's permissions and event restriction (as ApiToken keeps them), on the
    # records the token service writes (its creation, revocation, leak report).
    token_permissions: Mapped[str | None] = mapped_column(sa.String(60))
    token_event_ids: Mapped[str | None] = mapped_column(sa.Text)
    client_address: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    object_type: Mapped[str | None] = mapped_column(sa.String(20))  # "event", "attendee", "device"
    object_id: Mapped[int | None]
    object_label: Mapped[str | None] = mapped_column(sa.String(200))  # its title or name then


class Tombstone(db.Model):
    """An event or attendee the API deleted, so that a client syncing with
    ``updated_since`` learns of it (``include_deleted=true``)."""

    __tablename__ = "tombstones"
    __table_args__ = (sa.Index("ix_tombstones_account_type_deleted", "account_id", "object_type", "deleted_at"),
                      # An event's deleted attendees, in the order of a sync walk.
                      sa.Index("ix_tombstones_account_type_event_deleted", "account_id", "object_type", "event_id",
                               "deleted_at", "object_id"),
                      NEVER_REUSED_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"))
    object_type: Mapped[str] = mapped_column(sa.String(20))
    object_id: Mapped[int]
    # An attendee's event (no foreign key: the event may be deleted later too).
    event_id: Mapped[int | None]
    # A deleted event's starts_at, so tombstones sort with the live events.
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdempotencyKey(db.Model):
    """One ``Idempotency-Key`` of one token and the answer it got, kept 24 hours.

    ``status`` is None while the first request with the key is still running.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.UniqueConstraint("token_id", "key", name="uq_idempotency_keys_token_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_id: Mapped[int] = mapped_column(sa.ForeignKey("api_tokens.id"))
    key: Mapped[str] = mapped_column(sa.String(255))
    # SHA-256 of method, path, body, If-Match and If-None-Match: the same key with another
    # request is refused.
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[int | None]
    response_headers: Mapped[str | None] = mapped_column(sa.Text)  # JSON object
    response_body: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class ServerSession(db.Model):
    """A dashboard login session. The key is the SHA-256 of the cookie's session id, so
    the table never holds a value that would work as a cookie."""

    __tablename__ = "server_sessions"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    data: Mapped[str] = mapped_column(sa.Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class RateLimitCounter(db.Model):
    """A fixed-window counter of a limit that every worker and host must share (the login
    throttle without Redis; usetix/ratelimit/database_storage.py). Times are seconds since
    the epoch, as the ``limits`` library counts them."""

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    count: Mapped[int] = mapped_column(sa.Integer)
    expires_at: Mapped[float] = mapped_column(sa.Float, index=True)


class WebhookEndpoint(db.Model):
    """Where an account's webhooks go (Standard Webhooks, usetix/webhooks/). The secret signs
    every delivery, so it is kept as it was given out (a digest would not sign): it is shown
    once, never logged, and never answered again (SECURITY.md, "Webhook secrets")."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (NEVER_REUSED_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"), index=True)
    url: Mapped[str] = mapped_column(sa.String(2048))
    description: Mapped[str] = mapped_column(sa.String(200), default="")
    enabled: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    secret: Mapped[str] = mapped_column(sa.String(100))
    # After a rotation, the secret before it signs too until this time (the spec's
    # zero-downtime rotation: a delivery carries both signatures).
    previous_secret: Mapped[str | None] = mapped_column(sa.String(100))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The first failed attempt since the last success (None: not failing); three days of it disable.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why it was disabled by the app, not by an admin: "failing" (three days) or "gone" (a 410).
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(20))
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WebhookSubscription(db.Model):
    """One event type an endpoint receives: the outbox's INSERT … SELECT joins on it."""

    __tablename__ = "webhook_subscriptions"

    endpoint_id: Mapped[int] = mapped_column(sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
                                             primary_key=True)
    event_type: Mapped[str] = mapped_column(sa.String(40), primary_key=True)


class WebhookMessage(db.Model):
    """The outbox: one event for one endpoint, written in the transaction of the change that
    caused it. ``message_id`` is its ``webhook-id``, the same on every attempt and for every
    endpoint the event goes to. Workers claim a due row (``lease_until``) before sending."""

    __tablename__ = "webhook_messages"
    __table_args__ = (
        sa.CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
        sa.UniqueConstraint("endpoint_id", "message_id", name="uq_webhook_messages_endpoint_message"),
        # What the sweeper reads: the pending rows, by when they are due.
        sa.Index("ix_webhook_messages_pending_due", "next_attempt_at",
                 postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'")),
        sa.Index("ix_webhook_messages_endpoint_created", "endpoint_id", "created_at"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"))
    endpoint_id: Mapped[int] = mapped_column(sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(sa.String(40))
    event_type: Mapped[str] = mapped_column(sa.String(40))
    # The body exactly as it is sent and signed.
    payload: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(10), default="pending", server_default="pending")
    # Attempts made since the message was last (re)queued: the step of the retry schedule.
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A worker's claim: no other worker sends it before this time (a worker killed mid-delivery
    # leaves it, and the sweeper hands the message on once it has passed).
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookAttempt(db.Model):
    """One try at sending a message: the delivery log (kept 30 days)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        sa.Index("ix_webhook_attempts_endpoint_id", "endpoint_id", "id"),
        sa.Index("ix_webhook_attempts_attempted_at", "attempted_at"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"))
    endpoint_id: Mapped[int] = mapped_column(sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    message_row_id: Mapped[int] = mapped_column(sa.ForeignKey("webhook_messages.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[str] = mapped_column(sa.String(40))
    event_type: Mapped[str] = mapped_column(sa.String(40))
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    succeeded: Mapped[bool] = mapped_column(default=False)
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(sa.String(200))
    latency_ms: Mapped[int] = mapped_column(default=0)
    response_body: Mapped[str | None] = mapped_column(sa.Text)  # its first 2 KB


AccountOwned = TypeVar("AccountOwned", Event, Attendee, ApiToken, AuditEvent, Admin, Tombstone, Scan,
                       DeviceAuthorization, WebhookEndpoint, WebhookMessage, WebhookAttempt)


def account_select(model: type[AccountOwned], account_id: int, *columns: Any) -> sa.Select:
    """``SELECT`` from an account-owned table, already limited to one account.

    With ``columns`` it selects just those (no ORM objects built), else whole rows.
    """
    stmt = sa.select(*columns) if columns else sa.select(model)
    return stmt.where(model.account_id == account_id)


def get_for_account(model: type[AccountOwned], account_id: int, row_id: int) -> AccountOwned | None:
    """The row with ``row_id`` if it belongs to ``account_id``; None whether it belongs to
    another account or exists nowhere (callers answer both with the same 404)."""
    return db.session.scalar(account_select(model, account_id).where(model.id == row_id))
