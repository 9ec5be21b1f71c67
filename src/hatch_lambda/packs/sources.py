"""Where each distribution's pack comes from: a wheel, downloaded or built.

- a wheel of the lock (an index, a URL, a file in the project): its sha256 is
  the lock's, so its pack can be found in the cache before it is downloaded;
- an sdist: built into a wheel once per digest (on the host, or in the Lambda
  image when it is not pure Python and Docker is there), cached in ``built/``;
- a workspace member, path or directory source: built into a wheel each build, from a copy of its tree;
- a git source: the locked commit, built into a wheel cached by URL, commit and
  subdirectory.

Each gets the key of its pack (see :func:`.packs.pack_key`): the wheel's sha256
and everything else that decides the pack's bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hatch_lambda.config.options import LambdaConfig
from hatch_lambda.context import BuildContext, Log
from hatch_lambda.errors import redact
from hatch_lambda.fetch.builds import Wheel, git_build, host_build
from hatch_lambda.fetch.credentials import Credentials
from hatch_lambda.fetch.files import fetch_all, fetch_one
from hatch_lambda.fetch.sdists import sdist_wheels
from hatch_lambda.hashing import file_sha256
from hatch_lambda.lockfile.resolve import Distribution, Resolution
from hatch_lambda.lockfile.wheels import LockedFile
from hatch_lambda.packs.pack import PackSpec, pack_key


@dataclass(frozen=True)
class PackSource:
    """One distribution, the key of its pack, and its wheel when it had to be made to know that key."""

    dist: Distribution
    key: str
    how: str  # "wheel", "built from packages/member", "sdist built on host", ...
    wheel: Path | None = None  # None: the lock's own wheel, downloaded when its pack must be built
    wheel_sha256: str = ""

    @property
    def filename(self) -> str:
        if self.wheel is not None:
            return self.wheel.name
        assert self.dist.file is not None, "a pack without a built wheel is the lock's wheel"
        return self.dist.file.filename


def lock_wheel(dist: Distribution) -> LockedFile | None:
    """The wheel the lock names with its digest, if any: its pack is known before anything is downloaded."""
    file = dist.file
    return file if file is not None and file.kind == "wheel" and file.sha256 else None


def pack_sources(
    config: LambdaConfig, spec: PackSpec, resolution: Resolution, ctx: BuildContext, *, image_id: str | None = None,
    credentials: Credentials | None = None,
) -> list[PackSource]:
    """Every distribution's pack source, in name order; what must be built is built now."""
    cache, work, log = ctx.cache, ctx.work, ctx.log
    lock_dir = resolution.lock_path.parent
    dists = sorted(resolution.distributions, key=lambda d: d.name)
    installer = f"image {image_id}" if image_id else "host"
    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, PackSource] = {}
    for dist in dists:
        file = lock_wheel(dist)
        if file is not None:
            # A wheel in the project tree is checked against the lock every build (it can change under it).
            in_tree = fetch_one(dist, cache, lock_dir) if file.url is None else None
            out[dist.name] = PackSource(dist, pack_key(spec, dist.sha256, file.filename, installer),
                                        "wheel", in_tree, dist.sha256)
    sources = [dist for dist in dists if dist.is_local or dist.source_kind == "git"]
    # Nothing of the build's output, cache or store is copied with a local tree that holds them.
    keep_out = (ctx.output, ctx.cache, ctx.store)
    built = [_local_wheel(dist, lock_dir, cache, work, log, config.target.python, keep_out) for dist in sources]
    sdists = [dist for dist in dists if dist.file is not None and dist.file.kind == "sdist"]
    if sdists:
        built += sdist_wheels(config, sdists, fetch_all(sdists, cache, lock_dir, credentials=credentials), cache,
                              work, log)
    for wheel in built:
        digest = file_sha256(wheel.path)
        out[wheel.dist.name] = PackSource(wheel.dist, pack_key(spec, digest, wheel.path.name, installer), wheel.how,
                                          wheel.path, digest)
        log(redact(f"  {wheel.dist.name} {wheel.dist.version}: {wheel.how}".rstrip()))
    return [out[dist.name] for dist in dists]


def _local_wheel(dist: Distribution, lock_dir: Path, cache: Path, work: Path, log: Log, python: str,
                 keep_out: tuple[Path, ...]) -> Wheel:
    if dist.source_kind == "git":
        return git_build(dist, work, cache, log)
    return host_build(dist, (lock_dir / dist.source).resolve(), work, cache, log, python, keep_out)


