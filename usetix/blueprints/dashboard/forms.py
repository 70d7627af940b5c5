"""The dashboard's forms."""

from __future__ import annotations

from datetime import date, datetime

from wtforms import HiddenField, RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, ValidationError

from ...core import token_lifetime
from ...database.models import utcnow
from ...web.form_validators import NoControlCharacters
from ...web.forms import TextForm


class TokenForm(TextForm):
    description = StringField(
        "Description",
        validators=[DataRequired("Give the token a description."), Length(max=100), NoControlCharacters()],
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        description="Something you will recognise when auditing, e.g. Mailchimp sync.",
    )
    tier = RadioField(
        "Permission tier",
        choices=[SelectChoice("read", "Read — GET and HEAD only"), SelectChoice("write", "Read + Write — all methods")],
        default="read",
        validate_choice=True,
    )
    expiration = RadioField(
        "Expiration",
        choices=[*(SelectChoice(str(days), f"{days} days") for days in token_lifetime.PRESET_DAYS),
                 SelectChoice(token_lifetime.CUSTOM, "Custom date"),
                 SelectChoice(token_lifetime.NO_EXPIRY, "No expiry")],
        default=token_lifetime.DEFAULT_CHOICE,
        validate_choice=True,
    )
    # Read only when expiration is "custom"; rendered as <input type="date">.
    expires_on = StringField("Expiry date", filters=[lambda value: value.strip() if isinstance(value, str) else value])
    # One-time nonce: a resubmitted form (reload, back, double click) cannot make a 2nd token.
    nonce = HiddenField()

    def validate_expires_on(self, field) -> None:
        if self.expiration.data != token_lifetime.CUSTOM:
            return
        try:
            self.expires_at = token_lifetime.expires_at_for(token_lifetime.CUSTOM, field.data, utcnow())
        except token_lifetime.BadExpiry as exc:
            raise ValidationError(str(exc)) from None

    def expiry(self, now: datetime) -> datetime | None:
        """The validated form's ``expires_at`` (None: no expiry)."""
        if self.expiration.data == token_lifetime.CUSTOM:
            return self.expires_at
        return token_lifetime.expires_at_for(self.expiration.data, None, now)

    @property
    def custom_date_range(self) -> tuple[date, date]:
        return token_lifetime.custom_date_range(utcnow())
