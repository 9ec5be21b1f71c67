"""What the Lambda runtime provides, staged for the handler check of fat zips.

lambda-fat leaves boto3 and botocore out by default, since the runtime ships
them; handler modules still import them. For the handler check the lock's own
pins of what was left out are unpacked into a directory put last on
``sys.path``, where the runtime's copy sits on Lambda.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from .cache import cache_dir
from .closures import Plan
from .install import stage

Log = Callable[[str], None]


def runtime_extra(closures: Plan, scratch: Path, log: Log) -> Path | None:
    """A directory holding ``closures.provided`` unpacked, or None when nothing was left out."""
    if not closures.provided:
        return None
    provided = dataclasses.replace(closures.resolution, distributions=closures.provided)
    root = scratch / "runtime-extra"
    stage(provided, root, cache=cache_dir(), log=log)
    return root
