"""The permission model (usetix/core/permissions.py): presets, scopes, the stored restriction."""

from __future__ import annotations

import pytest

from usetix.core import permissions as perms


def test_the_presets_are_the_issues():
    # (events, attendees, check_in, webhooks): only Read + Write manages webhooks (issue 25).
    assert perms.PRESETS["read"].permissions == ("read", "read", "none", "none")
    assert perms.PRESETS["write"].permissions == ("write", "write", "write", "write")
    assert perms.PRESETS["check_in"].permissions == ("read", "none", "write", "none")
    assert perms.PRESETS["custom"].permissions is None
    assert [perms.PRESETS[name].permissions.tier for name in ("read", "write", "check_in")] == ["read", "write",
                                                                                              "write"]


def test_write_holds_read_and_check_in_has_nothing_to_read():
    assert perms.granted_scopes("write", "none", "write") == {"events:read", "events:write", "check_in:write"}
    assert perms.granted_scopes("none", "read", "none") == {"attendees:read"}
    assert perms.all_scopes() == ["events:read", "events:write", "attendees:read", "attendees:write",
                                  "check_in:write", "webhooks:read", "webhooks:write"]


@pytest.mark.parametrize("chosen", [("none", "none", "none"), ("read", "read", "read"), ("admin", "read", "none")])
def test_impossible_permissions_are_refused(chosen):
    with pytest.raises(perms.BadPermissions):
        perms.checked_permissions(*chosen)


def test_custom_permissions_make_their_tier():
    assert perms.preset_permissions("custom", ("read", "none", "none")).tier == "read"
    assert perms.preset_permissions("custom", ("none", "write", "none")).tier == "write"
    assert perms.preset_name(perms.Permissions("read", "none", "write")) == "check_in"
    assert perms.preset_name(perms.Permissions("read", "none", "none")) == "custom"
    with pytest.raises(perms.BadPermissions):
        perms.preset_permissions("admin")


def test_the_stored_restriction():
    stored = perms.store_event_ids([9, 3, 9])
    assert stored == "[3,9]"
    assert perms.event_ids(stored) == {3, 9} and perms.listed_event_ids(stored) == [3, 9]
    assert perms.store_event_ids(None) is None and perms.event_ids(None) is None
    with pytest.raises(perms.BadPermissions):
        perms.store_event_ids([])


def test_requires_takes_only_real_scopes():
    @perms.requires("attendees:read")
    def view():
        return None

    assert view.required_scope == "attendees:read" and view.refused_to_restricted is False
    for wrong in ("check_in:read", "attendees", "tokens:write"):
        with pytest.raises(ValueError):
            perms.requires(wrong)


def test_the_webhooks_permission_has_read_and_write():
    assert perms.granted_scopes("none", "none", "none", "write") == {"webhooks:read", "webhooks:write"}
    assert perms.granted_scopes("none", "none", "none", "read") == {"webhooks:read"}
    assert perms.Permissions("read", "none", "none", "read").summary == \
        "events:read attendees:none check_in:none webhooks:read"
    with pytest.raises(perms.BadPermissions):
        perms.checked_permissions("none", "none", "none", "admin")
