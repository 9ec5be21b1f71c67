"""What every stage of one build shares: where things are kept, and where the build speaks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hatch_lambda.scratch import PREFIX as SCRATCH_PREFIX

Log = Callable[[str], None]


@dataclass(frozen=True)
class BuildContext:
    cache: Path  # downloads, wheels built from sdists and git checkouts, metadata: the user's cache
    store: Path  # packs and layers: the cache, or a throw-away store in the scratch directory (-c)
    scratch: Path  # the build's scratch directory, beside its output
    log: Log = print
    warn: Log = print

    @property
    def work(self) -> Path:
        """The build's working files (unpacked wheels, built wheels, checkouts), inside its scratch directory."""
        return self.scratch / "work"

    @property
    def output(self) -> Path:
        """The output directory: the one the build's outermost scratch directory is in."""
        for directory in (self.scratch, *self.scratch.parents):
            if directory.name.startswith(SCRATCH_PREFIX):
                return directory.parent
        return self.scratch.parent

    @property
    def cached(self) -> bool:
        """Packs and layers are kept for later builds."""
        return self.store == self.cache

    def within(self, name: str) -> BuildContext:
        """The same build, its working files in a subdirectory of its scratch directory."""
        return BuildContext(self.cache, self.store, self.scratch / name, self.log, self.warn)
