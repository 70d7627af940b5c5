"""The base of every dashboard form: text fields read from the form's text fields only.

Flask-WTF fills a form from ``request.files`` and ``request.form`` together (and from a
JSON body when there is no form). None of our forms has a file field, so a field sent as
a multipart *file* part (``email`` as a file) would reach the validators as a
``FileStorage``, and a JSON body as whatever JSON holds (a number, a list): neither is
text, and ``len()`` of one is a 500. Read only the text parts, and refuse a field sent as
a file with a form error of its own (missing, a choice with a default would quietly take
its default).
"""

from __future__ import annotations

from flask import request
from flask_wtf import FlaskForm

# Flask-WTF's submit methods (flask_wtf.form.SUBMIT_METHODS).
SUBMIT_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class TextForm(FlaskForm):
    def __init__(self, *args, **kwargs) -> None:
        if not args and "formdata" not in kwargs:
            submitted = request.method in SUBMIT_METHODS and request.form
            kwargs["formdata"] = request.form if submitted else None
        super().__init__(*args, **kwargs)

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        for name in request.files if self.is_submitted() else ():
            field = self._fields.get(name)
            if field is not None:
                field.errors = [*field.errors, "Send this field as text, not as a file."]
                valid = False
        return valid
