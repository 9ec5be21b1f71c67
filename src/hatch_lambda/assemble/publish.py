"""Putting a target's zips and ``manifest.json`` into the output directory, so that no crash pairs them wrongly.

The invariant: at every instant, and after a crash or a power loss at any
instant, every artifact ``manifest.json`` lists is a file whose sha256 is the
one the manifest records. Renames are atomic, but a build replaces several
files, and lambda-layer and lambda-fat share the one manifest (a section each),
so a build of target T publishes in this order, holding the output directory's
lock (:meth:`hatch_lambda.scratch.Scratch.lock_output`):

1. Both manifests are written in the scratch directory first (a full disk fails
   here, before anything is replaced), and every new zip and both manifests are
   flushed to disk (``fsync``).
2. ``manifest.json`` is replaced (renamed over, then the directory flushed) by
   one without T's section, the other targets' sections as they were, and T
   under ``incomplete`` with the files about to change: the new zips, and those
   T's previous build listed (or was putting in place when it stopped).
3. Each zip is renamed into place; then the directory is flushed.
4. The new ``manifest.json`` (T's new section, T no longer incomplete) is
   renamed in, and the directory flushed.

A crash before 2 leaves the previous artifacts with their manifest; between 2
and 4 T has no section, and ``incomplete`` says its build did not finish:
``hatch-lambda inspect`` and ``verify`` say so and ask for a build, T's next
build publishes in the same order and ends it, and ``-c`` removes the files it
names. Nothing of another target's is touched (:mod:`.names` keeps the names
apart). A zip T's previous build wrote and this one does not (a function
removed) stays, unlisted, as it always did; ``-c`` removes it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from hatch_lambda.assemble.manifest import MANIFEST, Manifest, Section, plain_name
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.scratch import Scratch

INTERIM = "manifest.incomplete.json"  # step 2's manifest, in the scratch directory until it is renamed in


def publish(out_dir: Path, scratch: Path, kind: str, section: Section, zips: list[Path]) -> list[Path]:
    """Rename ``zips`` (in ``scratch``) into ``out_dir`` with ``section`` as ``kind``'s part of manifest.json, in
    the order the module describes; the zips' new paths. The caller holds the output directory's lock."""
    previous = Manifest.read(out_dir)
    others = {name: other for name, other in previous.sections.items() if name != kind}
    theirs = Manifest(others).listed()
    old = previous.sections.get(kind)
    changing = {path.name for path in zips}
    changing |= {item.file for item in old.artifacts} if old is not None else set()
    changing |= set(previous.incomplete.get(kind, []))
    unfinished = {name: files for name, files in previous.incomplete.items() if name != kind}
    interim = Manifest(others, {**unfinished, kind: sorted(name for name in changing - theirs if plain_name(name))})
    final = Manifest({**others, kind: section}, unfinished)
    try:
        _write_flushed(scratch / INTERIM, interim.text())
        _write_flushed(scratch / MANIFEST, final.text())
        for path in zips:
            _flush(path)
    except OSError as exc:
        raise _failed(out_dir, kind, exc, "nothing in it was replaced") from None
    placed: list[Path] = []
    state = "nothing in it was replaced"
    try:
        _replace(scratch / INTERIM, out_dir / MANIFEST)
        state = f"{MANIFEST} lists none of {kind}'s artifacts now, and says its build did not finish"
        _flush_directory(out_dir)
        for path in zips:
            destination = out_dir / path.name
            _replace(path, destination)
            placed.append(destination)
        _flush_directory(out_dir)
        _replace(scratch / MANIFEST, out_dir / MANIFEST)
        state = "the new artifacts and manifest are in place, but may not be on disk yet"
        _flush_directory(out_dir)
    except OSError as exc:
        raise _failed(out_dir, kind, exc, state) from None
    return placed


def withdraw(out_dir: Path, kind: str) -> None:
    """Remove ``kind``'s artifacts from ``out_dir`` (``-c``): its section goes from manifest.json first (the
    file goes when nothing is left in it), then the files it listed or was putting in place, but none that
    another target's section lists."""
    if not (out_dir / MANIFEST).is_file():
        return
    claimed = Scratch.claim(out_dir)
    try:
        claimed.lock_output()
        previous = Manifest.read(out_dir)
        section = previous.sections.get(kind)
        if section is None and kind not in previous.incomplete:
            return
        files = {item.file for item in section.artifacts} if section is not None else set()
        files |= set(previous.incomplete.get(kind, []))
        rest = Manifest({name: other for name, other in previous.sections.items() if name != kind},
                        {name: listed for name, listed in previous.incomplete.items() if name != kind})
        if rest.sections or rest.incomplete:
            _write_flushed(claimed.path / MANIFEST, rest.text())
            _replace(claimed.path / MANIFEST, out_dir / MANIFEST)
        else:
            (out_dir / MANIFEST).unlink()
        _flush_directory(out_dir)
        for name in sorted(files - rest.listed()):
            if plain_name(name):  # read() checks no names: a section may name ../x.zip
                (out_dir / name).unlink(missing_ok=True)
    finally:
        claimed.release()


def _replace(source: Path, destination: Path) -> None:
    """One atomic rename: the only way this module changes the output directory's files."""
    os.replace(source, destination)


def _write_flushed(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _flush(path: Path) -> None:
    """The file's data on disk, before a manifest that lists it can be."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _flush_directory(directory: Path) -> None:
    """The directory's renames on disk, in the order made (POSIX; Windows cannot open a directory)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):  # a file system that cannot flush a directory
            raise
    finally:
        os.close(fd)


def _failed(out_dir: Path, kind: str, exc: OSError, state: str) -> LambdaBuildError:
    return LambdaBuildError(
        f"putting the artifacts of {kind} into {out_dir} failed: {exc.strerror or exc}; {state}",
        f"make room or restore write access to {out_dir}, then build {kind} again",
    )
