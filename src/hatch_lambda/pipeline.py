"""One build, start to end: config -> resolved lock -> staged tree -> checked tree -> zips.

Everything is written into a scratch directory beside the output first; only
when every check has passed (audit, sizes, the smoke import, each function's
handler) are the zips and ``manifest.json`` renamed into place, so a failed
build leaves the previous artifacts untouched.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from .archive import Entry, WrittenZip, tree_entries, write_zip
from .audit import MB, AuditReport, SizeCheck, audit_root, check_sizes, enforce, owners, sizes_by_distribution
from .cache import cache_dir
from .cached_build import Zips, cached_zips, merge_zips
from .closures import Plan, plan
from .config import FAT, LAYER, Function, LambdaConfig
from .contents import contents, staged_sizes
from .handlers import HandlerJob, Proof, prove_handlers
from .install import StagedTree, stage
from .lock import Resolution
from .manifest import MANIFEST, read_manifest, write_manifest
from .packs import eligible
from .prune import PruneReport, prune
from .runtime_extra import runtime_extra
from .scratch import Scratch
from .smoke import smoke_check

Log = Callable[[str], None]
#: The function's files, selected in the project directory its code lives in.
Code = Callable[[Function, Path], list[Entry]]


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
    code: Code,
    *,
    log: Log = print,
    warn: Log = print,
    no_cache: bool = False,
    today: date | None = None,
) -> BuildOutput:
    target = config.target
    deprecation = target.runtime_info.deprecation_warning(today or date.today())
    if deprecation:
        warn(f"warning: {deprecation}")
    closures = plan(config, project_dir, cache_dir())
    resolution = closures.resolution
    for note in resolution.notes:
        log(f"  {note}")
    log(f"{config.kind}: {len(resolution.distributions)} distributions from {resolution.lock_path.name} "
        f"for {target.describe()}")
    function_files = {f.name: code(f, root.directory) for f, root in zip(config.functions, closures.functions)}
    out_dir.mkdir(parents=True, exist_ok=True)
    claimed = Scratch.claim(out_dir)
    scratch = claimed.path
    try:
        if config.kind == FAT and closures.disagrees:
            # Roots that need two versions of one distribution: each group of fat zips on its own.
            parts = [_zips(config, part, {f.name: function_files[f.name] for f in part.functions},
                           scratch / f"root-{number}", no_cache, log)
                     for number, part in enumerate(closures.split())]
            zips = merge_zips(parts)
        else:
            zips = _zips(config, closures, function_files, scratch, no_cache, log)
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
        proofs = _prove(config, closures, written, scratch, log, warn)
        _summary(checks, config, log)
        manifest = scratch / MANIFEST
        claimed.lock_output()
        sections = read_manifest(out_dir)
        sections[config.kind] = _manifest(config, closures, written, pruned, proofs)
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


def _zips(config: LambdaConfig, closures: Plan, function_files: dict[str, list[Entry]], scratch: Path,
          no_cache: bool, log: Log) -> Zips:
    scratch.mkdir(parents=True, exist_ok=True)
    if not no_cache and eligible(config, closures.resolution):
        # Every distribution is a wheel: assembled from cached packs, byte-identical to the full build.
        return cached_zips(config, closures, function_files, scratch, cache_dir(), log)
    return _staged_zips(config, closures, function_files, scratch, log)


def _prove(config: LambdaConfig, closures: Plan, written: list[WrittenZip], scratch: Path, log: Log,
           warn: Log) -> dict[str, Proof]:
    """Every handler a function names, imported from the zips just written (see :mod:`.handlers`)."""
    if not any(f.handler for f in config.functions):
        return {}
    by_name = {item.path.name: item.path for item in written}
    layer = by_name.get("layer.zip")
    jobs = [HandlerJob(f, by_name[_zip_name(config, f)], layer) for f in config.functions]
    extra = runtime_extra(closures, scratch, log)
    proofs = prove_handlers(jobs, config.target, image=config.image_name, runtime_extra=extra, log=log, warn=warn)
    return {proof.function: proof for proof in proofs}


def _zip_name(config: LambdaConfig, function: Function) -> str:
    return f"{function.name}.zip" if config.kind == LAYER else f"{function.name}-fat.zip"


def _size(size: int) -> str:
    return f"{size / 1024:.0f} KB" if size < MB else f"{size / MB:.1f} MB"


def _summary(checks: list[SizeCheck], config: LambdaConfig, log: Log) -> None:
    """Each artifact's zipped and unzipped size beside Lambda's limits (a function's unzipped counts its layer)."""
    width = max(len(check.artifact) for check in checks)
    for check in checks:
        log(f"  {check.artifact:<{width}}  {_size(check.zipped):>8} zipped of {config.max_zipped_mb:g} MB"
            f"  {_size(check.unzipped):>8} unzipped of {config.max_unzipped_mb:g} MB")


def _staged_zips(
    config: LambdaConfig, closures: Plan, function_files: dict[str, list[Entry]], scratch: Path, log: Log
) -> Zips:
    """The full build: every distribution staged into one tree, stripped, audited and deflated."""
    tree = install_tree(config, closures.resolution, scratch / "site-packages", log)
    for dist in tree.distributions:
        if dist.how != "wheel":
            log(f"  {dist.name} {dist.version}: {dist.how}")
    sizes = staged_sizes(tree)
    pruned = prune(tree.root, strip=config.strip, drop=config.strip_patterns, keep=config.keep_patterns)
    audit = AuditReport() if config.audit == "off" else audit_root(tree.root, tree.target, owners(tree))
    written, checks = _write_zips(config, closures, tree, function_files, scratch)
    return Zips(written, checks, sizes_by_distribution(tree), pruned, audit, contents(tree, pruned, sizes))


def _write_zips(
    config: LambdaConfig, closures: Plan, tree: StagedTree, function_files: dict[str, list[Entry]], scratch: Path
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
        owner = owners(tree)
        deflated: dict = {}  # the dependencies are deflated once for every fat zip
        for name, entries in sorted(function_files.items()):
            closure = closures.closure(name)
            # A file no distribution claims (none should exist) goes into every fat zip.
            own = [e for e in dependencies if owner.get(e.name, "") in closure or e.name not in owner]
            fat = write_zip([*own, *entries], scratch / f"{name}-fat.zip", cache=deflated,
                            level=config.compression_level)
            written.append(fat)
            checks.append(SizeCheck(f"{name}-fat.zip", fat.zipped, fat.unzipped))
    return written, checks


def _manifest(config: LambdaConfig, closures: Plan, written: list[WrittenZip], pruned: PruneReport,
              proofs: dict[str, Proof]) -> dict:
    resolution = closures.resolution
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
    by_name = {}
    for item in written:
        name = item.path.name
        if config.kind == FAT:
            kind = "function-fat"
        else:
            kind = "layer" if name == "layer.zip" else "function"
        by_name[name] = item
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
    target = config.target
    functions = {}
    for function, root in zip(config.functions, closures.functions):
        item = by_name[_zip_name(config, function)]
        proof = proofs.get(function.name)
        # The names Terraform (aws_lambda_function), SAM and the CDK use for the same settings.
        functions[function.name] = {
            "filename": item.path.name,
            "source_code_hash": item.sha256_base64,
            "handler": function.handler,
            "runtime": target.runtime,
            "architectures": [target.arch],
            "layers": ["layer.zip"] if config.kind == LAYER else [],
            "package": root.root,
            "distributions": sorted(root.distributions),
            "handler_check": proof.method if proof else None,
        }
    section = {
        "python": target.python,
        "runtime": target.runtime,
        "arch": target.arch,
        "layout": config.layout if config.kind == LAYER else "root",
        "lock": {"file": resolution.lock_path.name, "sha256": resolution.lock_digest},
        "extras": list(resolution.extras),
        "groups": list(resolution.groups),
        "excluded": sorted(config.exclude_packages),
        "distributions": distributions,
        "artifacts": artifacts,
        "functions": functions,
        "stripped": {"files": pruned.files, "bytes": pruned.bytes, "by_rule": pruned.by_rule},
    }
    if config.kind == LAYER:
        layer = by_name["layer.zip"]
        # aws_lambda_layer_version's (and AWS::Lambda::LayerVersion's) settings.
        section["layer"] = {
            "filename": "layer.zip",
            "source_code_hash": layer.sha256_base64,
            "compatible_runtimes": [target.runtime],
            "compatible_architectures": [target.arch],
        }
    return section
