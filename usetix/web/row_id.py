"""The ``<row_id:...>`` URL converter: the id of a row in a path."""

from __future__ import annotations

from werkzeug.routing import IntegerConverter, Map

# Ids are signed 32-bit columns (PostgreSQL's INTEGER; SQLite's are wider).
MAX_ROW_ID = 2**31 - 1
NO_ROW = 0  # ids start at 1 on both databases; a path's 0 is the same 404


class RowIdConverter(IntegerConverter):
    """``<row_id:...>``: a row id fits a signed 32-bit column (PostgreSQL's
    INTEGER, the id columns' type; SQLite's are wider), so a larger number in the path is
    never sent to the database. ASCII digits only (``\\d`` would also take other scripts'
    digits).

    A number past ``max`` still matches the route, as :data:`NO_ROW`, an id no row has: the
    view answers the same 404 as for any missing id, whatever the method. (Refusing it in
    the converter made Werkzeug try the path's other rules and answer 405 with an ``Allow``
    naming only the methods it had tried: PATCH told to use GET, DELETE to use PATCH.)
    """

    regex = "[0-9]+"

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = None, max: int | None = MAX_ROW_ID,
                 signed: bool = False) -> None:
        super().__init__(map, fixed_digits, min, max, signed)

    def to_python(self, value: str) -> int:
        # Never converted past the maximum's length (int() of thousands of digits is slow, then refused).
        if self.max is not None and (len(value.lstrip("0")) > len(str(self.max)) or int(value) > self.max):
            return NO_ROW
        return super().to_python(value)

