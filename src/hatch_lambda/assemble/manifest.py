"""``manifest.json``: what a build wrote, one section per target, beside the zips."""

from __future__ import annotations

import json
from pathlib import Path

MANIFEST = "manifest.json"


def read_manifest(directory: Path) -> dict[str, dict]:
    """The sections of ``directory/manifest.json``, one per target (``{}`` if none)."""
    try:
        data = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    targets = data.get("targets") if isinstance(data, dict) else None
    return targets if isinstance(targets, dict) else {}


def write_manifest(path: Path, sections: dict[str, dict]) -> None:
    """lambda-layer and lambda-fat share one manifest.json, each in its own section."""
    path.write_text(json.dumps({"format": 1, "targets": sections}, indent=2, sort_keys=True) + "\n")
