"""Finished dependency zips (``layer.zip``) in the cache, so a code-only rebuild does not touch them.

The key names every pack the zip is made of (each pack's key already names its
wheel's sha256, the target, the strip rules, the compression level and
hatch-lambda's version), the path prefix inside the zip and the timestamp of
its entries. The entry stores the zip and what the manifest, the audit and
the size checks need (digest, sizes, entry count, stripping report, largest
distributions, the audit's findings, each distribution's contents), so a hit
reads none of the dependencies and does not hash the zip again. A hit is
hard-linked into the build (copied across file systems) and checked; an
entry that fails is discarded and the layer assembled again.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

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

ZIP = "layer.zip"
META = "meta.json"


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
    """Place the cached zip for ``key`` at ``destination`` and check it; None on a miss.

    The zip is hard-linked when the cache is on the same file system (no bytes
    read or written) and checked by its size and modification time, which any
    rewrite of either name changes; a copy is checked by its sha256.
    """

    def place(directory: Path) -> CachedLayer | None:
        try:
            meta = json.loads((directory / META).read_text())
            if meta.get("key") != key:
                return None
            try:
                os.link(directory / ZIP, destination)
                linked = True
            except OSError:
                shutil.copyfile(directory / ZIP, destination)
                linked = False
            if linked:
                status = destination.stat()
                if status.st_size != meta["zipped"] or status.st_mtime_ns != meta["mtime_ns"]:
                    raise ValueError("changed since it was stored")
            elif file_sha256(destination) != meta["sha256"]:
                raise ValueError("damaged")
            written = WrittenZip(destination, meta["entries"], meta["zipped"], meta["unzipped"], meta["sha256"])
            return CachedLayer(written, PruneReport(**meta["pruned"]), [(n, size) for n, size in meta["largest"]],
                               tuple(Finding.from_dict(item) for item in meta["findings"]),
                               {name: DistributionContents.from_json(info) for name, info in meta["contents"].items()})
        except (OSError, KeyError, TypeError, ValueError):
            destination.unlink(missing_ok=True)
            return None

    return Entry(cache, "layers", key, META).read(place)


def store_layer(cache: Path, key: str, layer: CachedLayer) -> None:
    """Keep a copy of a freshly written layer zip (a cache entry, written once)."""

    def fill(temporary: Path) -> None:
        shutil.copyfile(layer.written.path, temporary / ZIP)
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
