"""Events pages: the account's events, soonest first; one event with its attendees, its
check-in counts and its last refused scans; one attendee with its ticket (a QR code) and
the Reissue button."""

from __future__ import annotations

import io

import segno
from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup

from ...core import audit_actions as actions
from ...core.list_query import page_number
from ...database.engine import db
from ...database.models import Attendee, Event, account_select, get_for_account, utcnow
from ...database.tickets import check_in_counts, refused_scans, reissue
from . import bp
from .admin_audit import record_admin_action

# How many refused scans the event page shows (the API's history has them all).
REFUSED_SCANS_SHOWN = 10


@bp.get("/events")
def events():
    page = request.args.get("page", 1, type=page_number)
    pagination = db.paginate(
        account_select(Event, current_user.account_id).order_by(Event.starts_at, Event.id),
        page=page,
        per_page=current_app.config["EVENTS_PER_PAGE"],
        error_out=False,
    )
    return render_template("dashboard/events.html", pagination=pagination)


@bp.get("/events/<row_id:event_id>")
def event(event_id: int):
    found = get_for_account(Event, current_user.account_id, event_id)
    if found is None:
        abort(404)
    attendees = db.session.scalars(
        account_select(Attendee, current_user.account_id)
        .where(Attendee.event_id == found.id)
        .order_by(Attendee.name, Attendee.id)
    ).all()
    connection = db.session.connection()
    counts, _ = check_in_counts(connection, current_user.account_id, found.id)
    refused = refused_scans(connection, current_user.account_id, found.id, REFUSED_SCANS_SHOWN)
    return render_template("dashboard/event.html", event=found, attendees=attendees, counts=counts,
                           refused=refused)


def _attendee(event_id: int, attendee_id: int) -> Attendee:
    found = db.session.scalar(account_select(Attendee, current_user.account_id)
                              .where(Attendee.id == attendee_id, Attendee.event_id == event_id))
    if found is None:
        abort(404)
    return found


def ticket_svg(code: str) -> Markup:
    """The ticket's code as a QR code, an inline SVG made on the server (segno: README,
    "At the door"). Only our own code goes in, and segno writes the markup."""
    svg = io.BytesIO()
    segno.make(code, error="m").save(svg, kind="svg", xmldecl=False, svgns=True, scale=6, border=4,
                                     title="Ticket QR code", svgclass="ticket-qr", lineclass=None)
    return Markup(svg.getvalue().decode())  # segno wrote it, from a code of our own alphabet


@bp.get("/events/<row_id:event_id>/attendees/<row_id:attendee_id>")
def attendee(event_id: int, attendee_id: int):
    found = _attendee(event_id, attendee_id)
    event = get_for_account(Event, current_user.account_id, event_id)
    code = found.ticket_code
    grouped = " ".join(code[i:i + 4] for i in range(0, len(code), 4))
    return render_template("dashboard/attendee.html", event=event, attendee=found, ticket=ticket_svg(code),
                           grouped_code=grouped)


@bp.post("/events/<row_id:event_id>/attendees/<row_id:attendee_id>/reissue_ticket")
def reissue_ticket(event_id: int, attendee_id: int):
    found = _attendee(event_id, attendee_id)
    changed = reissue(db.session.connection(), Attendee.__table__.c.id == found.id, found.id,
                      current_user.account_id, found.ticket_code, utcnow(), [Attendee.__table__.c.id])
    if changed is not None:
        record_admin_action(actions.ATTENDEE_TICKET_REISSUED, "attendee", found.id, found.name)
    db.session.commit()
    if changed is None:
        flash("The ticket was reissued by someone else meanwhile: this is the new one.", "info")
    else:
        flash(f"Reissued the ticket of {found.name}: the old code is refused at the door from now on.", "success")
    return redirect(url_for("dashboard.attendee", event_id=event_id, attendee_id=attendee_id), 303)
