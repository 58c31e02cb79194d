"""Scenarios for tests/test_serve_support.py: what run_scenarios makes of a failure beside a
skip. VIDSYNTH_SUPPORT_CASE says what each test does."""

from __future__ import annotations

import os

import pytest
from serve_support import require_netns

require_netns()
CASE = os.environ.get("VIDSYNTH_SUPPORT_CASE", "")


def test_skips():
    pytest.skip("skipped on purpose: no root")


def test_fails_or_skips_when_asked():
    if CASE == "skip":
        pytest.skip("skipped on purpose: no chromium here")
    assert CASE != "fail", "failed on purpose"
