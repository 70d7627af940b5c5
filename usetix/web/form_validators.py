"""WTForms validators shared by the dashboard's forms."""

from __future__ import annotations

from wtforms.validators import ValidationError

from ..core.printable_text import refused_character


class NoControlCharacters:
    """Refuse text the API's text fields refuse too (usetix/core/printable_text.py):
    control characters, line separators and bidirectional overrides. No name, email or
    description needs one, and a NUL would fail in the database rather than in the form."""

    def __init__(self, message: str = "This field cannot contain control characters, line separators or "
                                      "bidirectional overrides."):
        self.message = message

    def __call__(self, form, field) -> None:
        if isinstance(field.data, str) and refused_character(field.data) is not None:
            raise ValidationError(self.message)
