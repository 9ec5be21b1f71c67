"""What the Lambda runtime provides, laid out for the handler check of fat zips.

lambda-fat leaves boto3 and botocore out by default, since the runtime ships
them; handler modules still import them. For the handler check the lock's own
pins of what was left out are written, from their packs, into a directory put
last on ``sys.path``, where the runtime's copy sits on Lambda.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hatch_lambda.assemble.archive import write_tree
from hatch_lambda.assemble.zips import merge
from hatch_lambda.config.options import LambdaConfig
from hatch_lambda.context import BuildContext
from hatch_lambda.lockfile.closures import Plan
from hatch_lambda.packs.build import packs_for
from hatch_lambda.packs.pack import PackSpec
from hatch_lambda.packs.sources import pack_sources


def runtime_extra(config: LambdaConfig, closures: Plan, ctx: BuildContext) -> Path | None:
    """A directory holding ``closures.provided``, or None when nothing was left out."""
    if not closures.provided:
        return None
    provided = dataclasses.replace(closures.resolution, distributions=closures.provided)
    spec = dataclasses.replace(PackSpec.of(config), strip=False, strip_patterns=(), keep_patterns=())
    # Kept with the build's other packs (unstripped ones have keys of their own).
    own = ctx.within("runtime-work")
    sources = pack_sources(config, spec, provided, own)
    packs = packs_for(spec, sources, own, provided.lock_path.parent)
    root = ctx.scratch / "runtime-extra"
    write_tree(merge(packs), root)
    return root
