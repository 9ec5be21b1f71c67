"""Running handlers the way Lambda does.

Artifacts are checked the way Lambda uses them: ``layer.zip`` unzipped to
``<D>/opt``, a function zip to ``<D>/var/task``, and the handler imported by an
interpreter of the runtime's version started with ``-I -S`` (no host
site-packages) whose ``sys.path`` starts with the task root and the layer's
directories, in Lambda's order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from hatch_lambda.runtime.interpreters import host_python, lambda_sys_path

from helpers.builds import extract

RESULT_MARK = "@@hatch-lambda-test-result@@"


def find_python(version: str) -> str:
    """The path of a CPython ``version`` interpreter (3.11, 3.12...) on this machine."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        return sys.executable
    found = host_python(version)
    if found:
        return found
    message = f"no python{version} interpreter on this machine to run the built artifacts with"
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


BOOTSTRAP = r"""
import importlib, json, os, sys, sysconfig
paths, roots, module, event, code, attribute = json.loads(sys.argv[1])
sys.path[:0] = paths
host = {os.path.realpath(sysconfig.get_paths()[key]) for key in ("purelib", "platlib")}
stdlib = {os.path.realpath(sysconfig.get_paths()[key]) for key in ("stdlib", "platstdlib")}
roots = [os.path.realpath(root) for root in roots]

def under(path, directories):
    return any(path == d or path.startswith(d + os.sep) for d in directories)

namespace = {}
if module:
    result = getattr(importlib.import_module(module), attribute)(event, None)
else:
    exec(code, namespace)
    result = namespace.get("result")
leaks, loaded = [], {}
for name, mod in sorted(sys.modules.items()):
    where = getattr(mod, "__file__", None)
    if not where:
        continue
    where = os.path.realpath(where)
    if under(where, roots):
        loaded[name] = where
    elif under(where, host) or not under(where, stdlib):
        leaks.append(f"{name}: {where}")
leaks += [f"sys.path: {p}" for p in sys.path if p and under(os.path.realpath(p), host)]
print(%r + json.dumps({"result": result, "leaks": leaks, "loaded": loaded}, default=repr))
""" % RESULT_MARK


@dataclass
class LambdaRun:
    result: object
    loaded: dict[str, str]  # module -> file, for modules loaded from the artifacts
    process: subprocess.CompletedProcess


@dataclass
class LambdaRoot:
    """``D``: ``D/opt`` holds the layer, ``D/var/task`` the function."""

    root: Path
    python: str  # "3.11"

    @property
    def task(self) -> Path:
        return self.root / "var" / "task"

    @property
    def opt(self) -> Path:
        return self.root / "opt"

    @property
    def sys_path(self) -> list[str]:
        """Lambda's order: the task root, then the layer's site-packages directory, then /opt/python."""
        return lambda_sys_path(str(self.task), str(self.opt), self.python)


def lambda_root(directory: Path, python: str, *, layer: Path | None = None, function: Path | None = None) -> LambdaRoot:
    root = LambdaRoot(directory, python)
    root.task.mkdir(parents=True, exist_ok=True)
    root.opt.mkdir(parents=True, exist_ok=True)
    if layer is not None:
        extract(layer, root.opt)
    if function is not None:
        extract(function, root.task)
    return root


def run_python(
    python: str,
    paths: list[str],
    *,
    module: str | None = None,
    event: object = None,
    code: str | None = None,
    roots: list[str] | None = None,
    check: bool = True,
    environment: dict[str, str] | None = None,
    attribute: str = "handler",
) -> LambdaRun:
    """Import ``module`` and call ``handler(event, None)`` (or exec ``code``, which sets ``result``).

    The interpreter runs with ``-I -S``: no site-packages, no user site, no
    PYTHON* variables; only ``paths`` are added to ``sys.path``, in front. Any
    module loaded from outside ``roots`` and the standard library is a leak and
    fails the run.
    """
    payload = json.dumps([paths, roots if roots is not None else paths, module, event if event is not None else {}, code,
                          attribute])
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": "UTC", "HOME": paths[0],
           **(environment or {})}
    process = subprocess.run(
        [find_python(python), "-I", "-S", "-B", "-c", BOOTSTRAP, payload],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    report = None
    for line in process.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            report = json.loads(line[len(RESULT_MARK):])
    if not check:
        return LambdaRun(report and report["result"], report["loaded"] if report else {}, process)
    assert process.returncode == 0 and report is not None, (
        f"running {module or 'code'} with python{python} failed:\n{process.stdout}\n{process.stderr}"
    )
    assert report["leaks"] == [], f"modules came from outside the artifacts: {report['leaks']}"
    return LambdaRun(report["result"], report["loaded"], process)


def invoke(root: LambdaRoot, module: str, event: object = None, *, attribute: str = "handler",
           environment: dict[str, str] | None = None) -> LambdaRun:
    """Call ``module.<attribute>`` with the layer and function of ``root`` on sys.path."""
    return run_python(root.python, root.sys_path, module=module, event=event, roots=[str(root.root)],
                      attribute=attribute, environment=environment)


def invoke_fat(fat_zip: Path, directory: Path, python: str, module: str, event: object = None,
               check: bool = True, *, attribute: str = "handler") -> LambdaRun:
    """Unzip a fat zip alone into ``directory/var/task`` and call the handler from there only."""
    root = lambda_root(directory, python, function=fat_zip)
    return run_python(python, [str(root.task)], module=module, event=event, roots=[str(root.root)], check=check,
                      attribute=attribute)
