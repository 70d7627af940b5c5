"""Read and check the API's list query parameters (?page, ?per_page, ?updated_since,
?include_deleted, ?cursor). No Flask."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100
# (MAX_PAGE - 1) * MAX_PER_PAGE fits a signed 32-bit integer: PostgreSQL takes the OFFSET
# as one, and a larger one fails in the database instead of giving an empty page.
MAX_PAGE = 10**7
# Longer than any cursor the API makes (about 300 characters), short enough to refuse junk at once.
MAX_CURSOR_LENGTH = 1000


class BadParameter(ValueError):
    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True)
class ListQuery:
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE  # with a cursor, 0 when not given: the cursor's own size
    updated_since: datetime | None = None
    include_deleted: bool = False  # tombstones of deleted rows too (usetix/database/tombstones.py)
    # A page number was asked for: the numbered pages of old, with page links and a total.
    numbered: bool = False
    # The opaque position of a cursor page (usetix/blueprints/api/cursors.py), still unread.
    cursor: str | None = None

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


DEFAULT_LIST_QUERY = ListQuery()


def _digits(raw: str, maximum: int) -> int | None:
    """``raw`` as a number if it is ASCII digits only, else None; a number too long to be
    at most ``maximum`` is ``maximum + 1`` (never converted: Python refuses to convert
    more than 4,300 digits, and the work grows with the length)."""
    if not raw.isascii() or not raw.isdigit():
        return None
    significant = raw.lstrip("0")
    if len(significant) > len(str(maximum)):
        return maximum + 1
    return int(significant or "0")


def page_number(raw: str) -> int:
    """A dashboard page's ``?page=``: 1 to MAX_PAGE, else ValueError, which
    ``request.args.get("page", 1, type=page_number)`` turns into page 1 (a huge page
    number would overflow the OFFSET in the database)."""
    value = _digits(raw, MAX_PAGE)
    if value is None or not 1 <= value <= MAX_PAGE:
        raise ValueError(f"not a page number: {raw[:20]!r}")
    return value


def _positive_int(args: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    raw = args.get(name)
    if raw is None:
        return default
    value = _digits(raw, maximum)
    if value is None or value < 1:
        raise BadParameter(name, f"{name} must be a whole number of at least 1.")
    if value > maximum:
        raise BadParameter(name, f"{name} must be at most {maximum}.")
    return value


def _timestamp(args: Mapping[str, str], name: str) -> datetime | None:
    raw = args.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
        # A timestamp without an offset is taken as UTC, like every timestamp the API returns.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise BadParameter(name, f"{name} must be an ISO 8601 timestamp, e.g. 2026-05-01T18:30:00Z.") from None


def parse_list_query(args: Mapping[str, str]) -> ListQuery:
    """The list parameters from a query string mapping; raises BadParameter naming the culprit."""
    if not args:
        return DEFAULT_LIST_QUERY  # most requests (docs/performance.md)
    cursor = args.get("cursor")
    if cursor is not None:
        # The cursor holds the position, the filters and the page size; only the size may change.
        for name in ("page", "updated_since", "include_deleted"):
            if name in args:
                raise BadParameter(name, f"{name} cannot be given with cursor: the cursor holds it.")
        per_page = _positive_int(args, "per_page", 0, maximum=MAX_PER_PAGE)  # 0: the cursor's own
        return ListQuery(per_page=per_page, cursor=cursor)
    return ListQuery(
        numbered="page" in args,
        page=_positive_int(args, "page", 1, maximum=MAX_PAGE),
        per_page=_positive_int(args, "per_page", DEFAULT_PER_PAGE, maximum=MAX_PER_PAGE),
        updated_since=_timestamp(args, "updated_since"),
        include_deleted=_boolean(args, "include_deleted"),
    )


def _boolean(args: Mapping[str, str], name: str) -> bool:
    raw = args.get(name)
    if raw is None or raw == "false":
        return False
    if raw == "true":
        return True
    raise BadParameter(name, f"{name} must be true or false.")
