"""Target: the wheel tags and marker environment of one Lambda runtime."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.tags import Tag

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.runtime.target import Target, lowest_runtime

ALL_TARGETS = [(python, arch) for python in ("3.10", "3.11", "3.12", "3.13", "3.14") for arch in ("x86_64", "arm64")]


def tag_strings(target: Target) -> list[str]:
    return [str(tag) for tag in target.tags]


@pytest.mark.parametrize("python, arch", ALL_TARGETS)
def test_interpreter_specific_tags_come_before_abi3_before_none(python, arch):
    target = Target(python, arch)
    cp = f"cp{python.replace('.', '')}"
    tags = list(target.tags)
    own = [rank for rank, tag in enumerate(tags) if tag.interpreter == cp and tag.abi == cp]
    own_abi3 = [rank for rank, tag in enumerate(tags) if tag.interpreter == cp and tag.abi == "abi3"]
    own_none = [rank for rank, tag in enumerate(tags) if tag.interpreter == cp and tag.abi == "none"]
    abi3 = [rank for rank, tag in enumerate(tags) if tag.abi == "abi3"]
    generic = [rank for rank, tag in enumerate(tags) if tag.interpreter.startswith("py")]
    assert own and own_abi3 and own_none and generic
    # Same order as pip: cpXY-cpXY, then cpXY-abi3, then cpXY-none, on each platform...
    assert max(own) < min(own_abi3)
    assert max(own_abi3) < min(own_none)
    # ...and every abi3 wheel (older cpXY-abi3 too) before any generic pyXY tag.
    assert max(abi3) < min(generic)
    assert all(tags[rank].interpreter in {cp, *(f"cp3{n}" for n in range(2, 15))} for rank in abi3)
    # The best tag is the runtime's own ABI on its newest glibc.
    major, minor = target.glibc
    assert str(tags[0]) == f"{cp}-{cp}-manylinux_{major}_{minor}_{target.machine}"


@pytest.mark.parametrize("python, arch", ALL_TARGETS)
def test_pure_python_tag_comes_after_every_platform_tag(python, arch):
    tags = tag_strings(Target(python, arch))
    pure = tags.index("py3-none-any")
    assert all(not tag.endswith("-any") for tag in tags[: tags.index(f"cp{python.replace('.', '')}-none-any")])
    # Only older pyXY-none-any spellings follow it.
    assert all(tag.startswith("py3") and tag.endswith("-none-any") for tag in tags[pure + 1 :])
    assert tags[-1] == "py30-none-any"


@pytest.mark.parametrize("python, arch", ALL_TARGETS)
def test_only_manylinux_platforms_of_the_right_machine(python, arch):
    target = Target(python, arch)
    for tag in target.tags:
        if tag.platform == "any":
            continue
        assert tag.platform.startswith("manylinux") or tag.platform == f"linux_{target.machine}", tag
        assert tag.platform.endswith("_" + target.machine), tag
    assert not any("musllinux" in t or "macosx" in t or "win" in t for t in tag_strings(target))


@pytest.mark.parametrize("python, arch", ALL_TARGETS)
def test_plain_linux_wheels_rank_below_every_manylinux_tag(python, arch):
    """As uv and pip rank them for a manylinux platform (custom indexes such as PyTorch's publish only these)."""
    target = Target(python, arch)
    linux = f"linux_{target.machine}"
    assert target.platforms[-1] == linux
    cp = f"cp{python.replace('.', '')}"
    priority = target.tag_priority
    worst_manylinux = max(rank for tag, rank in priority.items() if tag.interpreter == cp and tag.abi == cp
                          and tag.platform.startswith("manylinux"))
    assert priority[Tag(cp, cp, linux)] == worst_manylinux + 1
    assert Tag(cp, cp, "linux_x86_64" if arch == "arm64" else "linux_aarch64") not in priority


@pytest.mark.parametrize(
    "python, glibc",
    [("3.10", (2, 26)), ("3.11", (2, 26)), ("3.12", (2, 34)), ("3.13", (2, 34)), ("3.14", (2, 34))],
)
def test_glibc_per_runtime(python, glibc):
    target = Target(python)
    assert target.glibc == glibc
    assert target.platforms[0] == f"manylinux_{glibc[0]}_{glibc[1]}_x86_64"
    # Nothing newer than the runtime's glibc is accepted.
    newer = f"manylinux_{glibc[0]}_{glibc[1] + 1}_x86_64"
    assert newer not in target.platforms
    assert Tag(f"cp{python.replace('.', '')}", f"cp{python.replace('.', '')}", newer) not in target.tag_priority


def test_platforms_count_down_from_the_runtime_glibc():
    platforms = Target("3.12", "x86_64").platforms
    versioned = [p for p in platforms if p.startswith("manylinux_")]
    minors = [int(p.split("_")[2]) for p in versioned]
    assert minors == list(range(34, 4, -1))


@pytest.mark.parametrize("python", ["3.11", "3.12"])
def test_legacy_aliases_follow_their_equivalent_on_x86_64(python):
    platforms = Target(python, "x86_64").platforms
    for legacy, equivalent in (
        ("manylinux2014_x86_64", "manylinux_2_17_x86_64"),
        ("manylinux2010_x86_64", "manylinux_2_12_x86_64"),
        ("manylinux1_x86_64", "manylinux_2_5_x86_64"),
    ):
        assert platforms.index(legacy) == platforms.index(equivalent) + 1
    assert platforms[-2:] == ["manylinux1_x86_64", "linux_x86_64"]


@pytest.mark.parametrize("python", ["3.11", "3.12"])
def test_aarch64_has_only_the_manylinux2014_alias(python):
    platforms = Target(python, "arm64").platforms
    assert platforms.index("manylinux2014_aarch64") == platforms.index("manylinux_2_17_aarch64") + 1
    assert "manylinux2010_aarch64" not in platforms
    assert "manylinux1_aarch64" not in platforms
    assert platforms[0] == ("manylinux_2_26_aarch64" if python == "3.11" else "manylinux_2_34_aarch64")


def test_legacy_alias_ranks_between_its_neighbours_in_tags():
    priority = Target("3.11", "x86_64").tag_priority
    cp = "cp311"
    rank = {p: priority[Tag(cp, cp, p)] for p in ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_16_x86_64")}
    assert rank["manylinux_2_17_x86_64"] + 1 == rank["manylinux2014_x86_64"]
    assert rank["manylinux2014_x86_64"] + 1 == rank["manylinux_2_16_x86_64"]


def test_tag_priority_matches_tag_order():
    target = Target("3.13", "arm64")
    assert [tag for tag, _ in sorted(target.tag_priority.items(), key=lambda item: item[1])] == target.tags
    assert len(target.tag_priority) == len(target.tags)  # no duplicates


def test_abi3_from_older_pythons_is_accepted_but_not_newer():
    priority = Target("3.12", "x86_64").tag_priority
    assert Tag("cp38", "abi3", "manylinux_2_17_x86_64") in priority
    assert Tag("cp313", "abi3", "manylinux_2_17_x86_64") not in priority
    assert Tag("cp311", "cp311", "manylinux_2_17_x86_64") not in priority
    assert priority[Tag("cp312", "abi3", "manylinux_2_17_x86_64")] < priority[Tag("cp38", "abi3", "manylinux_2_34_x86_64")]


@pytest.mark.parametrize("arch, machine", [("arm64", "aarch64"), ("x86_64", "x86_64")])
def test_arch_to_machine(arch, machine):
    target = Target("3.12", arch)
    assert target.arch == arch
    assert target.machine == machine
    assert target.marker_environment["platform_machine"] == machine
    assert target.docker_platform == ("linux/arm64" if arch == "arm64" else "linux/amd64")


@pytest.mark.parametrize("alias, arch", [("aarch64", "arm64"), ("amd64", "x86_64")])
def test_arch_aliases(alias, arch):
    assert Target("3.12", alias).arch == arch
    assert Target("3.12", alias) == Target("3.12", arch)


@pytest.mark.parametrize("python, arch", ALL_TARGETS)
def test_marker_environment_is_complete(python, arch):
    env = Target(python, arch).marker_environment
    # Every variable PEP 508 defines, so no marker falls back to the host.
    assert set(env) == set(default_environment())
    assert all(isinstance(value, str) for value in env.values())
    assert env["python_version"] == python
    # The patch release Lambda runs (see hatch_lambda.runtime.runtimes).
    from hatch_lambda.runtime.runtimes import RUNTIMES

    assert env["python_full_version"] == RUNTIMES[python].patch
    assert env["implementation_version"] == env["python_full_version"]
    assert env["implementation_name"] == "cpython"
    assert env["platform_python_implementation"] == "CPython"
    assert env["sys_platform"] == "linux"
    assert env["platform_system"] == "Linux"
    assert env["os_name"] == "posix"


def test_runtime_names_and_description():
    target = Target("3.12", "arm64")
    assert target.runtime == "python3.12"
    assert target.os_release == "Amazon Linux 2023"
    assert target.version_tuple == (3, 12)
    assert target.describe() == "python 3.12 arm64 (Amazon Linux 2023, glibc 2.34)"
    assert Target("3.11").describe() == "python 3.11 x86_64 (Amazon Linux 2, glibc 2.26)"


@pytest.mark.parametrize("python", ["3.9", "3.8", "3.7", "3.6", "2.7"])
def test_retired_pythons_are_refused(python):
    with pytest.raises(LambdaBuildError) as info:
        Target(python)
    assert "retired" in str(info.value)
    assert python in info.value.problem
    assert "3.12" in info.value.fix


@pytest.mark.parametrize("python", ["3.15", "4.0", "3", "3.12.x", "3.15.1", "3.12.1.2", "", "py3.12"])
def test_unknown_pythons_are_refused(python):
    with pytest.raises(LambdaBuildError) as info:
        Target(python)
    assert "unknown Lambda python version" in info.value.problem
    assert "3.10, 3.11, 3.12, 3.13, 3.14" in info.value.fix


@pytest.mark.parametrize("arch", ["ppc64le", "arm", "i686", "ARM64", ""])
def test_unknown_arches_are_refused(arch):
    with pytest.raises(LambdaBuildError) as info:
        Target("3.12", arch)
    assert "unknown Lambda arch" in info.value.problem
    assert "x86_64" in info.value.fix and "arm64" in info.value.fix


@pytest.mark.parametrize(
    "requires_python, expected",
    [
        (None, "3.10"),
        ("", "3.10"),
        (">=3.11", "3.11"),
        (">=3.12", "3.12"),
        (">=3.11.4", "3.11"),
        ("~=3.13.0", "3.13"),
        (">=3.8,<3.12", "3.10"),
    ],
)
def test_lowest_runtime(requires_python, expected):
    assert lowest_runtime(requires_python) == expected


def test_lowest_runtime_refuses_impossible_ranges():
    with pytest.raises(LambdaBuildError) as info:
        lowest_runtime(">=3.15")
    assert "allows no Lambda runtime" in info.value.problem
    with pytest.raises(LambdaBuildError) as info:
        lowest_runtime("not a specifier")
    assert "invalid requires-python" in info.value.problem


# --- the runtime table ---------------------------------------------------------


def test_python_full_version_markers_are_judged_at_the_runtime_patch_release():
    from hatch_lambda.lockfile.markers import evaluate
    from hatch_lambda.runtime.runtimes import RUNTIMES

    for python, runtime in RUNTIMES.items():
        environment = Target(python).marker_environment
        assert environment["python_full_version"] == runtime.patch
        assert runtime.patch.startswith(python + ".")
        assert int(runtime.patch.rsplit(".", 1)[1]) >= 0
    # 3.11.9 runs on Lambda: a package for "< 3.11.3" (a bug-fix boundary uv writes as it is) is not wanted,
    # and "<= 3.11" (which only 3.11.0 satisfies) neither.
    environment = Target("3.11").marker_environment
    assert not evaluate("python_full_version < '3.11.3'", environment)
    assert not evaluate("python_full_version <= '3.11'", environment)
    assert evaluate("python_full_version >= '3.11.3'", environment)
    assert evaluate("python_version <= '3.11'", environment)


def test_every_runtime_has_one_line_with_its_facts():
    from hatch_lambda.runtime.runtimes import RUNTIMES

    assert list(RUNTIMES) == ["3.10", "3.11", "3.12", "3.13", "3.14"]
    for python, runtime in RUNTIMES.items():
        assert runtime.identifier == f"python{python}"
        assert runtime.glibc == ((2, 26) if runtime.os_release == "Amazon Linux 2" else (2, 34))
        assert runtime.deprecated < runtime.block_create <= runtime.block_update
    source = Path(__file__).parent.parent / "src" / "hatch_lambda" / "runtime" / "runtimes.py"
    lines = [line for line in source.read_text().splitlines() if line.strip().startswith('Runtime("')]
    assert len(lines) == len(RUNTIMES)  # adding a runtime is one line


def test_a_deprecated_runtime_warns_with_its_dates():
    from datetime import date

    from hatch_lambda.runtime.runtimes import RUNTIMES

    runtime = RUNTIMES["3.10"]
    assert runtime.deprecation_warning(date(2026, 10, 30)) is None
    warning = runtime.deprecation_warning(date(2026, 12, 2))
    assert "python3.10 is a deprecated Lambda runtime (since 2026-10-31" in warning
    assert "creating functions will be blocked on 2027-02-01" in warning
    assert "updating functions will be blocked on 2027-03-03" in warning
    assert 'python = "3.14"' in warning
    later = runtime.deprecation_warning(date(2027, 2, 15))
    assert "creating functions was blocked on 2027-02-01" in later
    assert RUNTIMES["3.13"].deprecation_warning(date(2026, 12, 2)) is None


def test_requires_python_is_judged_at_the_runtime_patch_release():
    from packaging.specifiers import SpecifierSet

    from hatch_lambda.runtime.runtimes import RUNTIMES
    from hatch_lambda.runtime.target import allowed_runtimes

    patch = RUNTIMES["3.12"].patch
    major, minor, micro = patch.split(".")
    newer = f"{major}.{minor}.{int(micro) + 1}"
    assert "3.12" in allowed_runtimes(SpecifierSet(f">={patch}"))
    assert "3.12" not in allowed_runtimes(SpecifierSet(f">={newer}"))  # Lambda's 3.12 is older than that
    assert allowed_runtimes(SpecifierSet(">=3.11,<3.13")) == ["3.11", "3.12"]


def test_a_newer_patch_release_than_the_table_knows_can_be_named():
    """AWS moves runtimes to newer patch releases; python = "3.13.14" says Lambda runs that one now."""
    from hatch_lambda.runtime.runtimes import RUNTIMES

    target = Target("3.13.14", "arm64")
    assert (target.python, target.patch, target.full_version) == ("3.13", "3.13.14", "3.13.14")
    assert target.marker_environment["python_full_version"] == "3.13.14"
    assert target.runtime == "python3.13" and target.glibc == (2, 34)
    assert "python 3.13 (3.13.14) arm64" in target.describe()
    # The table's own patch release is the same target as the plain version.
    assert Target(RUNTIMES["3.12"].patch) == Target("3.12")
    with pytest.raises(LambdaBuildError) as info:
        Target("3.12.1")  # older than what Lambda runs
    assert info.value.problem == f"python 3.12.1 is older than the {RUNTIMES['3.12'].patch} that Lambda's python3.12 runs"
