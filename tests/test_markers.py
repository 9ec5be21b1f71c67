"""Marker evaluation with uv's conflict pseudo-extras."""

from __future__ import annotations

import pytest
from packaging.markers import InvalidMarker, Marker

from hatch_lambda.lockfile.markers import encode_extra, encode_group, evaluate
from hatch_lambda.runtime.target import Target

ENV_311_X86 = Target("3.11", "x86_64").marker_environment
ENV_312_ARM = Target("3.12", "arm64").marker_environment

CPU = "extra-7-project-cpu"
GPU = "extra-7-project-gpu"


def test_encode_extra_and_group_as_uv_does():
    assert encode_extra("project", "cpu") == CPU
    # Names are canonicalized before their length is counted.
    assert encode_extra("Extras_App", "Legacy") == "extra-10-extras-app-legacy"
    assert encode_extra("my.pkg", "Fast_Path") == "extra-6-my-pkg-fast-path"
    assert encode_group("project", "dev") == "group-7-project-dev"
    assert encode_group("Extras_App", "Lint") == "group-10-extras-app-lint"


def test_encoded_names_match_a_real_lock():
    # The conflict marker uv wrote into the extras-app fixture.
    from helpers.projects import fixture_path

    text = (fixture_path("extras-app") / "uv.lock").read_text()
    assert f"extra == '{encode_extra('extras-app', 'legacy')}'" in text


@pytest.mark.parametrize("marker", [None, ""])
def test_no_marker_always_holds(marker):
    assert evaluate(marker, ENV_311_X86) is True


def test_pseudo_extra_equal_is_true_only_when_active():
    marker = f"extra == '{CPU}'"
    assert evaluate(marker, ENV_311_X86, {CPU}) is True
    assert evaluate(marker, ENV_311_X86, {CPU, GPU}) is True
    assert evaluate(marker, ENV_311_X86, {GPU}) is False
    assert evaluate(marker, ENV_311_X86) is False


def test_pseudo_extra_not_equal():
    marker = f"extra != '{CPU}'"
    assert evaluate(marker, ENV_311_X86) is True
    assert evaluate(marker, ENV_311_X86, {GPU}) is True
    assert evaluate(marker, ENV_311_X86, {CPU}) is False


def test_variable_on_the_right():
    assert evaluate(f"'{CPU}' == extra", ENV_311_X86, {CPU}) is True
    assert evaluate(f"'{CPU}' == extra", ENV_311_X86, set()) is False
    assert evaluate(f"'{CPU}' != extra", ENV_311_X86, set()) is True


def test_group_pseudo_extras():
    dev = encode_group("project", "dev")
    assert evaluate(f"extra == '{dev}'", ENV_311_X86, {dev}) is True
    assert evaluate(f"extra == '{dev}'", ENV_311_X86, {CPU}) is False


def test_several_pseudo_extras_can_be_active_at_once():
    marker = f"extra == '{CPU}' and extra == '{GPU}'"
    assert evaluate(marker, ENV_311_X86, {CPU, GPU}) is True
    assert evaluate(marker, ENV_311_X86, {CPU}) is False


def test_and_binds_tighter_than_or():
    marker = f"extra == '{CPU}' or extra == '{GPU}' and sys_platform == 'win32'"
    assert evaluate(marker, ENV_311_X86, {CPU}) is True
    assert evaluate(marker, ENV_311_X86, {GPU}) is False  # GPU needs win32
    assert evaluate(marker, ENV_311_X86, set()) is False


def test_parentheses_override_precedence():
    marker = f"(extra == '{CPU}' or extra == '{GPU}') and sys_platform == 'win32'"
    assert evaluate(marker, ENV_311_X86, {CPU}) is False
    marker = f"(extra == '{CPU}' or extra == '{GPU}') and sys_platform == 'linux'"
    assert evaluate(marker, ENV_311_X86, {GPU}) is True


def test_nested_mix_of_environment_and_pseudo_extras():
    # The shape uv writes on conflicting forks.
    marker = (
        f"(python_full_version < '3.12' and extra == '{CPU}') "
        f"or (platform_machine == 'aarch64' and extra != '{CPU}' and extra == '{GPU}')"
    )
    assert evaluate(marker, ENV_311_X86, {CPU}) is True
    assert evaluate(marker, ENV_311_X86, {GPU}) is False
    assert evaluate(marker, ENV_312_ARM, {CPU}) is False
    assert evaluate(marker, ENV_312_ARM, {GPU}) is True
    assert evaluate(marker, ENV_312_ARM, {CPU, GPU}) is False


def test_deeply_nested_groups():
    marker = f"((extra == '{CPU}' and (sys_platform == 'linux' or sys_platform == 'darwin')) or os_name == 'nt')"
    assert evaluate(marker, ENV_312_ARM, {CPU}) is True
    assert evaluate(marker, ENV_312_ARM, set()) is False


def test_ordinary_extras_are_compared_canonically():
    assert evaluate("extra == 'Socks_Proxy'", ENV_311_X86, {"socks-proxy"}) is True
    assert evaluate("extra == 'socks.proxy'", ENV_311_X86, {"socks-proxy"}) is True
    assert evaluate("extra == 'socks'", ENV_311_X86, {"http"}) is False


@pytest.mark.parametrize(
    "marker, on_311_x86, on_312_arm",
    [
        ("python_full_version < '3.12'", True, False),
        ("python_version >= '3.12'", False, True),
        ("platform_machine == 'aarch64'", False, True),
        ("platform_machine == 'x86_64' and python_version == '3.11'", True, False),
        ("sys_platform == 'linux'", True, True),
        ("sys_platform == 'win32' or sys_platform == 'darwin'", False, False),
        ("platform_python_implementation == 'PyPy'", False, False),
        ("implementation_name == 'cpython'", True, True),
        ("platform_system == 'Linux' and os_name == 'posix'", True, True),
        ("python_full_version >= '3.11.0' and python_full_version < '3.13'", True, True),
    ],
)
def test_environment_markers(marker, on_311_x86, on_312_arm):
    assert evaluate(marker, ENV_311_X86) is on_311_x86
    assert evaluate(marker, ENV_312_ARM) is on_312_arm
    # Agrees with packaging for markers without extras.
    assert Marker(marker).evaluate(dict(ENV_312_ARM)) is on_312_arm


def test_environment_clause_next_to_extra_uses_the_target_not_the_host():
    marker = f"extra == '{CPU}' and platform_machine == 'aarch64'"
    assert evaluate(marker, ENV_312_ARM, {CPU}) is True
    assert evaluate(marker, ENV_311_X86, {CPU}) is False


def test_invalid_markers_raise():
    with pytest.raises(InvalidMarker):
        evaluate("python_version >>> '3'", ENV_311_X86)
    with pytest.raises(InvalidMarker):
        evaluate(f"extra > '{CPU}'", ENV_311_X86, {CPU})
