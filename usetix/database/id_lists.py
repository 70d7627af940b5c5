"""``column IN <a JSON array of ids bound as one text value>``, in SQL of each dialect.

A token's event restriction is stored as a JSON array (usetix/core/permissions.py) and
comes with the token's lookup; bound as that one string, the restricted list stays one
statement, compiled once (an expanding ``IN`` would be compiled anew for each length).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class in_id_list(FunctionElement):
    """``in_id_list(column, bound_json_text)``: true where the column's value is in the array."""

    type = sa.Boolean()
    inherit_cache = True
    name = "in_id_list"


def _parts(element: in_id_list, compiler: Any, **kw: Any) -> tuple[str, str]:
    column, ids = list(element.clauses)
    return compiler.process(column, **kw), compiler.process(ids, **kw)


@compiles(in_id_list, "sqlite")
def _sqlite(element: in_id_list, compiler: Any, **kw: Any) -> str:
    column, ids = _parts(element, compiler, **kw)
    return f"{column} IN (SELECT value FROM json_each({ids}))"


@compiles(in_id_list, "postgresql")
def _postgresql(element: in_id_list, compiler: Any, **kw: Any) -> str:
    column, ids = _parts(element, compiler, **kw)
    return f"{column} IN (SELECT CAST(value AS INTEGER) FROM json_array_elements_text(CAST({ids} AS JSON)))"
