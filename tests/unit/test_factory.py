"""The suite never runs with the developer's USETIX_* environment (conftest's no_developer_environment)."""

import os


def test_the_suite_never_reads_the_developers_usetix_environment():
    leaked = [name for name in os.environ if name.startswith("USETIX_") and not name.startswith("USETIX_TEST_")]
    assert leaked == []
