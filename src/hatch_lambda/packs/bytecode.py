"""Precompiled bytecode: PEP 552 ``unchecked-hash`` ``.pyc`` files, compiled by a CPython of the runtime's version.

Lambda mounts ``/var/task`` and ``/opt`` read-only, so Python cannot cache
bytecode there and compiles every module it imports from source at each cold
start. ``bytecode = "compile"`` puts ``__pycache__/module.cpython-3XY.pyc``
beside each source; ``"only"`` puts ``module.pyc`` where ``module.py`` was and
removes the source. The ``.pyc`` files the wheel itself shipped are stripped
first (:mod:`.strip`): they may be timestamp-based, which never validates from
a zip, or for another Python.

An ``unchecked-hash`` ``.pyc`` holds the source's hash, not its time, and the
interpreter loads it without reading the source again. Every importable
``.py`` file of a tree (its directories and its stem Python identifiers) is
compiled in sorted order in one fresh process of the compiler, with
``PYTHONHASHSEED=0`` (constant sets come out in one order), so a tree compiles
to the same bytes every time. The name a code object records
(``co_filename``) is the file's path relative to the tree (``pkg/mod.py``):
the same pack serves a layer (``/opt/python/``) and a fat zip (``/var/task/``),
and with ``compile`` the import system replaces it by the source's real path
when it loads the ``.pyc``; with ``only`` tracebacks show that relative path.
A file that does not compile (syntax of another Python) keeps its source only.

Compiled in the Lambda image, each tree's container is labelled with the tree's
path: a build that stops (Ctrl-C, or a refusal) kills its pack workers, which
cannot remove the containers they started, so the build removes every one
compiling a tree in its scratch directory (:func:`remove_compilers_under`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.packs.deflate import Entry, tree_entries
from hatch_lambda.runtime.docker import Container, connect
from hatch_lambda.runtime.interpreters import Compiler

TIMEOUT = 1800  # seconds for one tree
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: The label of a container compiling a tree in the image: the tree's path on this machine.
TREE_LABEL = "org.hatch-lambda.bytecode-tree"
REMOVE_ATTEMPTS = 25  # of removing a stopped build's compilers, 0.2 s apart

PARENT = "HATCH_LAMBDA_PARENT_PID"
#: The compiler ends when the process that started it does (Linux's PR_SET_PDEATHSIG), so a build stopped
#: by Ctrl-C, whose pack workers are killed, removes a tree nothing writes into any more. Set by the
#: compiler itself: a preexec_fn would run the at-fork hooks of the build's modules in the child.
ENDS_WITH_PARENT = (
    "import os as _os, sys as _sys\n"
    "if _sys.platform.startswith('linux'):\n"
    "    import ctypes as _ctypes\n"
    "    _ctypes.CDLL(None).prctl(1, 9)\n"
    "    if _os.getppid() != int(_os.environ['" + PARENT + "']):\n"
    "        _sys.exit(1)\n"
)
SCRIPT = r"""
import json, py_compile, sys
root, job, result = sys.argv[1:4]
failed = []
with open(job, encoding="utf-8") as handle:
    rows = json.load(handle)
for source, target, shown in rows:
    try:
        py_compile.compile(root + "/" + source, cfile=root + "/" + target, dfile=shown, doraise=True, optimize=0,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    except Exception as exc:
        failed.append([source, (type(exc).__name__ + ": " + str(exc)).strip()[:500]])
with open(result, "w", encoding="utf-8") as handle:
    json.dump(failed, handle)
"""


@dataclass(frozen=True)
class Compiled:
    """What compiling a tree did: how many files, and those left as source because they did not compile."""

    files: int
    failed: tuple[tuple[str, str], ...]  # (path, error)


def pyc_name(path: str, mode: str, python: str) -> str:
    """Where the ``.pyc`` of ``path`` (posix, ``.py``) goes: ``__pycache__/mod.cpython-312.pyc`` or ``mod.pyc``."""
    if mode == "only":
        return path + "c"
    head, _, tail = path.rpartition("/")
    cached = f"__pycache__/{tail[:-3]}.cpython-{python.replace('.', '')}.pyc"
    return f"{head}/{cached}" if head else cached


def importable(path: str) -> bool:
    """A ``.py`` file the import system can find: every directory and its stem an identifier."""
    if not path.endswith(".py"):
        return False
    *directories, name = path.split("/")
    return all(IDENTIFIER.match(part) for part in (*directories, name[:-3]))


def sources(root: Path) -> list[str]:
    """Every importable ``.py`` file under ``root``, posix and relative, sorted."""
    return sorted(e.name for e in tree_entries(root) if importable(e.name) and not e.source.is_symlink())


def compile_tree(compiler: Compiler, root: Path, mode: str, python: str) -> Compiled:
    """Compile every importable source under ``root`` in place; with ``only`` the compiled sources go."""
    root = root.resolve()  # the compiler runs in a directory of its own: a relative root would miss
    paths = sources(root)
    if not paths:
        return Compiled(0, ())
    rows = [[path, pyc_name(path, mode, python), path] for path in paths]
    # Beside the tree, in the build's scratch directory: removed with it when a killed worker cannot.
    with tempfile.TemporaryDirectory(prefix="hatch-lambda-bytecode-", dir=root.parent) as scratch:
        job = Path(scratch)
        (job / "job.json").write_text(json.dumps(rows), encoding="utf-8")
        if compiler.executable:
            _on_host(compiler, root, job)
        else:
            _in_image(compiler, root, job)
        try:
            failed = {path: error for path, error in json.loads((job / "result.json").read_text(encoding="utf-8"))}
        except (OSError, ValueError):
            raise LambdaBuildError(f"compiling bytecode with {compiler.description} gave no result",
                                   'set bytecode = "off" to build without bytecode') from None
    if mode == "only":
        for path in paths:
            if path not in failed:
                (root / path).unlink()
    return Compiled(len(paths) - len(failed), tuple(sorted(failed.items())))


def _on_host(compiler: Compiler, root: Path, job: Path) -> None:
    # A clean environment (nothing of the caller's PYTHON* variables) with one fixed hash seed; -S -s:
    # nothing but the standard library is imported.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
           PARENT: str(os.getpid())}
    command = [compiler.executable, "-S", "-s", "-c", ENDS_WITH_PARENT + SCRIPT, str(root), str(job / "job.json"),
               str(job / "result.json")]
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=job, timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LambdaBuildError(f"compiling bytecode with {compiler.description} failed: {exc}",
                               'set bytecode = "off" to build without bytecode') from None
    if result.returncode != 0:
        tail = " | ".join(result.stderr.strip().splitlines()[-5:])
        raise LambdaBuildError(f"compiling bytecode with {compiler.description} failed: {tail}",
                               'set bytecode = "off" to build without bytecode')


def _in_image(compiler: Compiler, root: Path, job: Path) -> None:
    python = f"/var/lang/bin/python{'.'.join(compiler.release.split('.')[:2])}"
    client = connect()
    try:
        run = Container(client, compiler.image, compiler.platform)
        run([python, "-S", "-s", "-c", SCRIPT, "/hatch-lambda/tree", "/hatch-lambda/job/job.json",
             "/hatch-lambda/job/result.json"],
            {"/hatch-lambda/tree": (root, "rw"), "/hatch-lambda/job": (job, "rw")}, network=None,
            environment={"PYTHONHASHSEED": "0", "LANG": "C.UTF-8"}, what="compiling bytecode", log=lambda _: None,
            labels={TREE_LABEL: str(root)}, program=f"python{python.rsplit('python', 1)[1]} (the bytecode compiler)")
    finally:
        client.close()


def remove_compilers_under(directory: Path) -> None:
    """Remove every container compiling a tree under ``directory`` (a build's scratch), running or not: the
    pack workers that started them were killed as the build stopped. Best effort: the build is stopping."""
    directory = directory.resolve()
    try:
        client = connect()
    except LambdaBuildError:
        return
    try:
        for _ in range(REMOVE_ATTEMPTS):
            try:
                listed = client.containers.list(all=True, sparse=True, filters={"label": TREE_LABEL})
            except Exception:  # noqa: BLE001 - the SDK raises several unrelated types; the build is stopping
                return
            left = [c for c in listed if directory in Path((c.attrs.get("Labels") or {}).get(TREE_LABEL, "/")).parents]
            if not left:
                return
            for container in left:
                with contextlib.suppress(Exception):
                    container.remove(force=True)
            # what a removal did not take (the engine may still be starting one a killed worker asked for): again
            time.sleep(0.2)
    finally:
        client.close()


def compile_entries(compiler: Compiler, entries: list[Entry], mode: str, python: str, work: Path) -> list[Entry]:
    """A function's files with their bytecode: copied into ``work`` (a new directory) and compiled there."""
    work.mkdir(parents=True)
    for entry in entries:
        target = work / entry.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(entry.source, target)  # the executable bit goes with the bytes
    compile_tree(compiler, work, mode, python)
    return tree_entries(work)

