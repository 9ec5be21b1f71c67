"""The guard that keeps the ``lambda`` build hook from running inside its own builds.

When a Lambda build turns a directory (the project itself, a workspace member,
a path source) into a wheel, it runs pypa/build in a subprocess; that wheel
build would run the hook again, and the hook would start another Lambda build.
Those subprocesses get ``HATCH_LAMBDA_NESTED=1`` and the hook does nothing
while it is set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

NESTED_ENV = "HATCH_LAMBDA_NESTED"


def is_nested(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(NESTED_ENV, "") not in ("", "0")


def nested_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """A copy of ``environ`` for a wheel build started by a Lambda build."""
    return {**environ, NESTED_ENV: "1"}
