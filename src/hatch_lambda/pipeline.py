"""One build, start to end: config -> resolved lock -> staged tree -> checked tree -> zips.

Everything is written into a scratch directory beside the output first; only
when every check has passed are the zips and ``manifest.json`` renamed into
place, so a failed build leaves the previous artifacts untouched.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .archive import Entry, WrittenZip, tree_entries, write_zip
from .audit import AuditReport, SizeCheck, audit_root, check_sizes, enforce, owners, sizes_by_distribution
from .cache import cache_dir
from .cached_build import Zips, cached_zips
from .config import FAT, LAYER, LambdaConfig
from .contents import contents, staged_sizes
from .install import StagedTree, stage
from .lock import Resolution, resolve
from .manifest import MANIFEST, read_manifest, write_manifest
from .packs import eligible
from .prune import PruneReport, prune
from .smoke import smoke_check
from .scratch import Scratch

Log = Callable[[str], None]


@dataclass(frozen=True)
class BuildOutput:
    artifacts: tuple[Path, ...]  # zips, in the order they were reported
    manifest: Path
    resolution: Resolution
    pruned: PruneReport


def install_tree(config: LambdaConfig, resolution: Resolution, root: Path, log: Log) -> StagedTree:
    """Stage the resolution with the configured installer."""
    if config.installer == "wheels":
        return stage(resolution, root, cache=cache_dir(), log=log)
    from .docker_install import stage_with_docker

    return stage_with_docker(config, resolution, root, cache=cache_dir(), log=log)


def build(
    config: LambdaConfig,
    project_dir: Path,
    out_dir: Path,
    function_files: dict[str, list[Entry]],
    *,
    log: Log = print,
    warn: Log = print,
    no_cache: bool = False,
) -> BuildOutput:
    target = config.target
    resolution = resolve(
        project_dir,
        target,
        extras=config.extras,
        groups=config.groups,
        package=config.package,
        exclude=config.exclude_packages,
        strict_exclude=not config.exclude_is_default,
    )
    log(f"{config.kind}: {len(resolution.distributions)} distributions from {resolution.lock_path.name} "
        f"for {target.describe()}")
    out_dir.mkdir(parents=True, exist_ok=True)
    claimed = Scratch.claim(out_dir)
    scratch = claimed.path
    try:
        if not no_cache and eligible(config, resolution):
            # Every distribution is a wheel: assembled from cached packs, byte-identical to the full build.
            zips = cached_zips(config, resolution, function_files, scratch, cache_dir(), log)
        else:
            zips = _staged_zips(config, resolution, function_files, scratch, log)
        pruned = zips.pruned
        if pruned.files:
            rules = ", ".join(f"{rule} {size / 1024:.0f} KiB" for rule, size in sorted(pruned.by_rule.items()))
            log(f"  stripped {pruned.files} files, {pruned.bytes / 1024:.0f} KiB ({rules})")
        enforce(zips.audit, target, config.audit, warn)
        written, checks = zips.written, zips.checks
        check_sizes(
            checks,
            max_zipped_mb=config.max_zipped_mb,
            max_unzipped_mb=config.max_unzipped_mb,
            largest=zips.largest,
            mode=config.size_check,
            warn=warn,
        )
        if config.smoke_import:
            smoke_check(config, written, log)
        manifest = scratch / MANIFEST
        claimed.lock_output()
        sections = read_manifest(out_dir)
        sections[config.kind] = _manifest(config, resolution, written, pruned)
        sections[config.kind]["contents"] = zips.contents
        findings = [] if config.audit == "off" else [f.as_dict() for f in zips.audit.findings]
        sections[config.kind]["audit"] = {"mode": config.audit, "findings": findings}
        write_manifest(manifest, sections)
        final = []
        for item in written:
            destination = out_dir / item.path.name
            os.replace(item.path, destination)
            final.append(destination)
        os.replace(manifest, out_dir / MANIFEST)
        return BuildOutput(tuple(final), out_dir / MANIFEST, resolution, pruned)
    finally:
        claimed.release()


def _staged_zips(
    config: LambdaConfig, resolution: Resolution, function_files: dict[str, list[Entry]], scratch: Path, log: Log
) -> Zips:
    """The full build: every distribution staged into one tree, stripped, audited and deflated."""
    tree = install_tree(config, resolution, scratch / "site-packages", log)
    for dist in tree.distributions:
        if dist.how != "wheel":
            log(f"  {dist.name} {dist.version}: {dist.how}")
    sizes = staged_sizes(tree)
    pruned = prune(tree.root, strip=config.strip, drop=config.strip_patterns, keep=config.keep_patterns)
    audit = AuditReport() if config.audit == "off" else audit_root(tree.root, tree.target, owners(tree))
    written, checks = _write_zips(config, tree, function_files, scratch)
    return Zips(written, checks, sizes_by_distribution(tree), pruned, audit, contents(tree, pruned, sizes))


def _write_zips(
    config: LambdaConfig, tree: StagedTree, function_files: dict[str, list[Entry]], scratch: Path
) -> tuple[list[WrittenZip], list[SizeCheck]]:
    written: list[WrittenZip] = []
    checks: list[SizeCheck] = []
    if config.kind == LAYER:
        layer = write_zip(tree_entries(tree.root, config.layer_prefix), scratch / "layer.zip",
                          level=config.compression_level)
        written.append(layer)
        checks.append(SizeCheck("layer.zip", layer.zipped, layer.unzipped))
        for name, entries in sorted(function_files.items()):
            code = write_zip(entries, scratch / f"{name}.zip", level=config.compression_level)
            written.append(code)
            # Lambda's unzipped limit covers the function and its layers together.
            checks.append(SizeCheck(f"{name}.zip with layer.zip", code.zipped, code.unzipped + layer.unzipped))
    else:
        dependencies = tree_entries(tree.root)
        deflated: dict = {}  # the dependencies are deflated once for every fat zip
        for name, entries in sorted(function_files.items()):
            fat = write_zip([*dependencies, *entries], scratch / f"{name}-fat.zip", cache=deflated,
                            level=config.compression_level)
            written.append(fat)
            checks.append(SizeCheck(f"{name}-fat.zip", fat.zipped, fat.unzipped))
    return written, checks


def _manifest(config: LambdaConfig, resolution: Resolution, written: list[WrittenZip], pruned: PruneReport) -> dict:
    distributions = [
        {
            "name": dist.name,
            "version": dist.version,
            "source": dist.source_kind,
            "file": dist.file.filename if dist.file else None,
        }
        for dist in resolution.distributions
    ]
    artifacts = []
    for item in written:
        name = item.path.name
        if config.kind == FAT:
            kind = "function-fat"
        else:
            kind = "layer" if name == "layer.zip" else "function"
        artifacts.append(
            {
                "file": name,
                "kind": kind,
                "sha256": item.sha256,
                "sha256_base64": item.sha256_base64,
                "zipped_bytes": item.zipped,
                "unzipped_bytes": item.unzipped,
                "entries": item.entries,
            }
        )
    return {
        "python": config.target.python,
        "runtime": config.target.runtime,
        "arch": config.target.arch,
        "layout": config.layout if config.kind == LAYER else "root",
        "lock": {"file": resolution.lock_path.name, "sha256": resolution.lock_digest},
        "extras": list(resolution.extras),
        "groups": list(resolution.groups),
        "excluded": sorted(config.exclude_packages),
        "distributions": distributions,
        "artifacts": artifacts,
        "stripped": {"files": pruned.files, "bytes": pruned.bytes, "by_rule": pruned.by_rule},
    }
