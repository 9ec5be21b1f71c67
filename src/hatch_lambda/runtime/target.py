"""The Lambda runtime a build is for: Python version, CPU, glibc.

From a :class:`Target` come the complete marker environment (every key set, so
nothing falls back to the host's values) and the ordered list of wheel tags
the runtime accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.version import Version

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.runtime.runtimes import RETIRED, RUNTIMES, Runtime

#: User-facing arch name -> machine name as Python and ELF tools report it.
ARCHES: dict[str, str] = {"x86_64": "x86_64", "arm64": "aarch64"}
ARCH_ALIASES = {"amd64": "x86_64", "aarch64": "arm64"}

#: Legacy manylinux names and the glibc they stand for.
LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}


def check_python(python: str) -> str:
    """A runtime's version, ``3.12``, or one with the patch release it runs, ``3.12.11`` (for when AWS has
    moved the runtime past the patch release :mod:`.runtimes` knows)."""
    if python in RUNTIMES:
        return python
    series, _, micro = python.rpartition(".")
    if series in RUNTIMES and micro.isdigit() and python.count(".") == 2:
        return python
    if python in RETIRED:
        raise LambdaBuildError(
            f"python {python} is a retired Lambda runtime; AWS no longer accepts new functions on it",
            f"use one of {', '.join(RUNTIMES)}",
        )
    raise LambdaBuildError(
        f"unknown Lambda python version {python!r}",
        f"use one of {', '.join(RUNTIMES)}",
    )


def check_arch(arch: str) -> str:
    arch = ARCH_ALIASES.get(arch, arch)
    if arch not in ARCHES:
        raise LambdaBuildError(f"unknown Lambda arch {arch!r}", "use 'x86_64' or 'arm64'")
    return arch


@dataclass(frozen=True)
class Target:
    """One Lambda runtime: ``python`` like "3.12", ``arch`` "x86_64" or "arm64"."""

    python: str
    arch: str = "x86_64"
    patch: str | None = None  # the patch release, when not the one the runtime table names

    def __post_init__(self) -> None:
        check_python(self.python)
        if self.python.count(".") == 2:  # "3.12.11": runtime 3.12 at that patch release
            object.__setattr__(self, "patch", self.python)
            object.__setattr__(self, "python", self.python.rpartition(".")[0])
        if self.patch is not None and not self.patch.startswith(self.python + "."):
            raise LambdaBuildError(f"patch release {self.patch!r} is not one of python {self.python}")
        if self.patch is not None:
            known = self.runtime_info.patch
            if Version(self.patch) < Version(known):
                raise LambdaBuildError(
                    f"python {self.patch} is older than the {known} that Lambda's {self.runtime} runs",
                    f'set python = "{self.python}", or a patch release of it that Lambda runs now',
                )
            if self.patch == known:
                object.__setattr__(self, "patch", None)
        object.__setattr__(self, "arch", check_arch(self.arch))

    @property
    def machine(self) -> str:
        """``platform.machine()`` on the runtime: x86_64 or aarch64."""
        return ARCHES[self.arch]

    @property
    def runtime_info(self) -> Runtime:
        return RUNTIMES[self.python]

    @property
    def os_release(self) -> str:
        return self.runtime_info.os_release

    @property
    def glibc(self) -> tuple[int, int]:
        return self.runtime_info.glibc

    @property
    def runtime(self) -> str:
        """The Lambda runtime identifier, e.g. ``python3.12``."""
        return f"python{self.python}"

    @property
    def docker_platform(self) -> str:
        return "linux/amd64" if self.arch == "x86_64" else "linux/arm64"

    @property
    def version_tuple(self) -> tuple[int, int]:
        major, minor = self.python.split(".")
        return int(major), int(minor)

    @property
    def full_version(self) -> str:
        """The version ``python_full_version`` markers compare against: the patch release Lambda runs."""
        return self.patch or self.runtime_info.patch

    @cached_property
    def marker_environment(self) -> dict[str, str]:
        """Every PEP 508 marker variable, as the runtime would report it.

        ``platform_release`` and ``platform_version`` describe the kernel of the
        Lambda host, which AWS does not fix; they are left empty.
        """
        return {
            "implementation_name": "cpython",
            "implementation_version": self.full_version,
            "os_name": "posix",
            "platform_machine": self.machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": self.full_version,
            "python_version": self.python,
            "sys_platform": "linux",
        }

    @cached_property
    def platforms(self) -> list[str]:
        """manylinux platform tags from the runtime's glibc down, with legacy aliases, then
        ``linux_<machine>``, ranked last as uv and pip rank it for a manylinux platform."""
        major, top = self.glibc
        out = []
        for minor in range(top, 4, -1):
            out.append(f"manylinux_{major}_{minor}_{self.machine}")
            legacy = LEGACY_MANYLINUX.get((major, minor))
            # The legacy names were only ever defined for x86 (and 2014 for aarch64 too).
            if legacy and (self.machine == "x86_64" or legacy == "manylinux2014"):
                out.append(f"{legacy}_{self.machine}")
        out.append(f"linux_{self.machine}")
        return out

    @cached_property
    def tags(self) -> list[Tag]:
        """Compatible wheel tags, most preferred first."""
        version = self.version_tuple
        return [
            *cpython_tags(version, platforms=self.platforms),
            *compatible_tags(version, f"cp{version[0]}{version[1]}", platforms=self.platforms),
        ]

    @cached_property
    def platform_set(self) -> frozenset[str]:
        return frozenset(tag.platform for tag in self.tags)

    @cached_property
    def interpreter_set(self) -> frozenset[str]:
        return frozenset(tag.interpreter for tag in self.tags)

    @cached_property
    def tag_priority(self) -> dict[Tag, int]:
        """Tag -> rank (lower is better)."""
        return {tag: rank for rank, tag in enumerate(self.tags)}

    def describe(self) -> str:
        major, minor = self.glibc
        patch = f" ({self.patch})" if self.patch else ""
        return f"python {self.python}{patch} {self.arch} ({self.os_release}, glibc {major}.{minor})"


def allowed_runtimes(spec: SpecifierSet) -> list[str]:
    """The Lambda runtimes a ``requires-python`` specifier admits, judged at the patch release each runs."""
    return [p for p, runtime in RUNTIMES.items() if spec.contains(runtime.patch, prereleases=True)]


def lowest_runtime(requires_python: str | None) -> str:
    """The lowest Lambda runtime that ``requires-python`` allows."""
    if not requires_python:
        return next(iter(RUNTIMES))
    try:
        spec = SpecifierSet(requires_python)
    except InvalidSpecifier as exc:
        raise LambdaBuildError(f"invalid requires-python {requires_python!r}: {exc}") from None
    allowed = allowed_runtimes(spec)
    if allowed:
        return allowed[0]
    raise LambdaBuildError(
        f"requires-python {requires_python!r} allows no Lambda runtime",
        f"Lambda runs python {', '.join(RUNTIMES)}; widen requires-python",
    )
