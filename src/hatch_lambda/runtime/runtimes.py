"""The Lambda Python runtimes, as data: one line per runtime.

Each line says which CPython patch release the runtime runs (markers such as
``python_full_version < '3.11.3'`` are judged at it), the Amazon Linux release
and its glibc (which manylinux wheels fit), and AWS's deprecation dates, with
where each came from. Adding a runtime is one more line.

- Patch releases: what the runtime itself reported, newest evidence found. For
  3.10-3.12 the platform descriptions Pants generated inside Lambda
  (pantsbuild/pants ``src/python/pants/backend/awslambda/python/complete_platform_3.X-*.json``,
  2024-08-01); for 3.13 and 3.14 issues on aws/aws-lambda-base-images saying what
  ``public.ecr.aws/lambda/python:3.X`` runs (#364, 2026-01-02; #374, 2026-01-09).
  AWS moves runtimes to newer patch releases without notice; a newer one only
  matters for a marker that names a patch between the two.
- Dates: AWS Lambda Developer Guide, "Lambda runtimes"
  (docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html), as copied into
  aws-cloudformation/cfn-lint ``LmbdRuntimeLifecycle.json`` (2026-06-02) and
  endoflife.date ``aws-lambda`` (2026-08-16), which agree.
- glibc: 2.26 on Amazon Linux 2, 2.34 on Amazon Linux 2023 (AL2023 user guide,
  "glibc, gcc and binutils"); Pants' platforms list manylinux_2_26 and
  manylinux_2_34 as the highest tags of those runtimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

#: AWS's base image of each runtime; ``{python}`` and ``{arch}`` are filled in.
DEFAULT_IMAGE = "public.ecr.aws/lambda/python:{python}"


@dataclass(frozen=True)
class Runtime:
    """One Lambda Python runtime."""

    python: str  # "3.12"
    patch: str  # the CPython release the runtime runs, "3.12.12"
    os_release: str  # "Amazon Linux 2023"
    glibc: tuple[int, int]
    deprecated: date | None = None  # AWS stops security patches
    block_create: date | None = None  # no new functions on it
    block_update: date | None = None  # no updates of existing functions

    @property
    def identifier(self) -> str:
        """The Lambda runtime identifier, ``python3.12``."""
        return f"python{self.python}"

    def is_deprecated(self, today: date) -> bool:
        return self.deprecated is not None and today >= self.deprecated

    def deprecation_warning(self, today: date) -> str | None:
        """One line with the dates, once the runtime is deprecated; else None."""
        if self.deprecated is None or today < self.deprecated:
            return None
        blocked = []
        for what, when in (("creating functions", self.block_create), ("updating functions", self.block_update)):
            if when is not None:
                blocked.append(f"{what} {'was' if today >= when else 'will be'} blocked on {when.isoformat()}")
        newest = RUNTIMES[next(reversed(RUNTIMES))]
        return (
            f"{self.identifier} is a deprecated Lambda runtime (since {self.deprecated.isoformat()}: no more "
            f"security patches); " + ("; ".join(blocked) + "; " if blocked else "")
            + f"move to {newest.identifier} (set python = \"{newest.python}\")"
        )


_TABLE = (
    #       python  patch      OS                   glibc    deprecated         block create       block update
    Runtime("3.10", "3.10.14", "Amazon Linux 2", (2, 26), date(2026, 10, 31), date(2027, 2, 1), date(2027, 3, 3)),
    Runtime("3.11", "3.11.9", "Amazon Linux 2", (2, 26), date(2027, 6, 30), date(2027, 7, 31), date(2027, 8, 31)),
    Runtime("3.12", "3.12.3", "Amazon Linux 2023", (2, 34), date(2028, 10, 31), date(2028, 11, 30), date(2029, 1, 10)),
    Runtime("3.13", "3.13.9", "Amazon Linux 2023", (2, 34), date(2029, 6, 30), date(2029, 7, 31), date(2029, 8, 31)),
    Runtime("3.14", "3.14.0", "Amazon Linux 2023", (2, 34), date(2029, 6, 30), date(2029, 7, 31), date(2029, 8, 31)),
)

#: python ("3.12") -> its runtime, oldest first.
RUNTIMES: dict[str, Runtime] = {runtime.python: runtime for runtime in _TABLE}
#: Runtimes AWS no longer accepts new functions on; refused outright.
RETIRED = ("2.7", "3.6", "3.7", "3.8", "3.9")
