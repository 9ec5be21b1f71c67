"""Checks on a staged tree: hatch_lambda.audit (ELF CPU and glibc, size limits)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sysconfig
import zipfile
from pathlib import Path

import pytest

from buildutil import session_cache
from hatch_lambda.audit import (
    MB,
    SizeCheck,
    audit_elf,
    check_sizes,
    read_elf,
    sizes_by_distribution,
)
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.fetch import fetch_one
from hatch_lambda.install import StagedDistribution, StagedTree
from hatch_lambda.lock import resolve
from hatch_lambda.target import Target

ROOT = Path(__file__).resolve().parent.parent
EM_X86_64, EM_AARCH64 = 62, 183


def elf_header(machine: int) -> bytes:
    """The smallest ELF file pyelftools reads: a 64-bit little-endian header, no sections."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    return ident + struct.pack("<HHIQQQIHHHHHH", 3, machine, 1, 0, 0, 0, 0, 64, 0, 0, 0, 0, 0)


def staged(root: Path, files: dict[str, bytes], target: Target, owner: str = "pkg") -> StagedTree:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    dist = StagedDistribution(name=owner, version="1.0", how="wheel", files=tuple(files))
    return StagedTree(root=root, target=target, distributions=(dist,))


# --------------------------------------------------------------------------
# read_elf


def test_read_elf_on_headers(tmp_path):
    x86, arm = tmp_path / "x86.so", tmp_path / "arm.so"
    x86.write_bytes(elf_header(EM_X86_64))
    arm.write_bytes(elf_header(EM_AARCH64))
    assert read_elf(x86) == ("EM_X86_64", None)
    assert read_elf(arm) == ("EM_AARCH64", None)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x7fEL", b"\x7fELF", b"\x7fELF" + b"\xff" * 100, b"#!/bin/sh\n", b"PK\x03\x04" + b"\0" * 60],
    ids=["empty", "short", "magic-only", "garbage-after-magic", "script", "zip"],
)
def test_read_elf_on_non_elf_or_broken_files(tmp_path, data):
    path = tmp_path / "file.so"
    path.write_bytes(data)
    assert read_elf(path) is None


def test_read_elf_on_host_extension_module():
    """A real x86_64/aarch64 extension of this very interpreter, with its glibc symbol versions."""
    dynload = Path(sysconfig.get_paths()["platstdlib"]) / "lib-dynload"
    modules = sorted(dynload.glob("_ctypes*.so")) or sorted(dynload.glob("*.so"))
    if not modules:
        pytest.skip("this interpreter has no lib-dynload extension modules")
    machine, glibc = read_elf(modules[0])
    import platform

    assert machine == {"x86_64": "EM_X86_64", "aarch64": "EM_AARCH64"}[platform.machine()]
    assert glibc is not None and glibc >= (2, 2)


@pytest.fixture(scope="module")
def new_glibc_object(tmp_path_factory) -> Path:
    """A shared object compiled here that calls arc4random, which glibc only has from 2.36."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        pytest.skip("needs a C compiler")
    directory = tmp_path_factory.mktemp("glibc")
    source = directory / "new.c"
    source.write_text("#include <stdlib.h>\nunsigned int draw(void) { return arc4random(); }\n")
    output = directory / "libnew.so"
    result = subprocess.run([compiler, "-shared", "-fPIC", "-o", str(output), str(source)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        pytest.skip(f"this machine's glibc has no arc4random (older than 2.36): {result.stderr.strip()}")
    return output


def test_read_elf_reports_the_highest_glibc_needed(new_glibc_object):
    machine, glibc = read_elf(new_glibc_object)
    assert glibc == (2, 36)


# --------------------------------------------------------------------------
# audit_elf


def test_audit_accepts_objects_for_the_target(tmp_path):
    tree = staged(tmp_path, {
        "pkg/__init__.py": b"",
        "pkg/_a.so": elf_header(EM_AARCH64),
        "pkg/_b.so": elf_header(EM_AARCH64),
        "pkg/data.bin": b"\x7fELF not really",
    }, Target("3.12", "arm64"))
    report = audit_elf(tree)
    assert [(o.path, o.machine) for o in report.objects] == [("pkg/_a.so", "EM_AARCH64"), ("pkg/_b.so", "EM_AARCH64")]
    assert report.problems == []


@pytest.mark.parametrize(("arch", "wrong", "expected"), [("x86_64", EM_AARCH64, "EM_X86_64"),
                                                         ("arm64", EM_X86_64, "EM_AARCH64")])
def test_audit_refuses_objects_for_another_cpu(tmp_path, arch, wrong, expected):
    right = EM_X86_64 if wrong == EM_AARCH64 else EM_AARCH64
    tree = staged(tmp_path, {
        "pkg/_ok.so": elf_header(right),
        "pkg/libs/_wrong.so": elf_header(wrong),
    }, Target("3.11", arch), owner="fakenative")
    with pytest.raises(LambdaBuildError) as raised:
        audit_elf(tree)
    found = "EM_AARCH64" if wrong == EM_AARCH64 else "EM_X86_64"
    assert raised.value.problem == (
        f"the staged tree does not fit {Target('3.11', arch).describe()}:\n"
        f"    pkg/libs/_wrong.so (from fakenative) is built for {found}, not {expected}"
    )
    assert "exclude-packages" in raised.value.fix and 'installer = "docker"' in raised.value.fix


def test_audit_ignores_symbolic_links(tmp_path):
    tree = staged(tmp_path, {"pkg/_ok.so": elf_header(EM_X86_64)}, Target("3.11"))
    outside = tmp_path.parent / f"{tmp_path.name}-outside.so"
    outside.write_bytes(elf_header(EM_AARCH64))
    (tmp_path / "pkg" / "link.so").symlink_to(outside)
    assert [o.path for o in audit_elf(tree).objects] == ["pkg/_ok.so"]


def test_audit_lists_ten_problems_and_counts_the_rest(tmp_path):
    files = {f"pkg/_m{i:02}.so": elf_header(EM_AARCH64) for i in range(13)}
    tree = staged(tmp_path, files, Target("3.11"))
    with pytest.raises(LambdaBuildError) as raised:
        audit_elf(tree)
    lines = raised.value.problem.splitlines()
    assert len(lines) == 11
    assert lines[-1].endswith("(and 3 more)")
    assert "pkg/_m00.so" in lines[1] and "pkg/_m09.so" in lines[-1]


def test_audit_refuses_objects_needing_a_newer_glibc(tmp_path, new_glibc_object):
    data = new_glibc_object.read_bytes()
    for python, runtime in (("3.11", "Amazon Linux 2, glibc 2.26"), ("3.12", "Amazon Linux 2023, glibc 2.34")):
        tree = staged(tmp_path / python, {"newlib/libnew.so": data}, Target(python), owner="newlib")
        with pytest.raises(LambdaBuildError) as raised:
            audit_elf(tree)
        assert (
            f"newlib/libnew.so (from newlib) needs glibc 2.36, but python {python} x86_64 ({runtime}) has "
            in raised.value.problem
        )


@pytest.mark.network
def test_real_wheels_for_each_cpu(tmp_path_factory, tmp_path):
    """The compiled modules of native-app's real manylinux wheels, for both CPUs."""
    cache = session_cache(tmp_path_factory)
    for arch, machine in (("x86_64", "EM_X86_64"), ("arm64", "EM_AARCH64")):
        target = Target("3.11", arch)
        resolution = resolve(ROOT / "fixtures" / "native-app", target)
        root = tmp_path / arch
        files = []
        for dist in resolution.distributions:
            wheel = fetch_one(dist, cache, resolution.lock_path.parent)
            with zipfile.ZipFile(wheel) as archive:
                for name in archive.namelist():
                    if name.endswith(".so"):
                        archive.extract(name, root)
                        files.append(name)
        assert len(files) >= 3
        tree = StagedTree(root, target, (StagedDistribution("native", "1", "wheel", tuple(files)),))
        report = audit_elf(tree)
        assert {o.machine for o in report.objects} == {machine}
        assert all(o.glibc is None or o.glibc <= target.glibc for o in report.objects)
        other = Target("3.11", "arm64" if arch == "x86_64" else "x86_64")
        with pytest.raises(LambdaBuildError, match=f"is built for {machine}"):
            audit_elf(StagedTree(root, other, tree.distributions))


# --------------------------------------------------------------------------
# sizes


def test_sizes_by_distribution(tmp_path):
    a = StagedDistribution("big", "2.0", "wheel", ("big/a.bin", "big/gone.bin"))
    b = StagedDistribution("small", "1.0", "wheel", ("small/b.bin",))
    c = StagedDistribution("also-small", "1.0", "wheel", ("also/c.bin",))
    for name, size in (("big/a.bin", 3000), ("small/b.bin", 100), ("also/c.bin", 100)):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x" * size)
    tree = StagedTree(tmp_path, Target("3.11"), (b, a, c))
    # a stripped file (gone.bin) counts for nothing; ties are ordered by name
    assert sizes_by_distribution(tree) == [("big 2.0", 3000), ("also-small 1.0", 100), ("small 1.0", 100)]


LARGEST = [(f"dist{i} 1.0", (20 - i) * MB) for i in range(12)]


def test_check_sizes_within_limits_says_nothing():
    warnings = []
    check_sizes([SizeCheck("layer.zip", 50 * MB, 250 * MB)], max_zipped_mb=50, max_unzipped_mb=250,
                largest=LARGEST, mode="error", warn=warnings.append)
    assert warnings == []


def test_check_sizes_over_limits_shows_the_largest_ten():
    checks = [SizeCheck("layer.zip", 60 * MB, 100 * MB), SizeCheck("api.zip with layer.zip", MB, 300 * MB)]
    with pytest.raises(LambdaBuildError) as raised:
        check_sizes(checks, max_zipped_mb=50, max_unzipped_mb=250, largest=LARGEST, mode="error", warn=print)
    problem = raised.value.problem
    assert problem.startswith(
        "layer.zip is 60.0 MB zipped (limit 50 MB); api.zip with layer.zip unpacks to 300.0 MB (limit 250 MB)\n"
        "    largest distributions (unzipped):\n"
        "           20.0 MB  dist0 1.0\n"
    )
    assert "dist9 1.0" in problem and "dist10 1.0" not in problem
    assert "exclude-packages" in raised.value.fix and "S3" in raised.value.fix


def test_check_sizes_warn_and_off():
    warnings = []
    checks = [SizeCheck("x-fat.zip", 60 * MB, 10 * MB)]
    check_sizes(checks, max_zipped_mb=50, max_unzipped_mb=250, largest=LARGEST, mode="warn", warn=warnings.append)
    assert len(warnings) == 1 and warnings[0].startswith("warning: x-fat.zip is 60.0 MB zipped (limit 50 MB)")
    check_sizes(checks, max_zipped_mb=50, max_unzipped_mb=250, largest=LARGEST, mode="off", warn=warnings.append)
    assert len(warnings) == 1
