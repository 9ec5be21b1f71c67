"""One protocol for every entry of the cache: packs, layers, built wheels, read metadata.

An entry is a directory named by its key, ``<cache>/<kind>/<key[:2]>/<key>``:

- **written** whole or not at all: filled in a temporary directory beside it,
  then published by one rename, under the entry's lock (``filelock``), so two
  builds sharing the cache do the work once;
- **sealed**: one file of the entry (``sealed``) records the digests of the
  rest, and an HMAC of it under a secret kept outside the cache is written
  beside it (:mod:`.seal`), so an entry someone else wrote is never used;
- **verified on read**: the seal, then what the reader says a sound entry is (a
  digest that matches, a key recorded inside); an entry that fails is
  discarded (moved aside, then removed) and made again;
- **marked on use**, so ``hatch-lambda cache prune`` removes the least recently
  used first.

Downloads (``files/``) follow the same layout and verification (their sha256
against the lock); they stream into a ``.part`` file inside their entry.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from hatch_lambda.cache.seal import cache_secret, seal_holds, write_seal
from hatch_lambda.cache.store import (
    atomic_dir,
    discard,
    entry_dir,
    locked,
    publish,
    touch,
)
from hatch_lambda.hashing import file_sha256

T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    """The entry ``key`` of ``kind`` in ``cache``, whose file ``sealed`` records the digests of the rest."""

    cache: Path
    kind: str
    key: str
    sealed: str

    def _verified(self, path: Path, verify: Callable[[Path], T | None]) -> T | None:
        if not seal_holds(path, cache_secret(self.cache), self.kind, self.key, self.sealed):
            return None
        return verify(path)

    @property
    def path(self) -> Path:
        return entry_dir(self.cache, self.kind, self.key)

    def read(self, verify: Callable[[Path], T | None], *, discard_damaged: bool = True) -> T | None:
        """``verify(path)``'s answer for a sound entry; None when it is missing or damaged (and then discarded,
        unless ``discard_damaged`` is false)."""
        path = self.path
        if not path.is_dir():
            return None
        value = self._verified(path, verify)
        if value is None:
            if discard_damaged:
                with locked(path):
                    discard(path)
            return None
        touch(path)
        return value

    def write(self, fill: Callable[[Path], None]) -> None:
        """Fill a temporary directory with ``fill`` and publish it as the entry (the caller holds the lock)."""
        temporary = atomic_dir(self.path)
        try:
            fill(temporary)
            write_seal(temporary, cache_secret(self.cache), self.kind, self.key, self.sealed)
            publish(temporary, self.path)
        except BaseException:
            discard(temporary)
            raise

    def get(self, verify: Callable[[Path], T | None], make: Callable[[Path], None],
            on_damaged: Callable[[], None] = lambda: None) -> T:
        """The entry, read and verified; made (once, under its lock) when missing or damaged.

        ``make`` fills a temporary directory; what it made must then verify, or it is an error.
        """
        value = self.read(verify, discard_damaged=False)
        if value is not None:
            return value
        path = self.path
        with locked(path):
            if path.is_dir():
                value = self._verified(path, verify)  # another build may have made it meanwhile
                if value is not None:
                    return value
                on_damaged()
                discard(path)
            self.write(make)
            value = self._verified(path, verify)
        if value is None:
            raise OSError(f"the cache entry just written to {path} does not read back")
        return value


WHEEL_META = "wheel.json"


def read_wheel(path: Path) -> Path | None:
    """The one wheel of a built-wheel entry, when its sha256 is the one recorded when it was stored."""
    try:
        meta = json.loads((path / WHEEL_META).read_text())
        wheel = path / meta["file"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if "/" in meta["file"] or not wheel.is_file() or file_sha256(wheel) != meta.get("sha256"):
        return None
    return wheel


def store_wheel(wheel: Path) -> Callable[[Path], None]:
    """What fills a built-wheel entry with ``wheel`` and its sha256."""
    def fill(temporary: Path) -> None:
        shutil.copyfile(wheel, temporary / wheel.name)
        meta = {"file": wheel.name, "sha256": file_sha256(temporary / wheel.name)}
        (temporary / WHEEL_META).write_text(json.dumps(meta))

    return fill
