"""Identical copies of one shared library: hatch_lambda.duplicates, through prune()."""

from __future__ import annotations

import shutil
import zlib  # noqa: F401  (loads libz, whose path is read from /proc/self/maps)
from pathlib import Path

import pytest

from hatch_lambda.duplicates import duplicate_libraries
from hatch_lambda.elf import elf_info
from hatch_lambda.prune import prune


def loaded_library(stem: str) -> Path:
    """A real shared library this interpreter has loaded (e.g. libz.so.1.2.13)."""
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        pytest.skip("needs /proc/self/maps")
    for line in maps:
        path = line.split()[-1]
        if Path(path).name.startswith(f"{stem}.so") and Path(path).is_file():
            return Path(path)
    pytest.skip(f"{stem} is not loaded by this interpreter")


@pytest.fixture
def libz() -> tuple[Path, str]:
    path = loaded_library("libz")
    soname = elf_info(path).soname
    assert soname and soname.startswith("libz.so")
    return path, soname


def copies(root: Path, library: Path, names: list[str]) -> None:
    (root / "pkg").mkdir(parents=True, exist_ok=True)
    (root / "pkg" / "__init__.py").write_text("")
    for name in names:
        shutil.copyfile(library, root / "pkg" / name)


def test_copies_not_named_after_the_soname_go(tmp_path, libz):
    library, soname = libz
    copies(tmp_path, library, ["libz.so", soname, soname + ".9.9"])
    assert duplicate_libraries(tmp_path) == ["pkg/libz.so", f"pkg/{soname}.9.9"]
    report = prune(tmp_path)
    assert sorted(p.name for p in (tmp_path / "pkg").iterdir()) == ["__init__.py", soname]
    assert report.by_rule["duplicate-libraries"] == 2 * library.stat().st_size
    assert report.removed == ["pkg/libz.so", f"pkg/{soname}.9.9"]


def test_a_copy_needed_by_name_or_named_in_python_stays(tmp_path, libz):
    library, soname = libz
    copies(tmp_path, library, ["libz.so", soname, soname + ".9.9"])
    (tmp_path / "pkg" / "__init__.py").write_text('import ctypes\nctypes.CDLL("libz.so")\n')
    assert duplicate_libraries(tmp_path) == [f"pkg/{soname}.9.9"]


def test_no_copy_named_after_the_soname_keeps_them_all(tmp_path, libz):
    library, _ = libz
    copies(tmp_path, library, ["libz.so", "libz-custom.so"])
    assert duplicate_libraries(tmp_path) == []


def test_copies_in_different_directories_or_with_other_contents_stay(tmp_path, libz):
    library, soname = libz
    copies(tmp_path, library, [soname])
    (tmp_path / "other").mkdir()
    shutil.copyfile(library, tmp_path / "other" / "libz.so")
    data = library.read_bytes()
    (tmp_path / "pkg" / "libz.so").write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    assert duplicate_libraries(tmp_path) == []


def test_keep_patterns_and_strip_false_protect_copies(tmp_path, libz):
    library, soname = libz
    copies(tmp_path, library, ["libz.so", soname])
    prune(tmp_path, keep=("pkg/libz.so",))
    assert (tmp_path / "pkg" / "libz.so").is_file()
    prune(tmp_path, strip=False)
    assert (tmp_path / "pkg" / "libz.so").is_file()
