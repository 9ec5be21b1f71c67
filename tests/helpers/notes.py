"""Notes a test leaves for the end of the run (how long an image took to make, what was reused)."""

from __future__ import annotations

import pytest

NOTES = pytest.StashKey[list]()


def note(config, text: str) -> None:
    """A line for the "arm64 emulation" section at the end of the test run (e.g. a timing)."""
    config.stash.setdefault(NOTES, []).append(text)
