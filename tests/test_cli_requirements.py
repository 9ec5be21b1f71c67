"""``python -m hatch_lambda requirements``, run as a user would."""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
import time

import pytest

from hatch_lambda.lockfile.resolve import resolve
from hatch_lambda.runtime.runtimes import RUNTIMES
from hatch_lambda.runtime.target import Target

from helpers.projects import copy_fixture, fixture_path, run_cli, sha, write_project

PIN = re.compile(r"^[a-z0-9][a-z0-9._-]*==[A-Za-z0-9.+!_-]+$")
HASH_LINE = re.compile(r"^    --hash=sha256:[0-9a-f]{64}$")


def ok(*args, **kwargs) -> list[str]:
    run = run_cli("requirements", *args, **kwargs)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    return run.stdout.splitlines()


def user_error(*args, **kwargs) -> str:
    run = run_cli("requirements", *args, **kwargs)
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert run.stdout == ""
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert 1 <= len(lines) <= 2, run.stderr
    assert lines[0].startswith("hatch-lambda: error: ")
    if len(lines) == 2:
        assert lines[1].startswith("  fix: ")
    return run.stderr


# --- output ------------------------------------------------------------------


def test_plain_pins_match_the_resolution():
    lines = ok(fixture_path("native-app"), "--python", "3.11")
    assert all(PIN.match(line) for line in lines), lines
    expected = [d.pin for d in resolve(fixture_path("native-app"), Target("3.11")).distributions]
    assert lines == expected
    assert [line.split("==")[0] for line in lines] == ["markupsafe", "orjson", "pyyaml"]


def test_project_dir_defaults_to_the_current_directory():
    assert ok(cwd=fixture_path("forked-app")) == ok(fixture_path("forked-app"))


def test_default_python_is_the_lowest_the_project_allows():
    # spectra-demo requires python >= 3.12: pyarrow's cp312 wheel is picked.
    lines = ok(fixture_path("spectra-demo"), "--show-files")
    assert "pyarrow==26.0.1  # cp312-cp312-manylinux_2_28_x86_64" in lines
    # native-app allows 3.11.
    assert ok(fixture_path("native-app"), "--show-files")[0].endswith("# cp311-cp311-manylinux_2_17_x86_64")


def test_show_files_labels_wheels_sdists_and_local_builds():
    lines = ok(fixture_path("native-app"), "--python", "3.12", "--arch", "arm64", "--show-files")
    for line in lines:
        pin, label = line.split("  # ")
        assert PIN.match(pin)
        assert re.fullmatch(r"cp312-cp312-manylinux_2_\d+_aarch64", label), label
    assert ok(fixture_path("sdist-app"), "--python", "3.11", "--show-files") == [
        "docopt==0.6.2  # sdist",
        "six==1.17.0  # py3-none-any",
    ]
    workspace = ok(fixture_path("workspace-app"), "--python", "3.11", "--show-files")
    assert "wsmember==0.2.0  # built from editable packages/wsmember" in workspace


def test_python_and_arch_change_the_output():
    forked_311 = ok(fixture_path("forked-app"), "--python", "3.11")
    forked_313 = ok(fixture_path("forked-app"), "--python", "3.13")
    assert "packaging==23.2" in forked_311 and "packaging==23.2" not in forked_313
    markers_x86 = ok(fixture_path("markers-app"), "--python", "3.12", "--arch", "x86_64")
    markers_arm = ok(fixture_path("markers-app"), "--python", "3.12", "--arch", "aarch64")
    assert any(line.startswith("certifi==") for line in markers_x86)
    assert any(line.startswith("idna==") for line in markers_arm)
    assert not any(line.startswith("certifi==") for line in markers_arm)


def test_extras_groups_exclude_and_package_flags():
    names = lambda lines: [line.split("==")[0] for line in lines]  # noqa: E731
    project = fixture_path("extras-app")
    assert names(ok(project)) == ["attrs"]
    both = names(ok(project, "--extra", "http", "--extra", "yaml", "--group", "dev"))
    assert both == [
        "attrs", "certifi", "charset-normalizer", "idna", "iniconfig", "pyflakes", "pysocks", "pyyaml", "requests", "urllib3",
    ]  # fmt: skip
    assert "urllib3==1.26.20" in ok(project, "--extra", "legacy")
    assert names(ok(fixture_path("spectra-demo"), "--exclude", "boto3", "--exclude", "pyarrow")) == [
        "annotated-types", "aws-lambda-powertools", "jmespath", "pydantic", "pydantic-core", "pydantic-settings",
        "python-dotenv", "typing-extensions", "typing-inspection",
    ]  # fmt: skip
    assert names(ok(fixture_path("workspace-app"), "--package", "wsmember")) == ["python-dateutil", "tzdata"]


# --- --hashes ----------------------------------------------------------------


def parse_hashed(lines: list[str]) -> dict[str, str]:
    """``{pin or 'name @ url': sha256}`` from ``--hashes`` output, checking its layout."""
    out = {}
    it = iter(lines)
    for line in it:
        if line.startswith("#"):
            continue
        assert line.endswith(" \\"), line
        hash_line = next(it)
        assert HASH_LINE.match(hash_line), hash_line
        out[line[: -len(" \\")]] = hash_line.split("sha256:")[1]
    return out


def test_hashes_format_and_values():
    project = fixture_path("native-app")
    lines = ok(project, "--python", "3.11", "--hashes")
    hashed = parse_hashed(lines)
    resolution = resolve(project, Target("3.11"))
    assert hashed == {d.pin: d.file.sha256 for d in resolution.distributions}
    lock_text = (project / "uv.lock").read_text()
    for dist in resolution.distributions:
        # The hash is the one uv.lock records next to the chosen wheel.
        (line,) = [line for line in lock_text.splitlines() if f"/{dist.file.filename}\"" in line]
        assert f'hash = "sha256:{dist.file.sha256}"' in line


def test_hashes_of_an_sdist_and_a_workspace_member():
    hashed = parse_hashed(ok(fixture_path("sdist-app"), "--hashes"))
    assert hashed["docopt==0.6.2"] == "49b3a825280bd66b3aa83585ef59c4a8c82f2c8a522dbe754a8bc8d08c85c491"
    lines = ok(fixture_path("workspace-app"), "--hashes")
    member = [line for line in lines if "wsmember" in line]
    assert member == ["# wsmember==0.2.0 (from editable packages/wsmember: no file to hash, build it separately)"]
    assert set(parse_hashed(lines)) == {"idna==3.20", "python-dateutil==4.0.0", "tzdata==2026.6"}


def test_hashes_of_path_and_url_sources(tmp_path):
    # The layout uv writes for a local wheel and a direct-URL sdist: the file has no location of its own.
    url = "https://files.example/remotesdist-0.6.2.tar.gz"
    lock = f"""
        version = 1
        revision = 2
        requires-python = ">=3.11"

        [[package]]
        name = "app"
        version = "0.1.0"
        source = {{ virtual = "." }}
        dependencies = [
            {{ name = "locallib" }},
            {{ name = "remotesdist" }},
        ]

        [[package]]
        name = "locallib"
        version = "1.0"
        source = {{ path = "wheels/locallib-1.0-py2.py3-none-any.whl" }}
        wheels = [
            {{ filename = "locallib-1.0-py2.py3-none-any.whl", hash = "sha256:{sha('locallib')}" }},
        ]

        [[package]]
        name = "remotesdist"
        version = "0.6.2"
        source = {{ url = "{url}" }}
        sdist = {{ hash = "sha256:{sha('remotesdist')}" }}
    """
    project = write_project(tmp_path / "app", lock)
    hashed = parse_hashed(ok(project, "--python", "3.11", "--hashes"))
    wheel = (project / "wheels" / "locallib-1.0-py2.py3-none-any.whl").resolve().as_uri()
    assert hashed == {f"locallib @ {wheel}": sha("locallib"), f"remotesdist @ {url}": sha("remotesdist")}
    assert ok(project, "--python", "3.11", "--show-files") == [
        "locallib==1.0  # py3-none-any",
        "remotesdist==0.6.2  # sdist",
    ]


def test_hashes_and_files_of_the_sources_fixture():
    project = fixture_path("sources-app")
    lines = ok(project, "--python", "3.11", "--arch", "arm64", "--hashes")
    hashed = parse_hashed(lines)
    wheel = project / "wheels" / "greeting-1.0.0-py3-none-any.whl"
    import hashlib

    assert hashed[f"greeting @ {wheel.resolve().as_uri()}"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert any(key.startswith("idna @ https://") for key in hashed)  # the aarch64-only URL source
    assert "# shouty==0.3.0 (from directory libs/shouty: no file to hash, build it separately)" in lines
    x86 = parse_hashed(ok(project, "--python", "3.11", "--hashes"))
    assert "idna==3.10" in x86
    assert "shouty==0.3.0  # built from directory libs/shouty" in ok(project, "--show-files")


@pytest.mark.network
@pytest.mark.parametrize("python, arch", [("3.11", "x86_64"), ("3.12", "arm64")])
def test_pip_installs_the_hashed_requirements(tmp_path, python, arch):
    """pip accepts the file in --require-hashes mode and fetches exactly the pinned wheels."""
    project = fixture_path("native-app")
    target = Target(python, arch)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(ok(project, "--python", python, "--arch", arch, "--hashes")) + "\n")
    site = tmp_path / "site"
    # pip takes --platform literally (manylinux_2_26 does not imply manylinux_2_17),
    # so every platform the runtime accepts is named, newest first.
    platforms = [arg for platform_tag in target.platforms for arg in ("--platform", platform_tag)]
    assert platforms[1] == f"manylinux_{target.glibc[0]}_{target.glibc[1]}_{target.machine}"
    run = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
            "--require-hashes", "--no-deps", "--only-binary", ":all:", *platforms,
            "--python-version", python, "--implementation", "cp", "--target", str(site), "-r", str(requirements),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    installed = {"==".join(p.name.removesuffix(".dist-info").split("-")).lower() for p in site.glob("*.dist-info")}
    expected = {d.pin for d in resolve(project, target).distributions}
    assert installed == expected
    suffix = f".cpython-{python.replace('.', '')}-{target.machine}-linux-gnu.so"
    extensions = sorted(p.name for p in site.rglob("*.so"))
    assert extensions and all(name.endswith(suffix) for name in extensions), extensions

    host = (f"{sys.version_info[0]}.{sys.version_info[1]}", platform.machine())
    if host != (python, target.machine) or platform.system() != "Linux":
        return
    # The host is this very runtime: the installed layer runs the handler.
    code = (
        "import json, sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
        "from native_app.handler import handler; print(json.dumps(handler({'name': '<b>'}, None)))"
    )
    run = subprocess.run(
        [sys.executable, "-B", "-S", "-I", "-c", code, str(site), str(project / "src")], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["ok"] and result["yaml_libyaml"] and result["markupsafe_speedups"]
    assert result["html"] == "hello &lt;b&gt;"
    assert result["json"] == '{"greeting":"hello <b>","n":3}'


# --- user errors: exit 2, a short message, no traceback ----------------------


def test_retired_python():
    err = user_error(fixture_path("native-app"), "--python", "3.9")
    assert "python 3.9 is a retired Lambda runtime" in err
    assert "3.10, 3.11, 3.12, 3.13, 3.14" in err


@pytest.mark.parametrize("python", ["3.15", "2", "latest"])
def test_unknown_python(python):
    assert f"unknown Lambda python version '{python}'" in user_error(fixture_path("native-app"), "--python", python)


def test_unknown_arch():
    err = user_error(fixture_path("native-app"), "--arch", "sparc")
    assert "unknown Lambda arch 'sparc'" in err and "'x86_64' or 'arm64'" in err


def test_unknown_extra_and_group():
    err = user_error(fixture_path("extras-app"), "--extra", "nope")
    assert "has no extra 'nope'" in err and "http, legacy, modern, yaml" in err
    err = user_error(fixture_path("extras-app"), "--group", "nope")
    assert "has no group 'nope'" in err and "dev, lint, oldreq, selftest" in err


def test_conflicting_extras():
    err = user_error(fixture_path("extras-app"), "--extra", "legacy", "--extra", "modern")
    assert "extra 'legacy' and extra 'modern' are declared as conflicting" in err
    err = user_error(fixture_path("extras-app"), "--extra", "http", "--group", "oldreq")
    assert "extra 'http' and group 'oldreq'" in err


def test_python_outside_requires_python():
    err = user_error(fixture_path("spectra-demo"), "--python", "3.11")
    assert "outside the project's requires-python '>=3.12'" in err
    assert "3.12" in err.splitlines()[1]


def test_no_lock(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0"\n')
    for args in ((tmp_path,), (tmp_path, "--python", "3.12")):
        err = user_error(*args)
        assert "no uv.lock" in err and "uv lock" in err


def test_lock_syntax_error(tmp_path):
    project = write_project(tmp_path / "app", 'version = 1\nrequires-python = ">=3.11"\n[[package]\n')
    err = user_error(project, "--python", "3.11")
    assert "TOML syntax error" in err and "line 3" in err
    # Also when the default python must be read from the lock first.
    assert "line 3" in user_error(project)


def test_unsupported_lock_version(tmp_path):
    project = write_project(tmp_path / "app", 'version = 3\nrequires-python = ">=3.11"\n')
    assert "lock file version 3 is not supported" in user_error(project, "--python", "3.12")


def test_stale_lock(tmp_path):
    project = copy_fixture("native-app", tmp_path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"orjson>=3.10",', '"orjson>=3.10",\n  "six",'))
    err = user_error(project)
    assert "out of date" in err and "six" in err and "uv lock" in err


def test_no_compatible_file(tmp_path):
    wheels = "".join(
        f'    {{ url = "https://files.example/pyarrow-18.0.0-cp3{m}-cp3{m}-{p}.whl", hash = "sha256:{sha(str(m) + p)}" }},\n'
        for m in (11, 12, 13)
        for p in ("manylinux_2_28_x86_64", "manylinux_2_28_aarch64")
    )
    lock = (
        'version = 1\nrevision = 2\nrequires-python = ">=3.11"\n\n'
        '[[package]]\nname = "app"\nversion = "0.1.0"\nsource = { virtual = "." }\n'
        'dependencies = [\n    { name = "pyarrow" },\n]\n\n'
        '[[package]]\nname = "pyarrow"\nversion = "18.0.0"\nsource = { registry = "https://pypi.org/simple" }\n'
        f"wheels = [\n{wheels}]\n"
    )
    project = write_project(tmp_path / "app", lock)
    err = user_error(project, "--python", "3.11", "--arch", "arm64")
    problem, fix = err.splitlines()
    assert "pyarrow 18.0.0 has no wheel for python 3.11 arm64 (Amazon Linux 2, glibc 2.26) and no sdist" in problem
    assert "manylinux_2_28_aarch64" in problem and "manylinux_2_28_x86_64" in problem
    assert "python 3.12 or 3.13" in fix and "pin pyarrow" in fix and "glibc 2.26" in fix
    assert ok(project, "--python", "3.12", "--arch", "arm64", "--show-files") == [
        "pyarrow==18.0.0  # cp312-cp312-manylinux_2_28_aarch64"
    ]


def test_no_default_python_possible(tmp_path):
    project = write_project(tmp_path / "app", 'version = 1\nrequires-python = ">=3.15"\n')
    err = user_error(project)
    assert "allows no Lambda runtime" in err
    assert ", ".join(RUNTIMES) in err


def test_missing_directory(tmp_path):
    assert "no uv.lock" in user_error(tmp_path / "does-not-exist")


def test_usage_errors_are_argparse_errors():
    run = run_cli()
    assert run.returncode == 2 and "usage:" in run.stderr and "Traceback" not in run.stderr
    run = run_cli("requirements", "--hashes=yes")
    assert run.returncode == 2 and "Traceback" not in run.stderr


def test_closed_stdout_is_not_a_traceback():
    process = subprocess.Popen(
        [sys.executable, "-m", "hatch_lambda", "requirements", str(fixture_path("spectra-demo"))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()  # like `| head` exiting before the output is written
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    stderr = process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=5) == 1
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_a_member_with_a_dynamic_version_is_named_by_its_directory():
    """uv locks no version for it: no ``dynmember==`` line, but one pip can install from."""
    from helpers.projects import FIXTURES

    result = run_cli("requirements", str(FIXTURES / "dynamic-app"), "--python", "3.12")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    member = (FIXTURES / "dynamic-app" / "packages" / "dynmember").resolve().as_uri()
    assert f"dynmember @ {member}" in result.stdout
    assert not any(line.endswith("==") for line in lines)
    assert "sdk==2.0.0" in lines and "six==1.17.0" in lines
