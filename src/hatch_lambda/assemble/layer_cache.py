"""Finished dependency zips (``layer.zip``) in the cache, so a code-only rebuild does not touch them.

The key names every pack the zip is made of (each pack's key already names its
wheel's sha256, the target, the strip rules, the compression level and
hatch-lambda's version), the path prefix inside the zip and the timestamp of
its entries. The entry stores the zip and what the manifest, the audit and
the size checks need (digest, sizes, entry count, stripping report, largest
distributions, the audit's findings, each distribution's contents), so a hit
reads none of the dependencies. A hit is
copied into the build, never hard-linked: a hard link would make every
project's ``layer.zip`` one file, so changing one in place would change the
cache and the others. The copy is a reflink where the file system has them
(``FICLONE``: btrfs, XFS; no bytes written), else made in the kernel
(``sendfile``). The entry's seal vouches for what it records, and the copy is
checked against the sha256 recorded (a size or a modification time can be
forged by whoever writes the cache); an entry that fails is discarded and the
layer assembled again.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from hatch_lambda.assemble.archive import WrittenZip, zip_date_time
from hatch_lambda.assemble.audit import Finding
from hatch_lambda.cache.entry import Entry
from hatch_lambda.cache.store import (
    key_of,
    locked,
)
from hatch_lambda.hashing import file_sha256
from hatch_lambda.packs.contents import DistributionContents
from hatch_lambda.packs.strip import PruneReport

fcntl: ModuleType | None = None
if sys.platform == "linux":
    import fcntl as _fcntl

    fcntl = _fcntl

ZIP = "layer.zip"
META = "meta.json"
#: Linux's ioctl that makes a file share another's blocks (a reflink), _IOW(0x94, 9, int).
FICLONE = 0x40049409


@dataclass(frozen=True)
class CachedLayer:
    written: WrittenZip
    pruned: PruneReport
    largest: list[tuple[str, int]]  # (distribution, bytes), largest first
    findings: tuple[Finding, ...]  # the audit's, whatever the audit mode
    contents: dict[str, DistributionContents]  # the manifest's, by distribution


def layer_key(pack_keys: list[str], prefix: str) -> str:
    return key_of({"kind": "layer", "packs": pack_keys, "prefix": prefix, "date_time": list(zip_date_time())})


def fetch_layer(cache: Path, key: str, destination: Path) -> CachedLayer | None:
    """Copy the cached zip for ``key`` to ``destination`` and check it; None on a miss.

    The entry's seal vouches for its meta.json, and the copy must have the
    sha256 meta.json records: a size and a modification time can be forged by
    whoever can write the cache, a digest cannot.
    """

    def place(directory: Path) -> CachedLayer | None:
        try:
            meta = json.loads((directory / META).read_text())
            if meta.get("key") != key:
                return None
            if (directory / ZIP).stat().st_size != meta["zipped"]:
                raise ValueError("changed since it was stored")
            copy_file(directory / ZIP, destination)
            if file_sha256(destination) != meta["sha256"]:
                raise ValueError("changed since it was stored")
            written = WrittenZip(destination, meta["entries"], meta["zipped"], meta["unzipped"], meta["sha256"])
            return CachedLayer(written, PruneReport(**meta["pruned"]), [(n, size) for n, size in meta["largest"]],
                               tuple(Finding.from_dict(item) for item in meta["findings"]),
                               {name: DistributionContents.from_json(info) for name, info in meta["contents"].items()})
        except (OSError, KeyError, TypeError, ValueError):
            destination.unlink(missing_ok=True)
            return None

    return Entry(cache, "layers", key, META).read(place)


def copy_file(source: Path, destination: Path) -> None:
    """``source``'s bytes as the new file ``destination``, never a hard link: a reflink where the file system
    has them, else a copy made in the kernel (``shutil.copyfile`` uses ``sendfile`` on Linux)."""
    if fcntl is not None:
        with source.open("rb") as src, destination.open("wb") as dst:
            try:
                fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
                return
            except OSError:  # not on this file system (ext4, tmpfs), or across file systems
                pass
    shutil.copyfile(source, destination)


def store_layer(cache: Path, key: str, layer: CachedLayer) -> None:
    """Keep a copy of a freshly written layer zip (a cache entry, written once)."""

    def fill(temporary: Path) -> None:
        copy_file(layer.written.path, temporary / ZIP)
        if file_sha256(temporary / ZIP) != layer.written.sha256:
            raise OSError(f"copying {layer.written.path} into the cache changed it")
        meta = {
            "key": key,
            "sha256": layer.written.sha256,
            "zipped": layer.written.zipped,
            "mtime_ns": (temporary / ZIP).stat().st_mtime_ns,
            "entries": layer.written.entries,
            "unzipped": layer.written.unzipped,
            "pruned": layer.pruned.as_dict(),
            "largest": layer.largest,
            "findings": [finding.as_dict() for finding in layer.findings],
            "contents": {name: info.to_json() for name, info in layer.contents.items()},
        }
        (temporary / META).write_text(json.dumps(meta))

    entry = Entry(cache, "layers", key, META)
    with locked(entry.path):
        if not (entry.path / META).is_file():
            entry.write(fill)
