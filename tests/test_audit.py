"""Checks on a staged tree: hatch_lambda.assemble.audit (ELF CPU and glibc, size limits)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sysconfig
import zipfile
from pathlib import Path

import pytest

from hatch_lambda.assemble.audit import (
    MB,
    SizeCheck,
    audit_elf,
    check_sizes,
    sizes_by_distribution,
)
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.fetch.files import fetch_one
from hatch_lambda.lockfile.resolve import resolve
from hatch_lambda.packs.elf import elf_info, read_elf
from hatch_lambda.packs.unpack import StagedDistribution, StagedTree
from hatch_lambda.runtime.base_system import BASE_LIBRARIES
from hatch_lambda.runtime.target import Target

from helpers.builds import session_cache
from helpers.projects import ROOT

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
    _machine, glibc = read_elf(new_glibc_object)
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
    target = Target("3.11", arch)
    assert raised.value.problem == (
        f"the staged tree does not fit {target.describe()}:\n"
        f"    fakenative: pkg/libs/_wrong.so: found machine {found}, the runtime allows {expected} ({arch}); "
        f"fix: use fakenative's {target.machine} wheel (is arch set to the CPU you deploy to?), "
        'or build it in the Lambda image with installer = "docker"'
    )
    assert "exclude-packages" in raised.value.fix and 'audit = "warn"' in raised.value.fix


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
    for python, runtime in (("3.11", "2.26 at most (Amazon Linux 2)"), ("3.12", "2.34 at most (Amazon Linux 2023)")):
        tree = staged(tmp_path / python, {"newlib/libnew.so": data}, Target(python), owner="newlib")
        with pytest.raises(LambdaBuildError) as raised:
            audit_elf(tree)
        assert f"newlib: newlib/libnew.so: found GLIBC_2.36, the runtime allows GLIBC_{runtime}" in raised.value.problem
        assert "fix: pin a newlib release with a wheel for manylinux_" in raised.value.problem


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
        with pytest.raises(LambdaBuildError, match=f"found machine {machine}, the runtime allows"):
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
    assert "size-check" not in warnings[0]  # it is already set to "warn": no advice to set it
    check_sizes(checks, max_zipped_mb=50, max_unzipped_mb=250, largest=LARGEST, mode="off", warn=warnings.append)
    assert len(warnings) == 1


# --------------------------------------------------------------------------
# objects compiled here: glibc, libstdc++, DT_NEEDED


def compile_shared(directory: Path, name: str, source: str, *args: str, cxx: bool = False) -> Path:
    """``lib<name>.so`` compiled from ``source`` with this machine's gcc/g++ (skip when there is none)."""
    compiler = shutil.which("g++" if cxx else "gcc") or shutil.which("c++" if cxx else "cc")
    if not compiler:
        pytest.skip("needs a C/C++ compiler")
    directory.mkdir(parents=True, exist_ok=True)
    src = directory / (f"{name}.cc" if cxx else f"{name}.c")
    src.write_text(source)
    output = directory / f"lib{name}.so"
    result = subprocess.run([compiler, "-shared", "-fPIC", "-o", str(output), str(src), *args],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"this machine's toolchain cannot build it: {result.stderr.strip()}")
    return output


STATX = ("#define _GNU_SOURCE\n#include <fcntl.h>\n#include <sys/stat.h>\n"
         "int probe(const char *p) { struct statx st; return statx(AT_FDCWD, p, 0, STATX_SIZE, &st); }\n")
PTHREAD = ("#include <pthread.h>\nstatic void *run(void *a) { return a; }\n"
           "int start(void) { pthread_t t; return pthread_create(&t, 0, run, 0); }\n")


@pytest.mark.parametrize(("source", "symbol"), [(STATX, "GLIBC_2.28"), (PTHREAD, "GLIBC_2.34")],
                         ids=["statx-2.28", "pthread_create-2.34"])
def test_glibc_symbol_newer_than_amazon_linux_2_is_named(tmp_path, source, symbol):
    """Compiled here against glibc 2.36: refused for python 3.11 (glibc 2.26), fine for 3.12 (2.34)."""
    library = compile_shared(tmp_path / "src", "probe", source)
    if f"{read_elf(library)[1][0]}.{read_elf(library)[1][1]}" != symbol.removeprefix("GLIBC_"):
        pytest.skip(f"this machine's glibc does not version the call {symbol} (older than 2.34?)")
    data = library.read_bytes()
    tree = staged(tmp_path / "311", {"probe/libprobe.so": data}, Target("3.11"), owner="probe")
    with pytest.raises(LambdaBuildError) as raised:
        audit_elf(tree)
    assert raised.value.problem.splitlines()[1] == (
        f"    probe: probe/libprobe.so: found {symbol}, the runtime allows GLIBC_2.26 at most (Amazon Linux 2); "
        'fix: pin a probe release with a wheel for manylinux_2_26 or older, '
        'or build it in the Lambda image with installer = "docker"'
    )
    report = audit_elf(staged(tmp_path / "312", {"probe/libprobe.so": data}, Target("3.12"), owner="probe"))
    assert report.findings == [] and report.objects[0].glibc <= (2, 34)


CXX17 = ('#include <filesystem>\n#include <string>\n'
         'extern "C" int length(const char *p) { std::filesystem::path x(p); return (int)x.string().size(); }\n')


def test_libstdcxx_symbol_versions_against_the_runtimes(tmp_path):
    """std::filesystem from GCC 12 needs GLIBCXX_3.4.26: more than Amazon Linux 2's GCC 7 libstdc++ has."""
    library = compile_shared(tmp_path / "src", "paths", CXX17, "-std=c++17", cxx=True)
    info = elf_info(library)
    assert info.cxx["GLIBCXX"] >= (3, 4, 26) and "libstdc++.so.6" in info.needed
    data = library.read_bytes()
    tree = staged(tmp_path / "311", {"paths/libpaths.so": data}, Target("3.11"), owner="paths")
    with pytest.raises(LambdaBuildError) as raised:
        audit_elf(tree)
    found = ".".join(map(str, info.cxx["GLIBCXX"]))
    assert (
        f"paths: paths/libpaths.so: found GLIBCXX_{found}, the runtime allows GLIBCXX_3.4.24 at most "
        "(libstdc++ of Amazon Linux 2); fix: pin a paths release built with an older compiler"
    ) in raised.value.problem
    # Amazon Linux 2023's GCC 11 libstdc++ has GLIBCXX_3.4.29
    assert audit_elf(staged(tmp_path / "312", {"paths/libpaths.so": data}, Target("3.12"))).findings == []
    # a libstdc++ shipped in the artifact brings its own symbol versions
    system = Path(subprocess.run(["g++", "-print-file-name=libstdc++.so.6"], capture_output=True,
                                 text=True).stdout.strip())
    bundled = staged(tmp_path / "bundled", {"paths/libpaths.so": data, "paths.libs/libstdc++.so.6":
                                            system.read_bytes()}, Target("3.11"))
    # (this machine's libstdc++ itself needs a newer glibc: that is still reported)
    found = [f.found for f in audit_elf(bundled, "warn", lambda _: None).findings]
    assert found and not [f for f in found if f.startswith(("GLIBCXX", "CXXABI"))]


def test_needed_library_must_be_in_the_artifact_or_the_base_system(tmp_path):
    helper = compile_shared(tmp_path / "helper", "helper", "int helper(void) { return 42; }\n")
    user = compile_shared(tmp_path / "user", "user",
                          "#include <zlib.h>\nint helper(void);\n"
                          "int use(void) { return helper() + (int)zlibVersion()[0]; }\n",
                          f"-L{helper.parent}", "-lhelper", "-lz")
    assert {"libhelper.so", "libz.so.1"} <= set(elf_info(user).needed)
    # the helper beside it (anywhere in the tree): fine; libz is in the base system
    tree = staged(tmp_path / "with", {"usr_pkg/libuser.so": user.read_bytes(),
                                      "usr_pkg.libs/libhelper.so": helper.read_bytes()}, Target("3.12"), "usr-pkg")
    assert audit_elf(tree).findings == []
    # without it: one line naming the library and what to do
    tree = staged(tmp_path / "without", {"usr_pkg/libuser.so": user.read_bytes()}, Target("3.12"), "usr-pkg")
    with pytest.raises(LambdaBuildError) as raised:
        audit_elf(tree)
    assert raised.value.problem.splitlines()[1:] == [
        "    usr-pkg: usr_pkg/libuser.so: found DT_NEEDED libhelper.so, which is not in the artifact, "
        "the runtime allows libraries in the artifact or in its base system (glibc, libgcc_s, libstdc++, libz, "
        "libexpat); fix: use a usr-pkg wheel that bundles libhelper.so (auditwheel repair), ship libhelper.so "
        "in the artifact or another layer, or leave usr-pkg out with exclude-packages"
    ]


def test_base_system_list_is_glibc_and_gcc_runtime_without_desktop_libraries():
    assert {"libc.so.6", "libm.so.6", "libpthread.so.0", "libstdc++.so.6", "libgcc_s.so.1", "libz.so.1"} <= (
        BASE_LIBRARIES)
    assert not {"libGL.so.1", "libX11.so.6", "libglib-2.0.so.0", "libssl.so.3"} & BASE_LIBRARIES


# --------------------------------------------------------------------------
# extension module suffixes


def host_extension() -> Path:
    """A real CPython 3.12 x86_64/aarch64 extension module from an interpreter on this machine."""
    from hatch_lambda.runtime.interpreters import host_python

    python = host_python("3.12")
    if python is None:
        pytest.skip("no python3.12 on this machine")
    out = subprocess.run([python, "-I", "-S", "-c", "import _bisect; print(_bisect.__file__)"],
                         capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip().endswith(".so"):
        pytest.skip("this python3.12 has _bisect built in")
    return Path(out.stdout.strip())


def test_extension_suffix_must_fit_the_runtime(tmp_path):
    import platform

    module = host_extension()
    machine = platform.machine()
    arch = {"x86_64": "x86_64", "aarch64": "arm64"}[machine]
    data = module.read_bytes()
    name = f"_bisect.cpython-312-{machine}-linux-gnu.so"
    assert module.name == name
    good = {f"fine/{name}": data, "fine/_b.abi3.so": data, "fine/_c.so": data, f"fine/libx.so.{machine}.1": data}
    assert audit_elf(staged(tmp_path / "ok", good, Target("3.12", arch))).findings == []
    tree = staged(tmp_path / "bad", {f"wrong/{name}": data}, Target("3.13", arch), owner="wrong")
    with pytest.raises(LambdaBuildError) as raised:
        audit_elf(tree)
    assert raised.value.problem.splitlines()[1] == (
        f"    wrong: wrong/{name}: found extension suffix .cpython-312-{machine}-linux-gnu.so, the runtime allows "
        f".cpython-313-{machine}-linux-gnu.so, .abi3.so or .so; fix: use wrong's wheel for python 3.13 "
        '(is python set to the runtime you deploy to?), or build it in the Lambda image with installer = "docker"'
    )


# --------------------------------------------------------------------------
# audit = "warn" / "off"


def test_audit_modes(tmp_path):
    tree = staged(tmp_path, {"pkg/_m.so": elf_header(EM_AARCH64)}, Target("3.11"))
    warnings = []
    report = audit_elf(tree, "warn", warnings.append)
    assert len(report.findings) == 1
    assert warnings == [f"warning: the staged tree does not fit {Target('3.11').describe()}:\n    "
                        + report.findings[0].line]
    assert audit_elf(tree, "off", warnings.append).findings == [] and len(warnings) == 1


def test_packed_relative_relocations_need_glibc_2_36(tmp_path):
    """Linked with -z pack-relative-relocs: the object needs GLIBC_ABI_DT_RELR, which only glibc 2.36 loads."""
    source = ('#include <stdio.h>\nstatic const char *names[] = {"a", "b", "c"};\n'
              'const char *pick(int i) { printf("%d\\n", i); return names[i]; }\n')
    library = compile_shared(tmp_path / "src", "relr", source, "-Wl,-z,pack-relative-relocs")
    info = elf_info(library)
    if not info.relr:
        pytest.skip("this linker does not pack relative relocations")
    assert info.glibc == (2, 36)
    tree = staged(tmp_path / "t", {"relr/librelr.so": library.read_bytes()}, Target("3.13"), owner="relr")
    with pytest.raises(LambdaBuildError) as raised:
        audit_elf(tree)
    assert ("relr: relr/librelr.so: found GLIBC_ABI_DT_RELR (glibc 2.36), the runtime allows GLIBC_2.34 at most "
            "(Amazon Linux 2023)") in raised.value.problem


@pytest.mark.network
@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
@pytest.mark.parametrize("fixture", ["native-app", "spectra-demo"])
def test_every_compiled_wheel_of_the_fixtures_passes(tmp_path_factory, tmp_path, fixture, arch):
    """The real platform wheels the fixtures' locks pick, unpacked together and audited for their runtime."""
    cache = session_cache(tmp_path_factory)
    python = "3.12" if fixture == "spectra-demo" else "3.11"
    target = Target(python, arch)
    resolution = resolve(ROOT / "fixtures" / fixture, target)
    dists = []
    for dist in resolution.distributions:
        if dist.file is None or not dist.file.filename.endswith(".whl") or dist.file.filename.endswith("-any.whl"):
            continue
        wheel = fetch_one(dist, cache, resolution.lock_path.parent)
        with zipfile.ZipFile(wheel) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/") and ".data/" not in n]
            archive.extractall(tmp_path, names)
        dists.append(StagedDistribution(dist.name, dist.version, "wheel", tuple(names)))
    tree = StagedTree(tmp_path, target, tuple(dists))
    report = audit_elf(tree)
    assert report.findings == []
    assert len(report.objects) >= 3
    assert {o.machine for o in report.objects} == {"EM_X86_64" if arch == "x86_64" else "EM_AARCH64"}
