"""Every action the audit log records, and how the dashboard's log names it."""

TOKEN_CREATED = "token.created"
TOKEN_REVOKED = "token.revoked"
TOKEN_REPORTED_LEAKED = "token.reported_leaked"
EVENT_CREATED = "event.created"
EVENT_UPDATED = "event.updated"
EVENT_CANCELLED = "event.cancelled"
EVENT_DELETED = "event.deleted"
ATTENDEE_CREATED = "attendee.created"
ATTENDEE_UPDATED = "attendee.updated"
ATTENDEE_DELETED = "attendee.deleted"
ATTENDEE_CHECKED_IN = "attendee.checked_in"
ATTENDEE_CHECK_IN_UNDONE = "attendee.check_in_undone"
ATTENDEE_TICKET_REISSUED = "attendee.ticket_reissued"
# A device paired with the OAuth device grant (RFC 8628): each step of its pairing.
DEVICE_REQUESTED = "device.requested"
DEVICE_APPROVED = "device.approved"
DEVICE_DENIED = "device.denied"
DEVICE_TOKEN_ISSUED = "device.token_issued"
DEVICE_UNPAIRED = "device.unpaired"
DEVICE_SIGNED_OUT = "device.signed_out"
WEBHOOK_CREATED = "webhook.created"
WEBHOOK_UPDATED = "webhook.updated"
WEBHOOK_DELETED = "webhook.deleted"
WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated"

# How the log names the actions it knows; any other shows as recorded.
LABELS = {
    TOKEN_CREATED: "Created token",
    TOKEN_REVOKED: "Revoked token",
    TOKEN_REPORTED_LEAKED: "Revoked token: reported leaked",
    EVENT_CREATED: "Created event",
    EVENT_UPDATED: "Updated event",
    EVENT_CANCELLED: "Cancelled event",
    EVENT_DELETED: "Deleted event",
    ATTENDEE_CREATED: "Added attendee",
    ATTENDEE_UPDATED: "Updated attendee",
    ATTENDEE_DELETED: "Deleted attendee",
    ATTENDEE_CHECKED_IN: "Checked in",
    ATTENDEE_CHECK_IN_UNDONE: "Undid check-in",
    ATTENDEE_TICKET_REISSUED: "Reissued ticket",
    DEVICE_REQUESTED: "Device asked to be paired",
    DEVICE_APPROVED: "Approved device",
    DEVICE_DENIED: "Denied device",
    DEVICE_TOKEN_ISSUED: "Issued token to device",
    DEVICE_UNPAIRED: "Unpaired device",
    DEVICE_SIGNED_OUT: "Device signed out",
    WEBHOOK_CREATED: "Added webhook endpoint",
    WEBHOOK_UPDATED: "Changed webhook endpoint",
    WEBHOOK_DELETED: "Deleted webhook endpoint",
    WEBHOOK_SECRET_ROTATED: "Rotated webhook secret",
}
