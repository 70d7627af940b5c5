"""WTForms validators shared by the dashboard's forms."""

from __future__ import annotations

import re

from wtforms.validators import ValidationError

# C0 controls (NUL included: PostgreSQL refuses it in text), DEL and C1 controls.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class NoControlCharacters:
    """Refuse text holding control characters: no name, email or description needs one,
    and a NUL would fail in the database rather than in the form."""

    def __init__(self, message: str = "This field cannot contain control characters."):
        self.message = message

    def __call__(self, form, field) -> None:
        if isinstance(field.data, str) and _CONTROL.search(field.data):
            raise ValidationError(self.message)
