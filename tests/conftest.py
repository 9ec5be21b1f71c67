"""Shared helpers for the lock reader tests: fixture copies and hand-written locks."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


def fixture_path(name: str) -> Path:
    path = FIXTURES / name
    assert (path / "uv.lock").is_file(), f"fixture {name} has no uv.lock"
    return path


def copy_fixture(name: str, destination: Path) -> Path:
    """A private copy of a fixture project (for tests that edit it)."""
    target = destination / name
    shutil.copytree(
        fixture_path(name),
        target,
        ignore=shutil.ignore_patterns("__pycache__", "dist", ".venv", "*.pyc"),
    )
    # Mark the copy as a repository root so the lock search stops here.
    (target / ".git").mkdir()
    return target


def write_project(directory: Path, lock: str, *, name: str = "app", pyproject: str | None = None) -> Path:
    """A project directory with a hand-written ``uv.lock`` (dedented) and a pyproject.toml."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ".git").mkdir(exist_ok=True)
    if pyproject is None:
        pyproject = f"""
            [project]
            name = "{name}"
            version = "0.1.0"
            requires-python = ">=3.11"
        """
    (directory / "pyproject.toml").write_text(textwrap.dedent(pyproject).lstrip(), encoding="utf-8")
    (directory / "uv.lock").write_text(textwrap.dedent(lock).lstrip(), encoding="utf-8")
    return directory


def sha(seed: str) -> str:
    """A stable, distinct 64-hex digest for hand-written lock entries."""
    import hashlib

    return hashlib.sha256(seed.encode()).hexdigest()


def uv_command() -> list[str]:
    """How to run uv: the executable on PATH, else the ``uv`` Python package."""
    found = shutil.which("uv")
    if found:
        return [found]
    probe = subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True, text=True)
    if probe.returncode == 0:
        return [sys.executable, "-m", "uv"]
    pytest.fail("uv is a test dependency (pip install uv) but neither `uv` nor `python -m uv` works")


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m hatch_lambda ...`` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "hatch_lambda", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )
