"""Stripping a staged tree: hatch_lambda.packs.strip."""

from __future__ import annotations

from pathlib import Path

import pytest

from hatch_lambda.packs.strip import default_rule, prune


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("pkg/__pycache__/mod.cpython-311.pyc", "__pycache__"),
        ("pkg/__pycache__/notes.txt", "__pycache__"),
        ("pkg/mod.pyc", "*.pyc"),
        ("pkg/mod.pyo", "*.pyc"),
        ("legacy.pyc", "*.pyc"),
        ("pkg/tests/test_x.py", "tests"),
        ("pkg/sub/test/data.json", "tests"),
        ("pkg-1.0.dist-info/RECORD", "dist-info"),
        ("pkg-1.0.dist-info/WHEEL", "dist-info"),
        ("pkg-1.0.dist-info/INSTALLER", "dist-info"),
        ("pkg-1.0.dist-info/top_level.txt", "dist-info"),
        ("pkg-1.0.dist-info/direct_url.json", "dist-info"),
        # kept: what importlib.metadata and entry points read, and licences
        ("pkg-1.0.dist-info/METADATA", None),
        ("pkg-1.0.dist-info/entry_points.txt", None),
        ("pkg-1.0.dist-info/LICENSE", None),
        ("pkg-1.0.dist-info/LICENCE.md", None),
        ("pkg-1.0.dist-info/COPYING.txt", None),
        ("pkg-1.0.dist-info/NOTICE", None),
        ("pkg-1.0.dist-info/AUTHORS.rst", None),
        ("pkg-1.0.dist-info/licenses/LICENSE-APACHE", None),
        ("pkg-1.0.dist-info/licenses/vendor/zlib/LICENSE", None),
        # kept: a top-level package that happens to be called tests, and look-alikes
        ("tests/__init__.py", None),
        ("test/helpers.py", None),
        ("pkg/tests", None),
        ("pkg/testing/utils.py", None),
        ("pkg/test_utils.py", None),
        ("pkg/contest/mod.py", None),
        ("pkg/mod.py", None),
        ("pkg/mod.pyi", None),
        # headers and Cython sources: only a compiler reads them
        ("pyarrow/include/arrow/api.h", "headers"),
        ("pkg/_core.pyx", "headers"),
        ("pkg/_core.pxd", "headers"),
        ("pkg/types.pxi", "headers"),
        ("pkg/x.hpp", "headers"),
        ("pkg/_speed.c", None),
        ("pkg/header.html", None),
        ("six.py", None),
    ],
)
def test_default_rule(path, rule):
    assert default_rule(path) == rule


def write(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


TREE = {
    "pkg/__init__.py": b"x = 1\n",
    "pkg/__init__.pyi": b"x: int\n",
    "pkg/__pycache__/__init__.cpython-311.pyc": b"\0" * 100,
    "pkg/old.pyc": b"\0" * 10,
    "pkg/tests/__init__.py": b"",
    "pkg/tests/test_pkg.py": b"def test(): pass\n",
    "pkg/include/pkg.h": b"int x;\n" * 20,
    "pkg/_speed.c": b"/* c */\n",
    "pkg-1.0.dist-info/METADATA": b"Name: pkg\n",
    "pkg-1.0.dist-info/RECORD": b"pkg/__init__.py,,\n",
    "pkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\n",
    "pkg-1.0.dist-info/licenses/LICENSE": b"MIT\n",
    "tests/conftest.py": b"",
}


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def dirs_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir()}


def test_prune_defaults(tmp_path):
    root = write(tmp_path / "site", TREE)
    report = prune(root)
    assert files_under(root) == {
        "pkg/__init__.py",
        "pkg/__init__.pyi",
        "pkg/_speed.c",
        "pkg-1.0.dist-info/METADATA",
        "pkg-1.0.dist-info/licenses/LICENSE",
        "tests/conftest.py",
    }
    assert report.removed == sorted([
        "pkg/__pycache__/__init__.cpython-311.pyc",
        "pkg/include/pkg.h",
        "pkg/old.pyc",
        "pkg/tests/__init__.py",
        "pkg/tests/test_pkg.py",
        "pkg-1.0.dist-info/RECORD",
        "pkg-1.0.dist-info/WHEEL",
    ])
    assert report.files == 7
    assert report.by_rule == {
        "headers": len(b"int x;\n" * 20),
        "__pycache__": 100,
        "*.pyc": 10,
        "tests": len(b"def test(): pass\n"),
        "dist-info": len(b"pkg/__init__.py,,\n") + len(b"Wheel-Version: 1.0\n"),
    }
    assert report.bytes == sum(report.by_rule.values())
    # emptied directories go too, the root stays
    assert "pkg/__pycache__" not in dirs_under(root) and "pkg/tests" not in dirs_under(root)
    assert root.is_dir()


def test_strip_patterns_add_to_the_defaults(tmp_path):
    root = write(tmp_path / "site", TREE)
    report = prune(root, drop=("*.pyi", "pkg/include/", "*.c"))
    assert "pkg/__init__.pyi" not in files_under(root)
    assert "pkg/include/pkg.h" not in files_under(root)
    assert "pkg/_speed.c" not in files_under(root)
    assert "pkg/include" not in dirs_under(root)
    # the header went by the default rule first
    assert report.by_rule["strip-patterns"] == len(b"x: int\n") + len(b"/* c */\n")
    assert report.by_rule["headers"] == len(b"int x;\n" * 20)
    assert report.by_rule["dist-info"] > 0


def test_keep_patterns_beat_every_rule(tmp_path):
    root = write(tmp_path / "site", TREE)
    report = prune(
        root,
        drop=("*.pyi", "*.h"),
        keep=("pkg/tests/", "*.dist-info/WHEEL", "pkg/__init__.pyi"),
    )
    left = files_under(root)
    assert {"pkg/tests/test_pkg.py", "pkg/tests/__init__.py", "pkg-1.0.dist-info/WHEEL", "pkg/__init__.pyi"} <= left
    assert "pkg/include/pkg.h" not in left
    assert "pkg-1.0.dist-info/RECORD" not in left
    assert "pkg/old.pyc" not in left
    assert "tests" not in report.by_rule


def test_strip_false_keeps_everything_but_still_applies_strip_patterns(tmp_path):
    root = write(tmp_path / "site", TREE)
    report = prune(root, strip=False)
    assert files_under(root) == set(TREE)
    assert report.files == 0 and report.by_rule == {} and report.removed == []

    report = prune(root, strip=False, drop=("*.pyc",))
    assert files_under(root) == set(TREE) - {"pkg/__pycache__/__init__.cpython-311.pyc", "pkg/old.pyc"}
    assert report.by_rule == {"strip-patterns": 110}


def test_gitignore_semantics_of_patterns(tmp_path):
    root = write(tmp_path / "site", {
        "a/include/x.h": b"1",
        "b/include/y.h": b"2",
        "include/top.h": b"3",
        "a/notes.md": b"4",
    })
    prune(root, strip=False, drop=("/include/", "a/**/*.md"))
    assert files_under(root) == {"a/include/x.h", "b/include/y.h"}
