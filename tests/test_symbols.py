"""Symbol tables and debug sections taken out of ELF files: hatch_lambda.packs.symbols and the pack stage.

Every check runs on real compiled wheels from the package index: the fixtures'
(pyyaml, markupsafe, orjson; pyarrow, pydantic-core), numpy's auditwheel-repaired
wheels (patchelf layouts), and a few from the public projects' locks in
``fixtures/corpus``. Each result is judged here with pyelftools on its own, not by
the module's own check; the stripped libraries are then imported and used.
"""

from __future__ import annotations

import io
import os
import struct
import tomllib
import zipfile
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from hatch_lambda.packs.elf import elf_info
from hatch_lambda.packs.strip import PruneReport, strip_tree_symbols
from hatch_lambda.packs.symbols import removable_name, strip_symbols

from helpers.builds import Build, digests, extract, fresh_cache, hatchling_build, manifest
from helpers.lambda_run import invoke, lambda_root, run_python
from helpers.projects import FIXTURES, LAYER, NATIVE_EXPECTED, configure, copy_fixture, pip_download, run_cli

pytestmark = pytest.mark.network

SHF_ALLOC = 0x2
PLATFORMS = ("--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64")


def locked_version(lock: Path, name: str) -> str:
    """The highest version of ``name`` a ``uv.lock`` pins."""
    data = tomllib.loads(lock.read_text(encoding="utf-8"))
    versions = [p["version"] for p in data["package"] if p["name"] == name]
    assert versions, f"{lock} does not lock {name}"
    return max(versions, key=_version_key)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def corpus_version(name: str) -> str:
    """The highest version of ``name`` that any of the corpus' locks pins."""
    versions = [locked_version(lock, name) for lock in sorted((FIXTURES / "corpus").glob("*/uv.lock"))
                if f'name = "{name}"' in lock.read_text(encoding="utf-8")]
    assert versions, f"no lock of fixtures/corpus locks {name}"
    return max(versions, key=_version_key)


#: (where the pin comes from, distribution, CPython it is for)
WHEELS = [
    ("native-app", "pyyaml", "3.11"),
    ("native-app", "markupsafe", "3.11"),
    ("native-app", "orjson", "3.11"),
    ("spectra-demo", "pyarrow", "3.12"),
    ("spectra-demo", "pydantic-core", "3.12"),
    ("corpus", "numpy", "3.12"),
    ("corpus", "psycopg-binary", "3.12"),
    ("corpus", "pillow", "3.12"),
    ("corpus", "orjson", "3.12"),
]


def wheel(directory: Path, source: str, name: str, python: str) -> Path:
    """The manylinux x86_64 wheel of ``name`` that ``source``'s lock pins, downloaded into ``directory``."""
    version = corpus_version(name) if source == "corpus" else locked_version(FIXTURES / source / "uv.lock", name)
    directory.mkdir(parents=True, exist_ok=True)
    pip_download(f"{name}=={version}", directory, *PLATFORMS, "--python-version", python)
    [found] = [p for p in directory.glob("*.whl") if p.name.lower().startswith(name.replace("-", "_") + "-")]
    return found


def elf_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}
    return {name: data for name, data in members.items() if data[:4] == b"\x7fELF"}


def parse(data: bytes) -> ELFFile:
    return ELFFile(io.BytesIO(data))


def loaded_end(elf: ELFFile) -> int:
    """The end of what the loader may read: every program header's bytes and every allocated section's."""
    ends = [s["p_offset"] + s["p_filesz"] for s in elf.iter_segments() if s["p_filesz"]]
    ends += [s["sh_offset"] + s["sh_size"] for s in elf.iter_sections()
             if s["sh_flags"] & SHF_ALLOC and s["sh_type"] != "SHT_NOBITS"]
    return max(ends)


def removable_sections(elf: ELFFile) -> list:
    return [s for s in elf.iter_sections() if not s["sh_flags"] & SHF_ALLOC and removable_name(s.name)
            and s["sh_type"] != "SHT_NOBITS" and s["sh_size"]]


def assert_loader_sees_the_same(old: bytes, new: bytes, name: str) -> None:
    """``new`` parses, is smaller, and keeps every program header and allocated section of ``old`` byte for byte."""
    before, after = parse(old), parse(new)
    assert len(new) < len(old), name
    table = ("e_shoff", "e_shnum", "e_shstrndx")
    assert {k: v for k, v in before.header.items() if k not in table} == \
        {k: v for k, v in after.header.items() if k not in table}, name
    assert [s.header for s in before.iter_segments()] == [s.header for s in after.iter_segments()], name
    for segment in before.iter_segments():
        start, end = max(segment["p_offset"], before["e_ehsize"]), segment["p_offset"] + segment["p_filesz"]
        assert old[start:end] == new[start:end], f"{name}: a segment's bytes changed"
    allocated = [(i, s) for i, s in enumerate(before.iter_sections()) if s["sh_flags"] & SHF_ALLOC]
    assert {s.name for _, s in allocated} >= {".dynsym", ".dynstr"}, name
    for index, section in allocated:
        other = after.get_section(index)
        assert other.name == section.name, name
        assert {**other.header, "sh_name": 0} == {**section.header, "sh_name": 0}, f"{name}: {section.name}"
        if section["sh_type"] != "SHT_NOBITS":
            assert other.data() == section.data(), f"{name}: {section.name}"
    for section in after.iter_sections():  # everything left parses and reads
        if section["sh_type"] != "SHT_NOBITS":
            section.data()
    assert not removable_sections(after), name
    assert after.get_section_by_name(".symtab") is None and after.get_section_by_name(".debug_info") is None, name


@pytest.mark.parametrize(("source", "name", "python"), WHEELS, ids=[f"{s}-{n}" for s, n, _ in WHEELS])
def test_every_elf_of_real_wheels_is_stripped_safely_or_left_alone(tmp_path, source, name, python):
    members = elf_members(wheel(tmp_path, source, name, python))
    assert members, f"{name}'s wheel holds no ELF file"
    outcomes: dict[str, str] = {}
    for member, data in sorted(members.items()):
        result = strip_symbols(data)
        outcomes[member] = result.outcome
        assert strip_symbols(data) == result, f"{member}: not deterministic"
        if result.outcome == "stripped":
            assert_loader_sees_the_same(data, result.data, member)
            assert result.removed == len(data) - len(result.data) > 0
            # the audit's facts are those of the original; stripping again finds nothing
            assert elf_info(_write(tmp_path / "after", result.data)) == elf_info(_write(tmp_path / "before", data))
            assert strip_symbols(result.data).outcome == "nothing", member
        elif result.outcome == "layout":
            elf = parse(data)
            end = loaded_end(elf)
            assert elf["e_shoff"] < end or any(s["sh_offset"] < end for s in removable_sections(elf)), (
                f"{member} was left alone although nothing the loader reads comes after its symbols")
        else:
            assert result.outcome == "nothing" and not removable_sections(parse(data)), member
    print(f"{name}: {sorted(outcomes.items())}")
    if name in ("pyyaml", "pyarrow", "markupsafe"):  # built with their symbol tables or debug sections
        assert "stripped" in outcomes.values()
    if name in ("numpy", "psycopg-binary"):  # auditwheel's patchelf appended segments after the symbols
        assert "layout" in outcomes.values()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _section_header(data: bytes, name: str) -> int:
    """Where the section header of ``name`` starts in an ELF64 file."""
    elf = parse(data)
    for index, section in enumerate(elf.iter_sections()):
        if section.name == name:
            return elf["e_shoff"] + index * elf["e_shentsize"]
    raise AssertionError(f"no {name}")


def test_a_file_whose_symbols_lie_among_loaded_bytes_is_left_alone_and_counted(tmp_path):
    members = elf_members(wheel(tmp_path / "wheel", "native-app", "pyyaml", "3.11"))
    [(member, original)] = [(m, d) for m, d in members.items() if m.startswith("yaml/_yaml")]
    assert strip_symbols(original).outcome == "stripped"  # as it comes: safe
    edited = bytearray(original)
    elf = parse(original)
    first_load = next(s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD")
    # .symtab's bytes said to start inside the first PT_LOAD: cutting it off would cut loaded bytes
    struct.pack_into("<Q", edited, _section_header(original, ".symtab") + 24, first_load["p_offset"] + 64)
    root = tmp_path / "site-packages"
    target = root / member
    target.parent.mkdir(parents=True)
    target.write_bytes(bytes(edited))
    os.chmod(target, 0o755)
    report = PruneReport()
    strip_tree_symbols(root, report)
    assert target.read_bytes() == bytes(edited)  # untouched
    assert report.left_alone == [member] and report.symbols == {} and report.bytes == 0
    assert strip_symbols(bytes(edited)).outcome == "layout"

    # the same file as it comes is stripped, keeps its mode, and is counted by the rule "symbols"
    target.write_bytes(original)
    report = PruneReport()
    strip_tree_symbols(root, report)
    assert report.symbols == {member: len(original) - target.stat().st_size} and report.left_alone == []
    assert report.by_rule == {"symbols": report.bytes} and report.bytes > 0 and report.files == 0
    assert target.stat().st_mode & 0o777 == 0o755

    # keep-patterns protects a file from this rule too
    target.write_bytes(original)
    report = PruneReport()
    strip_tree_symbols(root, report, keep=("yaml/",))
    assert target.read_bytes() == original and report.symbols == {} and report.left_alone == []


def test_stripped_numpy_and_pyarrow_import_and_compute(tmp_path):
    root = tmp_path / "site-packages"
    for source, name in (("corpus", "numpy"), ("spectra-demo", "pyarrow")):
        with zipfile.ZipFile(wheel(tmp_path / name, source, name, "3.12")) as archive:
            archive.extractall(root)
    report = PruneReport()
    strip_tree_symbols(root, report)
    assert any(path.startswith("pyarrow/libarrow") for path in report.symbols)
    assert any(path.startswith("numpy/") for path in report.symbols)
    assert any(path.startswith("numpy.libs/") for path in report.left_alone)
    code = (
        "import io, numpy, numpy.fft, numpy.random, numpy.linalg\n"
        "import pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq\n"
        "table = pa.table({'a': numpy.arange(10)})\n"
        "buffer = io.BytesIO(); pq.write_table(table, buffer)\n"
        "back = pq.read_table(io.BytesIO(buffer.getvalue()))\n"
        "result = [int(numpy.arange(10).sum()), round(float(numpy.fft.fft([1.0, 2.0, 3.0]).real.sum()), 6),\n"
        "          float(numpy.linalg.det(numpy.eye(3))), int(numpy.random.default_rng(7).integers(0, 1, 3).sum()),\n"
        "          pc.sum(back['a']).as_py(), back.num_rows]\n"
    )
    run = run_python("3.12", [str(root)], code=code, roots=[str(root)])
    assert run.result == [45, 3.0, 1.0, 0, 45, 10]


def _native(tmp_path: Path, cache: Path, **keys: object) -> Build:
    project = copy_fixture("native-app", tmp_path)
    if keys:
        configure(project, **keys)
    return hatchling_build(project, LAYER, cache=cache, args=["-c"])


def test_native_app_layer_is_stripped_runs_and_builds_the_same_bytes_twice(tmp_path, cache):
    build = _native(tmp_path / "a", cache)
    out = build.out()
    section = manifest(out)["targets"][LAYER]
    stripped = section["stripped"]
    assert f"and the symbols of {stripped['symbols_files']} ELF files" in build.output
    assert stripped["by_rule"]["symbols"] > 0 and stripped["symbols_files"] >= 1
    assert stripped["bytes"] == sum(info["stripped_bytes"] for info in section["contents"].values())
    assert section["contents"]["pyyaml"]["symbols_bytes"] > 0
    # every ELF file of the layer has lost its symbols, or is one the manifest says was left alone
    for member, data in elf_members(out / "layer.zip").items():
        assert not removable_sections(parse(data)) or member.removeprefix("python/") in stripped["left_alone"], member
    # the handler imports the stripped libraries from the layer, the way Lambda lays it out, and uses them
    root = lambda_root(tmp_path / "run", "3.11", layer=out / "layer.zip", function=out / "native-app.zip")
    run = invoke(root, "native_app.handler")
    assert run.result == NATIVE_EXPECTED
    native = {module.split(".")[0] for module, where in run.loaded.items()
              if where.startswith(str(root.opt / "python")) and where.endswith(".so")}
    assert native >= {"yaml", "markupsafe", "orjson"}, run.loaded
    inspected = run_cli("inspect", out / "layer.zip")
    assert inspected.returncode == 0, inspected.stderr
    assert any(line.split()[0] == "pyyaml" and "symbols" in line for line in inspected.stdout.splitlines())

    again = _native(tmp_path / "b", fresh_cache(cache, tmp_path / "cache-b")).out()
    assert digests(again) == digests(out)


def test_strip_symbols_false_ships_the_wheels_elf_files_as_they_are(tmp_path, cache):
    out = _native(tmp_path, cache, strip_symbols=False).out()
    stripped = manifest(out)["targets"][LAYER]["stripped"]
    assert "symbols" not in stripped["by_rule"] and stripped["symbols_files"] == 0
    members = elf_members(wheel(tmp_path / "wheel", "native-app", "pyyaml", "3.11"))
    shipped = elf_members(out / "layer.zip")
    for member, data in members.items():
        assert shipped[f"python/{member}"] == data
    unpacked = extract(out / "layer.zip", tmp_path / "opt")
    assert any(removable_sections(parse(p.read_bytes())) for p in unpacked.rglob("*.so"))
