"""Components the suite needs from the machine."""

from __future__ import annotations

import os

import pytest


def missing(what: str) -> None:
    """Under CI a missing component fails the test (CI installs it: .ci/run); elsewhere it skips."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing (CI installs it: see .ci/run)")
    pytest.skip(f"{what} is missing")
