"""Reproducible zips: hatch_lambda.assemble.archive."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import deflate
import pytest

from hatch_lambda.assemble.archive import directories, write_zip
from hatch_lambda.packs.deflate import (
    COMPRESSION_LEVEL,
    MAX_LEVEL,
    STORE_BELOW,
    Entry,
    compress_bytes,
    tree_entries,
)

from helpers.builds import assert_zip_is_normalised, b64_of_hex, sha256_file

DEFAULT_DATE = (2020, 2, 2, 0, 0, 0)  # hatchling's default SOURCE_DATE_EPOCH, 1580601600


@pytest.fixture(autouse=True)
def no_epoch(monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)


def make_tree(root: Path, *, modes: bool = True) -> Path:
    files = {
        "pkg/__init__.py": b"from .core import answer\n",
        "pkg/core.py": b"def answer():\n    return 42\n" * 50,
        "pkg/data/blob.bin": bytes(range(256)) * 64,
        "pkg/bin/tool": b"#!/bin/sh\necho tool\n",
        "pkg/empty.txt": b"",
        "pkg/sub/deeper/leaf.txt": "données é\n".encode(),
        "top.py": b"x = 1\n",
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o644)
    if modes:
        (root / "pkg/bin/tool").chmod(0o700)  # owner-executable only
        (root / "pkg/core.py").chmod(0o600)  # private
        (root / "top.py").chmod(0o744)
    return root


def test_tree_entries_lists_every_file_with_prefix(tmp_path):
    root = make_tree(tmp_path / "tree")
    (root / "pkg" / "empty-dir").mkdir()
    entries = tree_entries(root, "python/")
    names = sorted(e.name for e in entries)
    assert names == [
        "python/pkg/__init__.py",
        "python/pkg/bin/tool",
        "python/pkg/core.py",
        "python/pkg/data/blob.bin",
        "python/pkg/empty.txt",
        "python/pkg/sub/deeper/leaf.txt",
        "python/top.py",
    ]
    for entry in entries:
        assert entry.source == root / entry.name.removeprefix("python/")
    assert sorted(e.name for e in tree_entries(root)) == [n.removeprefix("python/") for n in names]


def test_directories_of_names():
    assert directories(["a/b/c.txt", "a/d.txt", "e.txt"]) == {"a/", "a/b/"}
    assert directories([]) == set()


def test_write_zip_is_sorted_normalised_and_described(tmp_path):
    root = make_tree(tmp_path / "tree")
    entries = list(reversed(tree_entries(root, "python/")))
    written = write_zip(entries, tmp_path / "out.zip")
    assert_zip_is_normalised(written.path, date_time=DEFAULT_DATE)
    with zipfile.ZipFile(written.path) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        for entry in entries:
            assert archive.read(entry.name) == entry.source.read_bytes()
    assert sorted(infos) == list(infos)
    modes = {name: (info.external_attr >> 16) for name, info in infos.items()}
    assert modes["python/"] == stat.S_IFDIR | 0o755
    assert modes["python/pkg/sub/deeper/"] == stat.S_IFDIR | 0o755
    assert modes["python/pkg/bin/tool"] == stat.S_IFREG | 0o755
    assert modes["python/top.py"] == stat.S_IFREG | 0o755
    assert modes["python/pkg/core.py"] == stat.S_IFREG | 0o644
    assert modes["python/pkg/__init__.py"] == stat.S_IFREG | 0o644
    assert infos["python/pkg/core.py"].compress_type == zipfile.ZIP_DEFLATED
    assert "python/pkg/sub/deeper/leaf.txt" in infos  # a non-ASCII file's name is fine too
    files = [e for e in entries]
    assert written.entries == len(infos) == len(files) + len(directories(e.name for e in files))
    assert written.unzipped == sum(e.source.stat().st_size for e in files)
    assert written.zipped == written.path.stat().st_size
    assert written.sha256 == sha256_file(written.path)
    assert written.sha256_base64 == b64_of_hex(written.sha256)


def test_write_zip_same_content_same_bytes(tmp_path):
    """Different directories, mtimes, permission bits and entry order: the same zip."""
    one = make_tree(tmp_path / "one", modes=False)
    two = make_tree(tmp_path / "two" / "deeper" / "still", modes=False)
    for path in two.rglob("*"):
        os.utime(path, (1_234_567_890, 1_234_567_890))
        if path.is_file():
            path.chmod(0o664)
    first = write_zip(tree_entries(one), tmp_path / "1.zip")
    second = write_zip(list(reversed(tree_entries(two))), tmp_path / "2.zip")
    assert first.sha256 == second.sha256
    assert first.path.read_bytes() == second.path.read_bytes()
    # and the permission bits that matter do change the bytes
    (two / "pkg" / "core.py").chmod(0o755)
    third = write_zip(tree_entries(two), tmp_path / "3.zip")
    assert third.sha256 != first.sha256


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        ("1700000000", (2023, 11, 14, 22, 13, 20)),
        ("0", (1980, 1, 1, 0, 0, 0)),  # zip cannot hold dates before 1980
        ("315532800", (1980, 1, 1, 0, 0, 0)),
    ],
)
def test_source_date_epoch(tmp_path, monkeypatch, epoch, expected):
    root = make_tree(tmp_path / "tree")
    default = write_zip(tree_entries(root), tmp_path / "default.zip")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
    written = write_zip(tree_entries(root), tmp_path / "epoch.zip")
    assert_zip_is_normalised(written.path, date_time=expected)
    assert written.sha256 != default.sha256


def test_later_entry_wins(tmp_path):
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("layer")
    second.write_text("function")
    written = write_zip([Entry("a/x.txt", first), Entry("b.txt", first), Entry("a/x.txt", second)],
                        tmp_path / "out.zip")
    with zipfile.ZipFile(written.path) as archive:
        assert archive.namelist() == ["a/", "a/x.txt", "b.txt"]
        assert archive.read("a/x.txt") == b"function"
    assert written.unzipped == len("function") + len("layer")


def test_incompressible_data_is_stored_and_still_exact(tmp_path):
    noise = tmp_path / "noise.bin"
    noise.write_bytes(os.urandom(50_000))
    text = tmp_path / "text.txt"
    text.write_bytes(b"abc" * 10_000)
    written = write_zip([Entry("noise.bin", noise), Entry("text.txt", text)], tmp_path / "out.zip")
    with zipfile.ZipFile(written.path) as archive:
        infos = {i.filename: i for i in archive.infolist()}
        assert archive.testzip() is None
        assert archive.read("noise.bin") == noise.read_bytes()
    assert infos["noise.bin"].compress_type == zipfile.ZIP_STORED
    assert infos["noise.bin"].compress_size == 50_000
    assert infos["text.txt"].compress_type == zipfile.ZIP_DEFLATED
    assert infos["text.txt"].compress_size < 1000


def test_an_entry_that_barely_deflates_is_stored(tmp_path):
    """Deflating that saves under STORE_BELOW is not worth an inflate on every unzip: such a file is stored."""
    raw = os.urandom(97_500) + b"a" * 2_500  # deflates by about 2.5 %
    almost = tmp_path / "almost.bin"
    almost.write_bytes(raw)
    deflated = compress_bytes(raw)
    assert deflated.method == zipfile.ZIP_STORED and deflated.data == raw
    saving = 1 - len(deflate.deflate_compress(raw, COMPRESSION_LEVEL)) / len(raw)
    assert 0 < saving < STORE_BELOW
    better = raw + b"a" * 6_000
    assert compress_bytes(better).method == zipfile.ZIP_DEFLATED
    written = write_zip([Entry("almost.bin", almost)], tmp_path / "out.zip")
    with zipfile.ZipFile(written.path) as archive:
        assert archive.getinfo("almost.bin").compress_type == zipfile.ZIP_STORED
        assert archive.read("almost.bin") == raw


@pytest.mark.parametrize("level", [1, COMPRESSION_LEVEL, 9, MAX_LEVEL])
def test_every_level_round_trips(tmp_path, level):
    root = make_tree(tmp_path / "tree")
    written = write_zip(tree_entries(root), tmp_path / "out.zip", level=level)
    with zipfile.ZipFile(written.path) as archive:
        assert archive.testzip() is None
        for entry in tree_entries(root):
            assert archive.read(entry.name) == entry.source.read_bytes()


def test_shared_cache_gives_the_same_bytes(tmp_path):
    root = make_tree(tmp_path / "tree")
    cache: dict = {}
    entries = tree_entries(root)
    with_cache = write_zip(entries, tmp_path / "a.zip", cache=cache)
    assert set(cache) == {e.source for e in entries}
    again = write_zip(entries, tmp_path / "b.zip", cache=cache)
    without = write_zip(entries, tmp_path / "c.zip")
    assert with_cache.sha256 == again.sha256 == without.sha256


@pytest.mark.skipif(not shutil.which("unzip"), reason="needs Info-ZIP's unzip")
def test_info_zip_reads_it(tmp_path):
    """Lambda unpacks with its own tools, not Python's zipfile: Info-ZIP must agree."""
    root = make_tree(tmp_path / "tree")
    written = write_zip(tree_entries(root, "python/"), tmp_path / "out.zip")
    tested = subprocess.run(["unzip", "-t", str(written.path)], capture_output=True, text=True)
    assert tested.returncode == 0 and "No errors detected" in tested.stdout, tested.stdout + tested.stderr
    target = tmp_path / "unzipped"
    subprocess.run(["unzip", "-q", str(written.path), "-d", str(target)], check=True)
    for entry in tree_entries(root):
        unpacked = target / "python" / entry.name
        assert hashlib.sha256(unpacked.read_bytes()).digest() == hashlib.sha256(entry.source.read_bytes()).digest()
    assert os.access(target / "python" / "pkg" / "bin" / "tool", os.X_OK)
    assert stat.S_IMODE((target / "python" / "pkg" / "core.py").stat().st_mode) == 0o644


CROSS_ARCH_SCRIPT = """
import hashlib, sys
from pathlib import Path
sys.path.insert(0, "/opt/deflate")
import deflate
for path in sorted(Path("/mnt/inputs").iterdir()):
    raw = path.read_bytes()
    for level in (1, 6, 9, 12):
        print(path.name, level, hashlib.sha256(deflate.deflate_compress(raw, level)).hexdigest())
"""


def test_the_encoder_gives_the_same_bytes_on_arm64(arm64_rootfs, tmp_path):
    """Packs are byte-reproducible across machines: the bundled libdeflate deflates alike on aarch64 and x86_64."""
    from hatch_lambda.packs import deflate as ours

    from helpers import engine
    from helpers.projects import pip_download

    version = deflate.__version__
    pip_download(f"deflate=={version}", tmp_path / "wheel", "--platform", "manylinux2014_aarch64",
                 "--python-version", "3.11")
    unpacked = tmp_path / "deflate"
    with zipfile.ZipFile(next((tmp_path / "wheel").glob("deflate-*.whl"))) as wheel:
        wheel.extractall(unpacked)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    # Real inputs of each kind a layer holds: an aarch64 shared object, Python source, and a zip's stored data.
    shutil.copyfile(next(unpacked.glob("deflate/_deflate*.so")), inputs / "aarch64.so")
    (inputs / "sources.py").write_bytes(b"".join(p.read_bytes() for p in sorted(Path(ours.__file__).parent.glob("*.py"))))
    (inputs / "mixed.bin").write_bytes(hashlib.sha256(b"seed").digest() * 4096 + b"text " * 50_000)
    ran = engine.run_in_rootfs(arm64_rootfs, ["/usr/bin/python3.11", "-c", CROSS_ARCH_SCRIPT],
                               binds={unpacked: "/opt/deflate", inputs: "/mnt/inputs"}, check=True)
    here = [f"{path.name} {level} {hashlib.sha256(deflate.deflate_compress(path.read_bytes(), level)).hexdigest()}"
            for path in sorted(inputs.iterdir()) for level in (1, 6, 9, 12)]
    assert ran.stdout.split("\n")[:-1] == here
    machine = engine.run_in_rootfs(arm64_rootfs, ["/usr/bin/python3.11", "-c", "import platform; print(platform.machine())"],
                                   check=True)
    assert machine.stdout.strip() == "aarch64"


def _collecting(frame) -> bool:
    """Whether ``frame`` runs for the garbage collector (an earlier round's archive finalised): not the writer's."""
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_an_interrupt_at_any_line_of_writing_a_zip_stays_an_interrupt(tmp_path):
    """Ctrl-C can land between any two lines of Python: at each line the zip writer and zipfile run once the
    archive exists (a trace function raises KeyboardInterrupt there, as a signal handler would), the
    KeyboardInterrupt is what comes out (the build turns it into exit 130 and one line), never zipfile's
    ValueError about an entry's handle left open, and nothing complains later when the archive is collected.
    (Inside ZipFile's constructor, a half-made object complains when collected; that is zipfile's own.)"""
    import gc
    import sys

    root = make_tree(tmp_path / "tree")
    entries = tree_entries(root)
    watched = {str(Path(zipfile.__file__)), str(Path(sys.modules[write_zip.__module__].__file__))}
    at = 0
    while True:
        at += 1
        seen = 0

        def trace(frame, event, arg, at=at):
            nonlocal seen
            code = frame.f_code
            if code.co_filename not in watched or code.co_qualname == "ZipFile.__init__" or _collecting(frame):
                return None
            if event == "line":
                seen += 1
                if seen == at:
                    raise KeyboardInterrupt
            return trace

        sys.settrace(trace)
        try:
            write_zip(entries, tmp_path / f"out-{at}.zip")
        except KeyboardInterrupt:
            pass
        else:
            break  # every line of a whole zip has had its interrupt
        finally:
            sys.settrace(None)
        gc.collect()
    assert at > 100
