"""The dashboard's forms."""

from __future__ import annotations

from datetime import UTC, date, datetime

from wtforms import HiddenField, RadioField, SelectField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from ...core import device_codes, token_lifetime, webhooks
from ...core import permissions as perms
from ...database.models import utcnow
from ...web.form_validators import NoControlCharacters
from ...web.forms import TextForm


class ExpiryFields(TextForm):
    """A token's expiry as the new-token form offers it (usetix/core/token_lifetime.py):
    its choices and default, and a custom date; the device approval form offers the same."""

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


class TokenForm(ExpiryFields):
    description = StringField(
        "Description",
        validators=[DataRequired("Give the token a description."), Length(max=100), NoControlCharacters()],
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        description="Something you will recognise when auditing, e.g. Mailchimp sync.",
    )
    # The presets (usetix/core/permissions.py); "read" and "write" are the two tiers the
    # form always had, with their meanings.
    tier = RadioField(
        "Permissions",
        choices=[SelectChoice(name, preset.label) for name, preset in perms.PRESETS.items()],
        default="read",
        validate_choice=True,
    )
    # Read only when tier is "custom".
    perm_events = RadioField("Events", choices=[SelectChoice(level, perms.LEVEL_LABELS[level])
                                                for level in perms.RESOURCE_LEVELS["events"]],
                             default="read", validate_choice=False)
    perm_attendees = RadioField("Attendees", choices=[SelectChoice(level, perms.LEVEL_LABELS[level])
                                                      for level in perms.RESOURCE_LEVELS["attendees"]],
                                default="read", validate_choice=False)
    perm_check_in = RadioField("Check-in", choices=[SelectChoice(level, perms.LEVEL_LABELS[level])
                                                    for level in perms.RESOURCE_LEVELS["check_in"]],
                               default="none", validate_choice=False)
    perm_webhooks = RadioField("Webhooks", choices=[SelectChoice(level, perms.LEVEL_LABELS[level])
                                                    for level in perms.RESOURCE_LEVELS["webhooks"]],
                               default="none", validate_choice=False)
    # The account's events, as checkboxes (choices set by the view); none ticked: every event.
    events = SelectMultipleField("Events", coerce=int, widget=ListWidget(prefix_label=False),
                                 option_widget=CheckboxInput(), validate_choice=True)
    # One-time nonce: a resubmitted form (reload, back, double click) cannot make a 2nd token.
    nonce = HiddenField()

    def validate_tier(self, field) -> None:
        if field.data not in perms.PRESETS:
            return  # the choice's own error says so
        try:
            self.permissions = perms.preset_permissions(
                field.data, (self.perm_events.data, self.perm_attendees.data, self.perm_check_in.data,
                             self.perm_webhooks.data))
        except perms.BadPermissions as exc:
            raise ValidationError(str(exc)) from None

    def restriction(self) -> list[int] | None:
        """The validated form's event restriction (None: every event)."""
        return list(self.events.data) if self.events.data else None

    @property
    def presets(self) -> dict:
        return perms.PRESETS



class UserCodeForm(TextForm):
    """The code a device shows, typed on Settings → Devices → Pair a device."""

    user_code = StringField("Code shown on the device", validators=[DataRequired("Type the code your device shows.")])

    def validate_user_code(self, field) -> None:
        self.stored_code = device_codes.normalize_user_code(field.data)
        if self.stored_code is None:
            raise ValidationError("A code is 8 letters, as XXXX-XXXX.")


class DeviceApprovalForm(ExpiryFields):
    """Approve (or deny) a device's request: its events (at least one) and its token's expiry."""

    user_code = HiddenField()
    # The account's events, as checkboxes (choices set by the view).
    events = SelectMultipleField("Events", coerce=int, widget=ListWidget(prefix_label=False),
                                 option_widget=CheckboxInput(), validate_choice=True,
                                 validators=[DataRequired("Tick at least one event the device may scan.")])
    # A paired device this one replaces (its token is revoked at once); 0: none. Choices set by the view.
    replaces = SelectField("Replaces", coerce=int, default=0, validate_choice=True)


class WebhookEndpointForm(TextForm):
    """Settings → Webhooks: a new endpoint (its URL's rules are usetix/webhooks/targets.py's)."""

    url = StringField("URL", validators=[DataRequired("Give the endpoint's https URL."), Length(max=2048),
                                         NoControlCharacters()],
                      filters=[lambda value: value.strip() if isinstance(value, str) else value],
                      description="https only; it must not point at a private or local address.")
    description = StringField("Description", validators=[Length(max=200), NoControlCharacters()],
                              filters=[lambda value: value.strip() if isinstance(value, str) else value])
    events = SelectMultipleField("Events", choices=[SelectChoice(name, name) for name in webhooks.EVENT_TYPES],
                                 widget=ListWidget(prefix_label=False), option_widget=CheckboxInput(),
                                 validate_choice=True,
                                 validators=[DataRequired("Choose at least one event type.")])


class WebhookRecoverForm(TextForm):
    since = StringField("Since (UTC date)", validators=[DataRequired("Give a date: YYYY-MM-DD.")])

    def validate_since(self, field) -> None:
        try:
            self.since_at = datetime.combine(date.fromisoformat(field.data), datetime.min.time(), UTC)
        except (TypeError, ValueError):
            raise ValidationError("A date as YYYY-MM-DD.") from None
