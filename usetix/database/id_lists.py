"""``column IN <a JSON array of ids bound as one text value>``, in SQL of each dialect.

A token's event restriction is stored as a JSON array (usetix/core/permissions.py) and
comes with the token's lookup; bound as that one string, the restricted list stays one
statement, compiled once (an expanding ``IN`` would be compiled anew for each length, and on
PostgreSQL its text, a parameter for each value, parsed anew by psycopg: 0.8 ms for the 400
values of a 100-scan batch's admissions). A door batch's lists of (attendee id, code) pairs
likewise (:class:`in_pair_list`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class in_id_list(FunctionElement):
    """``in_id_list(column, bound_json_text)``: true where the column's value is in the array."""

    # Not Boolean: SQLAlchemy writes a Boolean expression on SQLite (no boolean type) as
    # ``(...) = 1``, which no index serves (a door batch's UPDATEs read every scan).
    type = sa.types.NullType()
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
    # An array computed once (an InitPlan), so that the column's index can seek each id (a
    # hashed ``IN (SELECT …)`` read every row that the index's other columns allowed).
    return f"{column} = ANY(ARRAY(SELECT CAST(value AS INTEGER) FROM json_array_elements_text(CAST({ids} AS JSON))))"


class in_pair_list(FunctionElement):
    """``in_pair_list(column_a, column_b, bound_json_text)``: true where the two columns' values
    are a pair of the bound JSON array of two-element arrays (an integer, a string)."""

    type = sa.types.NullType()  # as in_id_list's
    inherit_cache = True
    name = "in_pair_list"


@compiles(in_pair_list, "sqlite")
def _sqlite_pairs(element: in_pair_list, compiler: Any, **kw: Any) -> str:
    first, second, pairs = (compiler.process(clause, **kw) for clause in element.clauses)
    return (f"({first}, {second}) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') "
            f"FROM json_each({pairs}))")


@compiles(in_pair_list, "postgresql")
def _postgresql_pairs(element: in_pair_list, compiler: Any, **kw: Any) -> str:
    first, second, pairs = (compiler.process(clause, **kw) for clause in element.clauses)
    return (f"({first}, {second}) IN (SELECT CAST(pair ->> 0 AS INTEGER), pair ->> 1 "
            f"FROM json_array_elements(CAST({pairs} AS JSON)) AS pairs(pair))")
