"""One build, start to end: config -> resolved lock -> packs -> checked set -> zips.

Everything is written into a scratch directory beside the output first; only
when every check has passed (audit, sizes, the smoke import, each function's
handler) are the zips and ``manifest.json`` renamed into place, so a failed
build leaves the previous artifacts untouched; :mod:`.assemble.publish` renames
them in an order no crash can leave a manifest wrong in.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from hatch_lambda.assemble.archive import WrittenZip, zip_date_time
from hatch_lambda.assemble.audit import MB, SizeCheck, check_sizes, enforce
from hatch_lambda.assemble.manifest import (
    MANIFEST,
    ArtifactEntry,
    AuditFacts,
    Bytecode,
    FunctionEntry,
    LayerEntry,
    LockedDistribution,
    LockFacts,
    Section,
    Stripped,
)
from hatch_lambda.assemble.names import check_names, zip_name
from hatch_lambda.assemble.publish import publish
from hatch_lambda.assemble.zips import Zips, assemble, merge_zips
from hatch_lambda.cache.store import writable_cache_dir
from hatch_lambda.checks.handlers import HandlerJob, Proof, prove_handlers
from hatch_lambda.checks.runtime_extra import runtime_extra
from hatch_lambda.checks.smoke import smoke_check
from hatch_lambda.config.functions import Function
from hatch_lambda.config.options import FAT, LAYER, LambdaConfig
from hatch_lambda.context import BuildContext, Log
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.fetch.credentials import Credentials
from hatch_lambda.lockfile.closures import Plan, plan
from hatch_lambda.lockfile.resolve import Resolution
from hatch_lambda.packs.build import packs_for
from hatch_lambda.packs.bytecode import compile_entries
from hatch_lambda.packs.deflate import Entry
from hatch_lambda.packs.image import image_installer
from hatch_lambda.packs.pack import PackSpec
from hatch_lambda.packs.sources import pack_sources
from hatch_lambda.packs.strip import PruneReport
from hatch_lambda.runtime.interpreters import Compiler, find_compiler
from hatch_lambda.scratch import Scratch, output_directory

#: The function's files, selected in the project directory its code lives in.
Code = Callable[[Function, Path], list[Entry]]


@dataclass(frozen=True)
class BuildOutput:
    artifacts: tuple[Path, ...]  # zips, in the order they were reported
    manifest: Path
    resolution: Resolution
    pruned: PruneReport


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
    neighbours: tuple[LambdaConfig, ...] = (),
) -> BuildOutput:
    """Build ``config``'s artifacts into ``out_dir``; ``neighbours``: the configs of other targets built there."""
    check_names(config, out_dir, neighbours)
    target = config.target
    zip_date_time()  # a bad SOURCE_DATE_EPOCH is refused before any work, not when the first zip is written
    cache = writable_cache_dir()
    deprecation = target.runtime_info.deprecation_warning(today or date.today())
    if deprecation:
        warn(f"warning: {deprecation}")
    closures = plan(config, project_dir, cache)
    resolution = closures.resolution
    for note in resolution.notes:
        log(f"  {note}")
    log(f"{config.kind}: {len(resolution.distributions)} distributions from {resolution.lock_path.name} "
        f"for {target.describe()}")
    pairs = zip(config.functions, closures.functions, strict=True)
    function_files = {f.name: code(f, root.directory) for f, root in pairs}
    compiler = _compiler(config, log, warn)
    output_directory(out_dir)
    claimed = Scratch.claim(out_dir)
    try:
        scratch = claimed.path
        # Without the cache (-c, HATCH_LAMBDA_NO_CACHE) packs and layers go to a throw-away store: the same path.
        ctx = BuildContext(cache, scratch / "store" if no_cache else cache, scratch, log, warn)
        if compiler is not None:
            function_files = {name: compile_entries(compiler, entries, config.bytecode, target.python,
                                                    ctx.work / "code" / name)
                              for name, entries in function_files.items()}
        if config.kind == FAT and closures.disagrees:
            # Roots that need two versions of one distribution: each group of fat zips on its own.
            zips = merge_zips([_zips(config, part, {f.name: function_files[f.name] for f in part.functions},
                                     ctx.within(f"root-{number}"), compiler)
                               for number, part in enumerate(closures.split())])
        else:
            zips = _zips(config, closures, function_files, ctx, compiler)
        pruned = zips.pruned
        _log_stripped(pruned, log)
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
        proofs = _prove(config, closures, written, ctx)
        _summary(checks, config, log)
        section = _section(config, closures, zips, proofs, compiler)
        claimed.lock_output()
        with _interrupts_held() as interrupted:
            final = publish(out_dir, scratch, config.kind, section, [item.path for item in written])
        output = BuildOutput(tuple(final), out_dir / MANIFEST, resolution, pruned)
        if signal.SIGTERM in interrupted:
            signal.raise_signal(signal.SIGTERM)  # now that every artifact is in place, as it was sent
        if interrupted:
            raise InterruptedAfterPublishing(output)
        return output
    finally:
        claimed.release()


def _compiler(config: LambdaConfig, log: Log, warn: Log) -> Compiler | None:
    """The CPython that compiles the bytecode, or None: ``bytecode = "off"``, or none found for the default
    (said once); none found for a ``bytecode`` the table sets is an error."""
    if config.bytecode == "off":
        return None
    python = config.target.python
    image = config.image_name if config.installer != "wheels" else None
    found = find_compiler(config.target, image=image, log=log)
    if found is not None:
        log(f"  bytecode ({config.bytecode}): compiled by {found.description}")
        return found
    looked = (f"this interpreter, python{python} on PATH, uv's managed Pythons, pyenv's versions, "
              f"`uv python find {python}`" + (", the Lambda image through Docker" if image else ""))
    if config.bytecode_from is not None:
        raise LambdaBuildError(
            f'bytecode = "{config.bytecode}" in {config.bytecode_from} of pyproject.toml needs a CPython {python} '
            f"to compile the .pyc files, but none was found (looked at: {looked})",
            f'install one (`uv python install {python}`, or `pyenv install {python}`), or set bytecode = "off"',
        )
    warn(f"warning: no CPython {python} found to compile bytecode (looked at: {looked}), so the artifacts have "
         f"none and each cold start compiles what it imports; install one (`uv python install {python}`) to "
         f'ship .pyc files, or set bytecode = "off" to build without them and without this warning')
    return None


class InterruptedAfterPublishing(KeyboardInterrupt):
    """Ctrl-C came while the new artifacts were being put in place: they all were, then the build stopped."""

    def __init__(self, output: BuildOutput) -> None:
        super().__init__()
        self.output = output


@contextmanager
def _interrupts_held() -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM while the block runs, so the zips and manifest.json are renamed into place
    all together or not at all (a SIGKILL cannot be held: see :mod:`.assemble.publish`); the list holds the
    signals that came meanwhile."""
    came: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield came  # only the main thread can hold signals; the caller's own handling applies
        return
    previous = {number: signal.signal(number, lambda number, frame: came.append(number))
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield came
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _zips(config: LambdaConfig, closures: Plan, function_files: dict[str, list[Entry]], ctx: BuildContext,
          compiler: Compiler | None = None) -> Zips:
    """Every distribution as a pack (built or read from the cache), and the zips assembled from them."""
    ctx.scratch.mkdir(parents=True, exist_ok=True)
    spec = PackSpec.of(config, compiler)
    image_id, install = image_installer(config, ctx.work, ctx.log) if config.installer == "docker" else (None, None)
    lock_dir = closures.resolution.lock_path.parent
    credentials = Credentials.of_project(lock_dir)  # for every download of the build
    sources = pack_sources(config, spec, closures.resolution, ctx, image_id=image_id, credentials=credentials)
    return assemble(config, closures, sources,
                    lambda: packs_for(spec, sources, ctx, lock_dir, image=install, credentials=credentials),
                    function_files, ctx)


def _prove(config: LambdaConfig, closures: Plan, written: list[WrittenZip], ctx: BuildContext) -> dict[str, Proof]:
    """Every handler a function names, imported from the zips just written (see :mod:`.checks.handlers`)."""
    if not any(f.handler for f in config.functions):
        return {}
    by_name = {item.path.name: item.path for item in written}
    layer = by_name.get("layer.zip")
    jobs = [HandlerJob(f, by_name[zip_name(config.kind, f.name)], layer) for f in config.functions]
    extra = runtime_extra(config, closures, ctx)
    proofs = prove_handlers(jobs, config.target, image=config.image_name, runtime_extra=extra, log=ctx.log,
                            warn=ctx.warn)
    return {proof.function: proof for proof in proofs}


def _size(size: int) -> str:
    return f"{size / 1024:.0f} KB" if size < MB else f"{size / MB:.1f} MB"


def _summary(checks: list[SizeCheck], config: LambdaConfig, log: Log) -> None:
    """Each artifact's zipped and unzipped size beside Lambda's limits (a function's unzipped counts its layer)."""
    width = max(len(check.artifact) for check in checks)
    for check in checks:
        log(f"  {check.artifact:<{width}}  {_size(check.zipped):>8} zipped of {config.max_zipped_mb:g} MB"
            f"  {_size(check.unzipped):>8} unzipped of {config.max_unzipped_mb:g} MB")


def _log_stripped(pruned: PruneReport, log: Log) -> None:
    """What stripping took: files by rule, the ELF files whose symbols went, and those left alone."""
    if pruned.bytes:
        rules = ", ".join(f"{rule} {size / 1024:.0f} KiB" for rule, size in sorted(pruned.by_rule.items()))
        symbols = f" and the symbols of {len(pruned.symbols)} ELF files" if pruned.symbols else ""
        log(f"  stripped {pruned.files} files{symbols}, {pruned.bytes / 1024:.0f} KiB ({rules})")
    if pruned.left_alone:
        log(f"  symbols left alone: {len(pruned.left_alone)} files, layout (e.g. {pruned.left_alone[0]})")


def _section(config: LambdaConfig, closures: Plan, zips: Zips, proofs: dict[str, Proof],
             compiler: Compiler | None) -> Section:
    """The target's section of manifest.json."""
    resolution, target = closures.resolution, config.target
    by_name = {item.path.name: item for item in zips.written}

    def kind(name: str) -> str:
        return "function-fat" if config.kind == FAT else "layer" if name == "layer.zip" else "function"

    functions = {}
    for function, root in zip(config.functions, closures.functions, strict=True):
        item = by_name[zip_name(config.kind, function.name)]
        proof = proofs.get(function.name)
        functions[function.name] = FunctionEntry(
            item.path.name, item.sha256_base64, function.handler, target.runtime, [target.arch],
            ["layer.zip"] if config.kind == LAYER else [], root.root, sorted(root.distributions),
            proof.method if proof else None,
        )
    layer = by_name.get("layer.zip")
    return Section(
        python=target.python,
        runtime=target.runtime,
        arch=target.arch,
        layout=config.layout if config.kind == LAYER else "root",
        lock=LockFacts(resolution.lock_path.name, resolution.lock_digest),
        extras=list(resolution.extras),
        groups=list(resolution.groups),
        excluded=sorted(config.exclude_packages),
        distributions=[LockedDistribution(d.name, d.version, d.source_kind, d.file.filename if d.file else None)
                       for d in resolution.distributions],
        artifacts=[ArtifactEntry(item.path.name, kind(item.path.name), item.sha256, item.sha256_base64, item.zipped,
                                 item.unzipped, item.entries) for item in zips.written],
        functions=functions,
        stripped=Stripped(zips.pruned.files, zips.pruned.bytes, dict(zips.pruned.by_rule), len(zips.pruned.symbols),
                          list(zips.pruned.left_alone)),
        contents=zips.contents,
        audit=AuditFacts(config.audit, [] if config.audit == "off" else [f.as_dict() for f in zips.audit.findings]),
        bytecode=Bytecode(config.bytecode if compiler is not None else "off",
                          compiler.release if compiler is not None else None),
        layer=None if layer is None else LayerEntry("layer.zip", layer.sha256_base64, [target.runtime], [target.arch]),
    )
