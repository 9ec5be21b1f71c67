"""``hatch-lambda inspect`` and ``verify`` fed zips and manifests made to hurt: bombs, escapes, damage.

Each zip is written byte by byte (helpers/zips.py) and given to the real
command in a subprocess with a TMPDIR of the test's own, whose size is sampled
while the command runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from hatch_lambda.runtime.interpreters import host_python

from helpers.projects import run_cli
from helpers.zips import DEFLATED, Member, deflated, deflated_zeros, raw_zip, stored, symlink

ELF = b"\x7fELF" + bytes(60)  # the first bytes of an ELF file: inspect unpacks these for its audit
FIX_ZIP = ("  fix: build it again (or copy it again: it may be truncated or damaged); hatch-lambda reads zips that "
           "are not encrypted, stored or deflated")
FIX_BOMB = "  fix: Lambda unpacks at most 250 MB: this is not a zip hatch-lambda built; build the artifact again"
FIX_MANIFEST = "  fix: build again to write a new manifest.json, or remove it (then give --python and --arch)"


def tree_bytes(directory: Path) -> int:
    total = 0
    for parent, _, files in os.walk(directory):
        for name in files:
            with contextlib.suppress(FileNotFoundError):  # removed while walking
                total += os.lstat(os.path.join(parent, name)).st_blocks * 512
    return total


def peak_bytes(directory: Path, action: Callable[[], object]) -> tuple[object, int]:
    """Run ``action`` while sampling the space used under ``directory``; its result and the peak seen."""
    done, peak = threading.Event(), [0]

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_bytes(directory))
            done.wait(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = action()
    finally:
        done.set()
        sampler.join()
    return result, max(peak[0], tree_bytes(directory))


def cli_in(tmpdir: Path, *args: object):
    """The real command with TMPDIR=tmpdir; the result and the most TMPDIR held while it ran."""
    tmpdir.mkdir(exist_ok=True)
    return peak_bytes(tmpdir, lambda: run_cli(*map(str, args), env={"TMPDIR": str(tmpdir)}))


def needs_host_python() -> None:
    if host_python("3.11", "x86_64") is None:
        pytest.skip("no python3.11 for x86_64 on this machine")


def error_lines(result) -> list[str]:
    assert "Traceback" not in result.stderr
    return result.stderr.splitlines()


# --------------------------------------------------------------------------
# 1. bombs: the cap is judged before anything is read


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """1 GiB of zeros in a 1 MB zip: one member, deflated 1000:1."""
    path = tmp_path_factory.mktemp("bomb") / "layer.zip"
    return raw_zip(path, [stored("python/ok.py", b"x = 1\n"), deflated_zeros("python/bomb.so", 2**30)])


@pytest.mark.parametrize("command", ["inspect", "verify"])
def test_a_zip_bomb_is_refused_before_anything_is_written(bomb, tmp_path, command):
    if command == "verify":
        needs_host_python()
    extra = ["--runner", "host"] if command == "verify" else []
    assert bomb.stat().st_size < 2 * 2**20
    result, peak = cli_in(tmp_path / "tmp", command, bomb, "--python", "3.11", *extra)
    assert result.returncode == 2
    assert error_lines(result) == [
        f"hatch-lambda: error: {bomb} would unpack to 1024 MB, more than Lambda's 250 MB limit (its largest "
        f"member: 'python/bomb.so', {2**30} bytes); refusing to unpack it",
        FIX_BOMB,
    ]
    assert peak < 2**20  # nothing of the bomb reached TMPDIR


def test_a_member_compressed_beyond_250_to_1_is_refused(tmp_path):
    """200 MB of zeros: under Lambda's limit in all, but no real file shrinks 1000 times."""
    path = raw_zip(tmp_path / "layer.zip", [deflated_zeros("python/bomb.so", 200 * 2**20)])
    size = zipfile.ZipFile(path).getinfo("python/bomb.so").compress_size
    result, peak = cli_in(tmp_path / "tmp", "inspect", path, "--python", "3.11")
    assert result.returncode == 2
    assert error_lines(result) == [
        f"hatch-lambda: error: {path} holds 'python/bomb.so', compressed {200 * 2**20 / size:.0f}:1 "
        f"({200 * 2**20} bytes from {size}), a zip bomb; refusing to unpack it",
        FIX_BOMB,
    ]
    assert peak < 2**20


def test_a_zip_declaring_more_than_250_mb_is_refused(tmp_path):
    """300 members of just under 1 MB each: none large enough for the ratio rule, 300 MB in all."""
    one = deflated_zeros("python/pkg/m000.bin", 2**20 - 1)
    members = [Member(f"python/pkg/m{n:03}.bin", one.data, one.size, one.crc, DEFLATED) for n in range(300)]
    path = raw_zip(tmp_path / "layer.zip", members)
    result, peak = cli_in(tmp_path / "tmp", "inspect", path, "--python", "3.11")
    assert result.returncode == 2
    assert error_lines(result) == [
        f"hatch-lambda: error: {path} would unpack to 300 MB, more than Lambda's 250 MB limit (its largest "
        f"member: 'python/pkg/m000.bin', {2**20 - 1} bytes); refusing to unpack it",
        FIX_BOMB,
    ]
    assert peak < 2**20


@pytest.mark.parametrize("command", ["inspect", "verify"])
def test_headers_that_lie_about_the_size_write_no_more_than_they_declare(tmp_path, command):
    """The directory says 1000 bytes; the data inflates to 300 MB. At most 1000 are written, then the CRC fails."""
    if command == "verify":
        needs_host_python()
    real = deflated_zeros("python/liar.so", 300 * 2**20)
    path = raw_zip(tmp_path / "layer.zip", [Member("python/liar.so", real.data, 1000, real.crc, DEFLATED)])
    extra = ["--runner", "host"] if command == "verify" else []
    result, peak = cli_in(tmp_path / "tmp", command, path, "--python", "3.11", *extra)
    assert result.returncode == 2
    assert error_lines(result) == [
        f"hatch-lambda: error: {path} is not a readable zip: Bad CRC-32 for file 'python/liar.so'", FIX_ZIP]
    assert peak < 2**20


# --------------------------------------------------------------------------
# 2. entries that would land outside: reported, never written


UNSAFE = {
    "python/../../escape.so": "climbs out of the zip's root with '..'",
    "python/..\\..\\backslash.so": "has a backslash, a path separator where the zip may be unpacked",
    "C:/drive.so": "starts with a drive letter",
    "python/out": "is a symbolic link to '../../../outside', outside the zip's root",
    "python/good/up": None,  # '../..': python/good/../.. is the root itself, inside
    "python/esc": "is a symbolic link to 'good/up/..', which leads outside the zip's root through another link",
}


def hostile_layer(path: Path, absolute: Path) -> Path:
    return raw_zip(path, [
        stored("python/good/__init__.py", b"VALUE = 1\n"),
        stored("python/good/native.so", ELF),
        stored("python/../../escape.so", ELF),
        stored("python/..\\..\\backslash.so", ELF),
        stored(f"{absolute}/absolute.so", ELF),
        stored("C:/drive.so", ELF),
        symlink("python/out", "../../../outside"),
        symlink("python/alias", "good"),  # inside: made, and imported as Lambda would
        symlink("python/good/up", "../.."),
        symlink("python/esc", "good/up/.."),
        stored("python/esc/through.so", ELF),
    ])


def expected_unsafe(absolute: Path) -> list[dict[str, str]]:
    out = [{"entry": name, "why": why} for name, why in UNSAFE.items() if why]
    out.insert(2, {"entry": f"{absolute}/absolute.so", "why": "is an absolute path"})
    out.append({"entry": "python/esc/through.so", "why": "lies under 'python/esc', an entry left out as unsafe"})
    return out


def test_inspect_reports_unsafe_entries_and_writes_none_of_them(tmp_path):
    tmpdir = tmp_path / "tmp"
    path = hostile_layer(tmp_path / "zips" / "layer.zip", tmp_path / "abs")
    result, _ = cli_in(tmpdir, "inspect", "--json", path, "--python", "3.11")
    assert result.returncode == 1, result.stderr
    [report] = json.loads(result.stdout)["artifacts"]
    assert report["unsafe_entries"] == expected_unsafe(tmp_path / "abs")
    assert report["files"] == 11  # the table still counts every entry
    # no escaping file was written anywhere
    assert report["audit"]["elf_objects"] == 0 and report["audit"]["findings"] == []
    assert not (tmp_path / "abs").exists() and os.listdir(tmpdir) == []
    assert {p.name for p in tmp_path.rglob("*.so")} == set()
    table = run_cli("inspect", path, "--python", "3.11")
    assert table.returncode == 1
    assert "  unsafe: 7 entries would land outside the zip's root; not extracted:" in table.stdout
    assert "    'python/../../escape.so': climbs out of the zip's root with '..'; not extracted" in table.stdout


def test_verify_reports_unsafe_entries_and_imports_the_rest(tmp_path):
    needs_host_python()
    tmpdir = tmp_path / "tmp"
    path = hostile_layer(tmp_path / "zips" / "layer.zip", tmp_path / "abs")
    # the manifest says it is a layer: unpacked under opt/, its python/ on sys.path
    (path.parent / "manifest.json").write_text(json.dumps(section(artifacts=[{"file": "layer.zip", "kind": "layer"}])))
    result, _ = cli_in(tmpdir, "verify", "--json", path, "--runner", "host")
    assert result.returncode == 1, result.stderr
    [data] = json.loads(result.stdout)["results"]
    assert data["unsafe_entries"] == expected_unsafe(tmp_path / "abs")
    assert data["modules"] == ["alias", "good"] and data["failures"] == {}  # the link inside was made
    assert not (tmp_path / "abs").exists() and os.listdir(tmpdir) == []
    assert {p.name for p in tmp_path.rglob("*.so")} == set()
    text = run_cli("verify", path, "--runner", "host")
    assert text.returncode == 1
    assert text.stdout.splitlines()[0].endswith("; 7 unsafe entries not extracted")
    lines = error_lines(text)
    assert lines[0] == "hatch-lambda: the zip holds unsafe entries:"
    assert "    layer.zip: unsafe entry 'python/../../escape.so': climbs out of the zip's root with '..'; " \
           "not extracted" in lines
    assert lines[-1].startswith("  fix: build the zip again: Lambda would unpack those entries outside")


# --------------------------------------------------------------------------
# 3 and 4. manifest.json: file names confined to its directory, its shape checked


def output_directory(tmp_path: Path, manifest: object) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    raw_zip(out / "layer.zip", [stored("python/good/__init__.py", b"")])
    raw_zip(tmp_path / "outside.zip", [stored("python/secret/__init__.py", b"")])
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    (out / "manifest.json").write_text(text)
    return out


def section(**changes: object) -> dict:
    return {"format": 1, "targets": {"lambda-layer": {"python": "3.11", "arch": "x86_64", **changes}}}


@pytest.mark.parametrize(("name", "key"), [
    ("../outside.zip", "artifacts[0].file"),
    ("/etc/passwd", "artifacts[0].file"),
    ("sub/layer.zip", "artifacts[0].file"),
    ("..\\outside.zip", "artifacts[0].file"),
    ("..", "artifacts[0].file"),
    ("../outside.zip", "layer.filename"),
    ("../outside.zip", "functions.app.filename"),
    ("../outside.zip", "incomplete"),
])
def test_a_manifest_naming_a_file_outside_its_directory_is_one_error(tmp_path, name, key):
    if key.startswith("artifacts"):
        manifest = section(artifacts=[{"file": name, "kind": "layer"}])
    elif key.startswith("layer"):
        manifest = section(artifacts=[{"file": "layer.zip", "kind": "layer"}], layer={"filename": name})
    elif key.startswith("functions"):
        manifest = section(artifacts=[{"file": "layer.zip", "kind": "layer"}], functions={"app": {"filename": name}})
    else:  # a build that did not finish names the files it was putting in place
        manifest = {"format": 1, "targets": {}, "incomplete": {"lambda-fat": ["app-fat.zip", name]}}
    where = "incomplete.lambda-fat[1]" if key == "incomplete" else f"targets.lambda-layer.{key}"
    out = output_directory(tmp_path, manifest)
    for args in (("inspect", out), ("inspect", out / "layer.zip"), ("verify", out)):
        result = run_cli(*args)
        assert result.returncode == 2
        assert error_lines(result) == [
            f"hatch-lambda: error: {out / 'manifest.json'}: {where} is {name!r}, not a file "
            "name in the manifest's directory",
            "  fix: a manifest names the zips beside it by their plain names: build again to write a new "
            "manifest.json, or correct the entry",
        ]


@pytest.mark.parametrize(("manifest", "what"), [
    ("{not json", "is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    ("[]", "is not a manifest hatch-lambda wrote: expected an object with a 'targets' object"),
    ({"format": 1}, "is not a manifest hatch-lambda wrote: expected an object with a 'targets' object"),
    ({"targets": "lambda-layer"}, "is not a manifest hatch-lambda wrote: expected an object with a 'targets' object"),
    ({"targets": {"lambda-layer": []}},
     "is not a manifest hatch-lambda wrote: targets.lambda-layer: expected an object, found a list"),
    (section(artifacts="layer.zip"),
     "is not a manifest hatch-lambda wrote: targets.lambda-layer.artifacts: expected a list, found the string "
     "'layer.zip'"),
    (section(artifacts=[{"kind": "layer"}]),
     "is not a manifest hatch-lambda wrote: targets.lambda-layer.artifacts[0]: the key 'file' is missing"),
    (section(artifacts=[{"file": 3}]),
     "is not a manifest hatch-lambda wrote: targets.lambda-layer.artifacts[0].file: expected a string, found the "
     "number 3"),
    (section(python=3.11),
     "is not a manifest hatch-lambda wrote: targets.lambda-layer.python: expected a string, found the number 3.11"),
    (section(contents={"pyyaml": {"modules": "yaml"}}),
     "is not a manifest hatch-lambda wrote: targets.lambda-layer.contents.pyyaml.modules: expected a list, found "
     "the string 'yaml'"),
    (section(stripped={"files": True}),
     "is not a manifest hatch-lambda wrote: targets.lambda-layer.stripped.files: expected a whole number, found "
     "the boolean true"),

    ({"targets": {}, "incomplete": ["lambda-layer"]},
     "is not a manifest hatch-lambda wrote: incomplete: expected an object of lists of file names"),
    ({"targets": {}, "incomplete": {"lambda-layer": "layer.zip"}},
     "is not a manifest hatch-lambda wrote: incomplete.lambda-layer: expected a list of file names"),
])
def test_a_malformed_manifest_is_one_error(tmp_path, manifest, what):
    out = output_directory(tmp_path, manifest)
    for args in (("inspect", out), ("inspect", "--json", out / "layer.zip"), ("verify", out)):
        result = run_cli(*args)
        assert result.returncode == 2
        assert error_lines(result) == [f"hatch-lambda: error: {out / 'manifest.json'} {what}", FIX_MANIFEST]


# --------------------------------------------------------------------------
# 5. damaged archives: exit 2, one message naming the zip


def good_layer(path: Path) -> Path:
    return raw_zip(path, [stored("python/good/__init__.py", b"VALUE = 1\n"),
                          deflated("python/good/data.txt", b"some data\n" * 100)])


def _truncated(path: Path) -> Path:
    data = good_layer(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _bad_crc(path: Path) -> Path:
    """One byte of a stored member changed; its headers still give the old CRC."""
    content = b"VALUE = 1\n"
    return raw_zip(path, [stored("python/good/__init__.py", b"VALUE = 2\n", crc=zlib.crc32(content))])


DAMAGE = {
    "not a zip": (lambda p: (p.write_text("just text\n"), p)[1], "File is not a zip file"),
    "truncated": (_truncated, "File is not a zip file"),
    "encrypted": (lambda p: raw_zip(p, [stored("python/good/__init__.py", b"\x00" * 22, flags=0x1)]),
                  "'python/good/__init__.py' is encrypted"),
    "bad CRC": (_bad_crc, "Bad CRC-32 for file 'python/good/__init__.py'"),
    "unsupported compression": (lambda p: raw_zip(p, [stored("python/good/__init__.py", b"x", method=99)]),
                                "'python/good/__init__.py' is compressed with method 99, not one of stored, "
                                "deflated, bzip2, lzma"),
    "damaged deflate data": (lambda p: raw_zip(p, [Member("python/good/__init__.py", b"\xff" * 40, 100, 0,
                                                          DEFLATED)]),
                             "Error -3 while decompressing data: invalid block type"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
@pytest.mark.parametrize("command", ["inspect", "verify"])
def test_a_damaged_zip_is_one_error_naming_it(tmp_path, case, command):
    if command == "verify":
        needs_host_python()
    make, what = DAMAGE[case]
    path = make(tmp_path / "layer.zip")
    extra = ["--runner", "host"] if command == "verify" else []
    result = run_cli(command, path, "--python", "3.11", *extra)
    assert result.returncode == 2, result.stdout + result.stderr
    assert error_lines(result) == [f"hatch-lambda: error: {path} is not a readable zip: {what}", FIX_ZIP]
