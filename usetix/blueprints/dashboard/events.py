"""Events pages: the account's events, soonest first, and one event with its attendees."""

from __future__ import annotations

from flask import abort, current_app, render_template, request
from flask_login import current_user

from ...core.list_query import page_number
from ...database.engine import db
from ...database.models import Attendee, Event, account_select, get_for_account
from . import bp


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
    return render_template("dashboard/event.html", event=found, attendees=attendees)
