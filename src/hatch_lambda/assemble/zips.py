"""Every zip, assembled from packs: the one place a layer, a slim function zip or a fat zip is made.

The packs of a target's distributions are checked together first, from the
facts each recorded: no two install one path with different bytes; identical
extra copies of a shared library that nothing loads by name are dropped
(:mod:`.duplicates`); every ELF object left is audited against the runtime.
Then each zip is written by copying deflated bytes in name order:

- lambda-layer: ``layer.zip`` (every pack under the layout's prefix; kept in the
  cache under the key of its packs, so a code-only rebuild reads none of them),
  and one zip of code per function;
- lambda-fat: per function, the packs of its own closure plus its code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hatch_lambda.assemble.archive import WrittenZip, write_compressed, write_zip
from hatch_lambda.assemble.audit import AuditReport, SizeCheck, audit_objects
from hatch_lambda.assemble.duplicates import duplicate_copies
from hatch_lambda.assemble.layer_cache import (
    CachedLayer,
    fetch_layer,
    layer_key,
    store_layer,
)
from hatch_lambda.assemble.names import zip_name
from hatch_lambda.config.options import LAYER, LambdaConfig
from hatch_lambda.context import BuildContext, Log
from hatch_lambda.lockfile.closures import Plan
from hatch_lambda.packs.checks import check_no_overlap
from hatch_lambda.packs.contents import DistributionContents
from hatch_lambda.packs.deflate import Compressed, Entry, compress_entries
from hatch_lambda.packs.pack import Pack
from hatch_lambda.packs.sources import PackSource
from hatch_lambda.packs.strip import PruneReport
from hatch_lambda.runtime.target import Target


@dataclass(frozen=True)
class Zips:
    """A target's zips, written into the build's scratch directory, and what was found making them."""

    written: list[WrittenZip]
    checks: list[SizeCheck]
    largest: list[tuple[str, int]]  # (distribution, bytes), largest first
    pruned: PruneReport
    audit: AuditReport  # findings whatever the audit mode; the caller enforces the mode
    contents: dict[str, DistributionContents]  # the manifest's, by distribution


def assemble(
    config: LambdaConfig,
    closures: Plan,
    sources: list[PackSource],
    packs: Callable[[], list[Pack]],
    function_files: dict[str, list[Entry]],
    ctx: BuildContext,
) -> Zips:
    """The target's zips in the scratch directory; ``packs`` gives every source's pack (only called when needed)."""
    scratch, store_dir, log, cached = ctx.scratch, ctx.store, ctx.log, ctx.cached
    written: list[WrittenZip] = []
    checks: list[SizeCheck] = []
    if config.kind == LAYER:
        key = layer_key([source.key for source in sources], config.layer_prefix)
        layer = fetch_layer(store_dir, key, scratch / "layer.zip")
        if layer is not None:
            log("  layer.zip: dependencies unchanged, reused from the cache")
        else:
            kept = checked(packs(), sources, config, log, cached=cached)
            zipped = write_compressed(merge(kept, config.layer_prefix), scratch / "layer.zip")
            audit = audit_packs(kept, config.target)
            layer = CachedLayer(zipped, PruneReport.total(p.pruned for p in kept), largest(kept),
                                tuple(audit.findings), {p.name: p.contents for p in kept})
            store_layer(store_dir, key, layer)
        written.append(layer.written)
        checks.append(SizeCheck("layer.zip", layer.written.zipped, layer.written.unzipped))
        for name, entries in sorted(function_files.items()):
            code = write_zip(entries, scratch / zip_name(LAYER, name), level=config.compression_level)
            written.append(code)
            # Lambda's unzipped limit covers the function and its layers together.
            checks.append(SizeCheck(f"{code.path.name} with layer.zip", code.zipped,
                                    code.unzipped + layer.written.unzipped))
        return Zips(written, checks, layer.largest, layer.pruned, AuditReport(findings=list(layer.findings)),
                    layer.contents)
    kept = checked(packs(), sources, config, log, cached=cached)
    for name, entries in sorted(function_files.items()):
        closure = closures.closure(name)
        dependencies = merge([pack for pack in kept if pack.name in closure])
        fat = write_compressed({**dependencies, **compress_entries(entries, config.compression_level)},
                               scratch / zip_name(config.kind, name))
        written.append(fat)
        checks.append(SizeCheck(fat.path.name, fat.zipped, fat.unzipped))
    return Zips(written, checks, largest(kept), PruneReport.total(p.pruned for p in kept),
                audit_packs(kept, config.target), {p.name: p.contents for p in kept})


def checked(packs: list[Pack], sources: list[PackSource], config: LambdaConfig, log: Log, *,
            cached: bool = True) -> list[Pack]:
    """The packs of one artifact set, checked together, without the library copies nothing loads."""
    check_no_overlap((s.dist, Path(s.filename), pack.record) for s, pack in zip(sources, packs, strict=True))
    built = [p.name for p in packs if not p.reused]
    named = f" ({', '.join(built)})" if built and len(built) <= 5 else ""
    if cached:
        log(f"  {len(packs) - len(built)} distributions reused from the cache, {len(built)} unpacked and "
            f"deflated{named}")
    else:
        log(f"  {len(built)} distributions unpacked and deflated{named} (no cache)")
    dropped = duplicate_copies(packs, config.keep_patterns) if config.strip else {}
    return [without(pack, dropped.get(pack.name, set())) for pack in packs]


def without(pack: Pack, paths: set[str]) -> Pack:
    """``pack`` less the files at ``paths`` (duplicate library copies), counted as stripped."""
    if not paths:
        return pack
    pruned = PruneReport.total([pack.pruned])
    for path in sorted(paths):
        pruned.add("duplicate-libraries", path, pack.files[path].size)
    pruned.removed.sort()
    contents = dataclasses.replace(pack.contents, stripped_files=pack.contents.stripped_files + len(paths),
                                   stripped_bytes=pack.contents.stripped_bytes + sum(pack.files[p].size for p in paths))
    files = {name: content for name, content in pack.files.items() if name not in paths}
    elf = tuple((path, info) for path, info in pack.elf if path not in paths)
    return dataclasses.replace(pack, files=files, pruned=pruned, elf=elf, contents=contents,
                               installed_bytes=sum(c.size for c in files.values()))


def merge(packs: list[Pack], prefix: str = "") -> dict[str, Compressed]:
    """name in the zip -> contents; a later distribution's file wins, as when unpacking in name order."""
    out: dict[str, Compressed] = {}
    for pack in packs:
        for name, content in pack.files.items():
            out[prefix + name] = content
    return out


def audit_packs(packs: list[Pack], target: Target) -> AuditReport:
    """The audit of the zip the packs make, from the ELF facts each pack recorded."""
    names = {name.rsplit("/", 1)[-1] for pack in packs for name in pack.files}
    return audit_objects(((path, pack.name, info) for pack in packs for path, info in pack.elf), target, names)


def largest(packs: list[Pack]) -> list[tuple[str, int]]:
    out = [(f"{p.name} {p.version}", p.installed_bytes) for p in packs]
    out.sort(key=lambda item: (-item[1], item[0]))
    return out


def merge_zips(parts: list[Zips]) -> Zips:
    """The zips of several groups of functions built apart, as one target's."""
    pruned = PruneReport.total(part.pruned for part in parts)
    biggest = sorted({item for part in parts for item in part.largest}, key=lambda item: (-item[1], item[0]))
    findings = list(dict.fromkeys(finding for part in parts for finding in part.audit.findings))
    contents: dict[str, DistributionContents] = {}
    for part in parts:
        for name, info in part.contents.items():
            contents.setdefault(name, info)
    return Zips([w for part in parts for w in part.written], [c for part in parts for c in part.checks], biggest,
                pruned, AuditReport(findings=findings), contents)
