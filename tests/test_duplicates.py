"""Identical copies of one shared library: hatch_lambda.assemble.duplicates, judged across the packs of an artifact."""

from __future__ import annotations

import re
import shutil
import zlib  # noqa: F401  (loads libz, whose path is read from /proc/self/maps)
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hatch_lambda.assemble.duplicates import duplicate_copies
from hatch_lambda.assemble.zips import without
from hatch_lambda.packs.elf import elf_info
from hatch_lambda.packs.pack import PackSpec, pack_from_tree, spelled_libraries
from hatch_lambda.packs.unpack import StagedDistribution

SPEC = PackSpec("3.12", "x86_64", True, (), (), 6)


def pack(root: Path, name: str = "pkg", spec: PackSpec = SPEC):
    """The pack of the distribution ``name`` installed alone under ``root``."""
    files = tuple(sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()))
    with ThreadPoolExecutor(2) as pool:
        return pack_from_tree(spec, name, root, StagedDistribution(name, "1.0", "wheel", files), {}, "", pool)


def duplicate_libraries(root: Path, keep: tuple[str, ...] = ()) -> list[str]:
    return sorted(duplicate_copies([pack(root)], keep).get("pkg", ()))


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
    packed = pack(tmp_path)
    kept = without(packed, duplicate_copies([packed])["pkg"])
    assert sorted(kept.files) == ["pkg/__init__.py", f"pkg/{soname}"]
    shipped = packed.files[f"pkg/{soname}"].size  # each copy as it ships (its symbol sections taken out)
    assert 0 < shipped <= library.stat().st_size
    assert kept.pruned.by_rule["duplicate-libraries"] == 2 * shipped
    assert kept.pruned.removed == ["pkg/libz.so", f"pkg/{soname}.9.9"]
    assert kept.contents.stripped_files == 2 and kept.installed_bytes == packed.installed_bytes - 2 * shipped


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


def test_keep_patterns_protect_copies(tmp_path, libz):
    library, soname = libz
    copies(tmp_path, library, ["libz.so", soname])
    assert duplicate_libraries(tmp_path, keep=("pkg/libz.so",)) == []
    assert duplicate_libraries(tmp_path) == ["pkg/libz.so"]


def test_a_copy_another_distribution_names_stays(tmp_path, libz):
    """Judged across the artifact: a copy in one pack that another pack's Python loads by name is kept."""
    library, soname = libz
    copies(tmp_path / "a", library, ["libz.so", soname])
    (tmp_path / "b" / "user").mkdir(parents=True)
    (tmp_path / "b" / "user" / "__init__.py").write_text('import ctypes\nctypes.CDLL("pkg/libz.so")\n')
    alone = pack(tmp_path / "a")
    assert duplicate_copies([alone]) == {"pkg": {"pkg/libz.so"}}
    assert duplicate_copies([alone, pack(tmp_path / "b", "user")]) == {}


@pytest.mark.parametrize("strip", [True, False])
def test_strip_false_keeps_every_copy(tmp_path, libz, strip):
    from hatch_lambda.assemble.zips import checked
    from hatch_lambda.config.options import LAYER, load_config
    from hatch_lambda.lockfile.resolve import Distribution
    from hatch_lambda.packs.sources import PackSource

    library, soname = libz
    copies(tmp_path, library, ["libz.so", soname])
    config = load_config(LAYER, {"python": "3.12", "strip": strip}, {}, project_name="x", requires_python=None)
    source = PackSource(Distribution("pkg", "1.0", "registry", "", None), "pkg", "wheel", tmp_path / "pkg.whl")
    (kept,) = checked([pack(tmp_path)], [source], config, lambda line: None)
    assert ("pkg/libz.so" in kept.files) is not strip


@given(st.lists(st.sampled_from([b".so", b".so.1", b"lib", b"x", b"_", b".", b"+", b"-", b" ", b"(", b"'", b"\n",
                                 b"\xc3\xa9", b"9", b"also", b"self.sort"]), max_size=40))
def test_library_names_are_found_as_the_regular_expression_finds_them(parts):
    """The scan from each ``.so`` outwards finds exactly the runs the plain regular expression finds."""
    text = b"".join(parts)
    assert spelled_libraries(text) == re.findall(rb"[\w.+-]*\.so[\w.+-]*", text)
