"""The webhooks' pure rules (usetix/core/webhooks.py): secrets, message ids, the retry
schedule with its jitter, and the addresses a webhook may never go to."""

from __future__ import annotations

import base64

import pytest

from usetix.core import webhooks as rules


def test_a_secret_is_whsec_and_32_random_bytes():
    secret = rules.new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert rules.new_secret() != secret
    assert rules.new_message_id().startswith("msg_") and len(rules.new_message_id()) <= 40


def test_the_schedule_is_the_specs_and_lasts_about_three_days():
    assert rules.RETRY_DELAYS[:6] == (5, 300, 1800, 7200, 18000, 36000)
    assert 70 * 3600 <= sum(rules.RETRY_DELAYS) <= 80 * 3600
    for attempts, planned in enumerate(rules.RETRY_DELAYS, start=1):
        assert planned * 0.9 <= rules.retry_delay(attempts) <= planned * 1.1
    assert rules.retry_delay(len(rules.RETRY_DELAYS) + 1) is None  # spent: the message has failed
    assert rules.retry_delay(1) < 10  # the first retry comes within 10 s
    assert rules.retry_delay(2, [0.5, 1.0]) <= 1.1 and rules.retry_delay(3, [0.5, 1.0]) is None


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
                                     "224.0.0.251", "0.0.0.0", "::1", "fe80::1", "fc00::1", "ff02::1",
                                     "::ffff:10.0.0.1", "100.64.0.1", "240.0.0.1"])
def test_private_and_special_addresses_are_refused(address):
    with pytest.raises(rules.RefusedTarget):
        rules.refused_address(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"])
def test_public_addresses_pass(address):
    rules.refused_address(address)


def test_loopback_passes_only_when_allowed():
    rules.refused_address("127.0.0.1", allow_private=True)
    with pytest.raises(rules.RefusedTarget):
        rules.refused_address("10.0.0.1", allow_private=True)  # the setting is for loopback only
