"""What a token may touch: its permissions per resource, the presets, the event restriction.

A token has a tier (``read``: GET and HEAD only; ``write``: every method, the public
document's two tiers) and, for each resource, a permission: ``none``, ``read`` or
``write`` (``check_in``: ``none`` or ``write``). An operation names the one permission it
needs as a scope, ``"<resource>:<level>"`` (``attendees:read``); ``write`` includes
``read``. A token may also be restricted to some of its account's events. All of it is
fixed when the token is made. No Flask, no database.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import NamedTuple, TypeVar

RESOURCES = ("events", "attendees", "check_in", "webhooks")
LEVELS = ("none", "read", "write")
# The levels each resource takes: checking in is an act, there is nothing of it to read.
RESOURCE_LEVELS = {"events": LEVELS, "attendees": LEVELS, "check_in": ("none", "write"), "webhooks": LEVELS}
RESOURCE_LABELS = {"events": "Events", "attendees": "Attendees", "check_in": "Check-in", "webhooks": "Webhooks"}
LEVEL_LABELS = {"none": "None", "read": "Read", "write": "Write"}


class Permissions(NamedTuple):
    events: str
    attendees: str
    check_in: str
    # The account's webhook endpoints (their secrets, their delivery log): a Read + Write
    # token's, no other preset's.
    webhooks: str = "none"

    def as_dict(self) -> dict[str, str]:
        return dict(zip(RESOURCES, self))

    @property
    def scopes(self) -> frozenset[str]:
        return granted_scopes(*self)

    @property
    def tier(self) -> str:
        """The tier these permissions make: ``write`` when any of them writes."""
        return "write" if "write" in self else "read"

    @property
    def summary(self) -> str:
        """One line for a page or a log: ``events:read attendees:none check_in:write webhooks:none``."""
        return " ".join(f"{resource}:{level}" for resource, level in zip(RESOURCES, self))


class Preset(NamedTuple):
    label: str
    meaning: str
    permissions: Permissions | None  # None: the form's own choice (custom)


# The create form's choices, as values of its ``tier`` field: ``read`` and ``write`` keep
# the names and meanings the form always had.
PRESETS = {
    "read": Preset("Read", "GET and HEAD only: reads events and attendees.",
                   Permissions("read", "read", "none", "none")),
    "write": Preset("Read + Write", "all methods: reads and changes events and attendees, checks in, and manages "
                    "webhooks.", Permissions("write", "write", "write", "write")),
    "check_in": Preset("Check-in only",
                       "for the door: reads events, checks attendees in (and undoes it); never lists "
                       "attendees nor sees their email.", Permissions("read", "none", "write")),
    "custom": Preset("Custom", "choose each permission below.", None),
}
READ_PRESET = PRESETS["read"].permissions
WRITE_PRESET = PRESETS["write"].permissions
CHECK_IN_PRESET = PRESETS["check_in"].permissions


class BadPermissions(ValueError):
    """Permissions a token cannot be made with; the message says why, for the form."""


def scope(resource: str, level: str) -> str:
    return f"{resource}:{level}"


@lru_cache(maxsize=64)  # 54 combinations at most: every request asks
def granted_scopes(events: str, attendees: str, check_in: str, webhooks: str = "none") -> frozenset[str]:
    """The scopes a token with these permissions holds (``write`` holds ``read`` too)."""
    held = set()
    for resource, level in zip(RESOURCES, (events, attendees, check_in, webhooks)):
        if level == "write":
            held.add(scope(resource, "write"))
        if level != "none" and "read" in RESOURCE_LEVELS[resource]:  # write holds read, where there is one
            held.add(scope(resource, "read"))
    return frozenset(held)


def checked_permissions(events: str, attendees: str, check_in: str, webhooks: str = "none") -> Permissions:
    """Checked permissions; raises BadPermissions for an unknown level or none at all."""
    chosen = Permissions(events, attendees, check_in, webhooks)
    for resource, level in zip(RESOURCES, chosen):
        if level not in RESOURCE_LEVELS[resource]:
            raise BadPermissions(f"{RESOURCE_LABELS[resource]} takes "
                                 f"{' or '.join(RESOURCE_LEVELS[resource])}, not {level!r}.")
    if not chosen.scopes:
        raise BadPermissions("A token needs at least one permission: choose Read or Write for one of them.")
    return chosen


def preset_permissions(preset: str, custom: tuple[str, ...] | None = None) -> Permissions:
    """The permissions a preset of the create form gives (``custom``: the ones chosen, in RESOURCES' order)."""
    if preset not in PRESETS:
        raise BadPermissions(f"Unknown preset {preset!r}.")
    fixed = PRESETS[preset].permissions
    if fixed is not None:
        return fixed
    if custom is None:
        raise BadPermissions("Custom permissions need a choice for each resource.")
    return checked_permissions(*custom)


def preset_name(chosen: Permissions) -> str:
    """The preset these permissions are, or ``custom``."""
    for name, preset in PRESETS.items():
        if preset.permissions == chosen:
            return name
    return "custom"


def preset_label(chosen: Permissions) -> str:
    return PRESETS[preset_name(chosen)].label


# -- the event restriction ------------------------------------------------------------------
# Stored on the token's row as a JSON array of event ids (None: every event, future ones
# too), so the token's one lookup brings it, and the database can read it as it is
# (usetix/database/id_lists.py) to limit a list.

def store_event_ids(event_ids: Iterable[int] | None) -> str | None:
    """The stored form of a restriction: sorted, without repeats; None for no restriction."""
    if event_ids is None:
        return None
    ids = sorted(set(event_ids))
    if not ids:
        raise BadPermissions("A restriction needs at least one event.")
    return json.dumps(ids, separators=(",", ":"))


@lru_cache(maxsize=1024)  # per restricted token, on every one of its requests
def event_ids(stored: str | None) -> frozenset[int] | None:
    """The events a token is limited to, from its stored form; None: every event."""
    if stored is None:
        return None
    return frozenset(json.loads(stored))


def listed_event_ids(stored: str | None) -> list[int] | None:
    """The restriction as a sorted list, for an answer or a page; None: every event."""
    allowed = event_ids(stored)
    return None if allowed is None else sorted(allowed)


View = TypeVar("View", bound=Callable)


def requires(needed: str | None, *, unrestricted: bool = False) -> Callable[[View], View]:
    """Declare on an API view the scope it needs (None: any token may call it), and
    whether a token restricted to some events is refused it (creating an event: a new
    event would be outside its restriction). The bearer hook reads both, before the view
    runs and before the body is read."""
    if needed is not None:
        resource, _, level = needed.partition(":")
        if resource not in RESOURCES or level not in RESOURCE_LEVELS[resource][1:]:
            raise ValueError(f"not a scope: {needed!r}")

    def declare(view: View) -> View:
        view.required_scope = needed
        view.refused_to_restricted = unrestricted
        return view

    return declare


def all_scopes() -> list[str]:
    """Every scope an operation can need, in a stable order (for the OpenAPI document)."""
    return [scope(resource, level) for resource in RESOURCES for level in RESOURCE_LEVELS[resource][1:]]
