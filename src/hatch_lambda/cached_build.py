"""Zips assembled from the cache: packs of deflated files per distribution, and whole layers.

Used when every distribution is a wheel downloaded by digest (see
:func:`.packs.eligible`); the output is byte-identical to the full build of
:mod:`.pipeline`, which stages one tree and deflates it all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .archive import Entry, WrittenZip, compress_entries, write_compressed, write_zip
from .audit import AuditReport, SizeCheck
from .config import LAYER, LambdaConfig
from .layer_cache import CachedLayer, fetch_layer, layer_key, store_layer
from .closures import Plan
from .lock import Resolution
from .packs import Pack, audit_packs, check_overlap, merge, pack_key, packs_for, pruned_total
from .prune import PruneReport

Log = Callable[[str], None]


@dataclass(frozen=True)
class Zips:
    """A target's zips, written into the build's scratch directory, and what was found making them."""

    written: list[WrittenZip]
    checks: list[SizeCheck]
    largest: list[tuple[str, int]]  # (distribution, bytes), largest first
    pruned: PruneReport
    audit: AuditReport  # findings whatever the audit mode; the caller enforces the mode
    contents: dict[str, dict]  # the manifest's, by distribution


def cached_zips(
    config: LambdaConfig,
    closures: Plan,
    function_files: dict[str, list[Entry]],
    scratch: Path,
    cache: Path,
    log: Log,
) -> Zips:
    resolution = closures.resolution
    dists = sorted(resolution.distributions, key=lambda d: d.name)
    written: list[WrittenZip] = []
    checks: list[SizeCheck] = []
    if config.kind == LAYER:
        key = layer_key([pack_key(config, d) for d in dists], config.layer_prefix)
        layer = fetch_layer(cache, key, scratch / "layer.zip")
        if layer is not None:
            log("  layer.zip: dependencies unchanged, reused from the cache")
        else:
            packs = _packs(config, resolution, cache, scratch, log)
            zipped = write_compressed(merge(packs, config.layer_prefix), scratch / "layer.zip")
            audit = audit_packs(packs, config.target)
            layer = CachedLayer(zipped, pruned_total(packs), _largest(packs), tuple(audit.findings),
                                _contents(packs))
            store_layer(cache, key, layer)
        written.append(layer.written)
        checks.append(SizeCheck("layer.zip", layer.written.zipped, layer.written.unzipped))
        for name, entries in sorted(function_files.items()):
            code = write_zip(entries, scratch / f"{name}.zip", level=config.compression_level)
            written.append(code)
            # Lambda's unzipped limit covers the function and its layers together.
            checks.append(SizeCheck(f"{name}.zip with layer.zip", code.zipped, code.unzipped + layer.written.unzipped))
        return Zips(written, checks, layer.largest, layer.pruned, AuditReport(findings=list(layer.findings)),
                    layer.contents)
    packs = _packs(config, resolution, cache, scratch, log)
    for name, entries in sorted(function_files.items()):
        closure = closures.closure(name)
        dependencies = merge([pack for pack in packs if pack.name in closure])
        fat = write_compressed({**dependencies, **compress_entries(entries, config.compression_level)},
                               scratch / f"{name}-fat.zip")
        written.append(fat)
        checks.append(SizeCheck(f"{name}-fat.zip", fat.zipped, fat.unzipped))
    return Zips(written, checks, _largest(packs), pruned_total(packs), audit_packs(packs, config.target),
                _contents(packs))


def _packs(config: LambdaConfig, resolution: Resolution, cache: Path, scratch: Path, log: Log) -> list[Pack]:
    """Every distribution's pack, checked together as the full build checks the staged wheels."""
    packs = packs_for(config, resolution, cache, scratch / "packs", log=log)
    check_overlap(packs, sorted(resolution.distributions, key=lambda d: d.name))
    built = [p.name for p in packs if not p.reused]
    log(f"  {len(packs) - len(built)} distributions reused from the cache, {len(built)} unpacked and deflated"
        + (f" ({', '.join(built)})" if built and len(built) <= 5 else ""))
    return packs


def _contents(packs: list[Pack]) -> dict[str, dict]:
    return {pack.name: pack.contents for pack in packs}


def _largest(packs: list[Pack]) -> list[tuple[str, int]]:
    out = [(f"{p.name} {p.version}", p.installed_bytes) for p in packs]
    out.sort(key=lambda item: (-item[1], item[0]))
    return out


def merge_zips(parts: list[Zips]) -> Zips:
    """The zips of several groups of functions built apart, as one target's."""
    pruned = PruneReport.total(part.pruned for part in parts)
    largest = sorted({item for part in parts for item in part.largest}, key=lambda item: (-item[1], item[0]))
    findings = list(dict.fromkeys(finding for part in parts for finding in part.audit.findings))
    contents: dict[str, dict] = {}
    for part in parts:
        for name, info in part.contents.items():
            contents.setdefault(name, info)
    return Zips([w for part in parts for w in part.written], [c for part in parts for c in part.checks], largest,
                pruned, AuditReport(findings=findings), contents)
