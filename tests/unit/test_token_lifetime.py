"""The pure expiry rules: form choices to ``expires_at``, and how pages say it."""

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from usetix.core.token_lifetime import (
    BadExpiry,
    custom_date_range,
    describe_expiry,
    expires_at_for,
    expiring_soon,
)

NOW = datetime(2026, 12, 1, 8, 30, 15, 123456, tzinfo=UTC)


@pytest.mark.parametrize("days", [7, 30, 60, 90])
def test_presets_count_whole_seconds_from_now(days):
    assert expires_at_for(str(days), None, NOW) == datetime(2026, 12, 1, 8, 30, 15, tzinfo=UTC) + timedelta(days=days)


def test_no_expiry_is_none():
    assert expires_at_for("none", None, NOW) is None


def test_a_custom_date_ends_at_midnight_utc_from_tomorrow_to_366_days_ahead():
    assert custom_date_range(NOW) == (date(2026, 12, 2), date(2027, 12, 2))
    assert expires_at_for("custom", "2026-12-02", NOW) == datetime(2026, 12, 2, tzinfo=UTC)
    assert expires_at_for("custom", " 2027-12-02 ", NOW) == datetime(2027, 12, 2, tzinfo=UTC)


@pytest.mark.parametrize("value, message", [
    ("", "Pick the date"),
    (None, "Pick the date"),
    ("2026-12-01", "tomorrow (2026-12-02) or later"),
    ("2025-01-01", "tomorrow"),
    ("2027-12-03", "at most 366 days ahead (2027-12-02)"),
    ("2027-02-30", "does not exist"),
    ("02/01/2027", "YYYY-MM-DD"),
    ("2027-1-5", "YYYY-MM-DD"),
    ("２０２７-01-05", "YYYY-MM-DD"),  # other scripts' digits are not a date here
    ("9999999999-01-01", "YYYY-MM-DD"),
])
def test_bad_custom_dates_say_why(value, message):
    with pytest.raises(BadExpiry, match=re.escape(message)):
        expires_at_for("custom", value, NOW)


@pytest.mark.parametrize("choice", ["", "1", "365", "0030", "-7", "never"])
def test_unknown_choices_are_refused(choice):
    with pytest.raises(BadExpiry):
        expires_at_for(choice, None, NOW)


@pytest.mark.parametrize("expires_at, text", [
    (None, "No expiry"),
    (NOW + timedelta(days=5, hours=3), "Expires in 5 days"),
    (NOW + timedelta(days=6, hours=23, minutes=59), "Expires in 7 days"),  # a 7-day token, just made
    (NOW + timedelta(days=2), "Expires in 2 days"),
    (NOW + timedelta(days=1, hours=23), "Expires in 47 hours"),
    (NOW + timedelta(hours=2), "Expires in 2 hours"),
    (NOW + timedelta(minutes=119), "Expires in 119 minutes"),
    (NOW + timedelta(minutes=1), "Expires in 60 seconds"),
    (NOW + timedelta(seconds=1), "Expires in 1 second"),
    (NOW, "Expired just now"),
    (NOW - timedelta(days=2, hours=1), "Expired 2 days ago"),
    (NOW - timedelta(hours=3), "Expired 3 hours ago"),
    (NOW - timedelta(seconds=59), "Expired 59 seconds ago"),
])
def test_describe_expiry(expires_at, text):
    assert describe_expiry(expires_at, NOW) == text


def test_expiring_soon_means_live_and_within_seven_days():
    assert expiring_soon(NOW + timedelta(days=7), NOW)
    assert not expiring_soon(NOW + timedelta(days=7, seconds=1), NOW)
    assert not expiring_soon(NOW, NOW)  # already expired
    assert not expiring_soon(None, NOW)
