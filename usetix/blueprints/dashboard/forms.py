"""The dashboard's forms."""

from __future__ import annotations

from wtforms import HiddenField, RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

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
    # One-time nonce: a resubmitted form (reload, back, double click) cannot make a 2nd token.
    nonce = HiddenField()
