"""Builds killed halfway (Ctrl-C and SIGKILL) while downloading, installing and zipping.

Each case starts from a project built once, changes its function code (so a
finished build would change the artifacts), starts ``python -m hatchling build
-t lambda-layer``, waits until the build is in the stage under test (watching
the cache and the scratch directory), and signals it. Afterwards the previous
artifacts are intact byte for byte, the cache holds only whole, verified files,
and the next build succeeds with no cleanup by hand, removing what the killed
build left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.builds import build_env, digests, fresh_cache, hatchling_build, manifest, sha256_file, zip_files
from helpers.projects import LAYER, OUT, copy_fixture, local_project, make_wheel
from helpers.wheelserver import WheelServer, assert_cache_holds_only_verified_files, loopback_env, point_lock_at

pytestmark = pytest.mark.network  # build requirements and the first downloads come from the index

SIGNALS = {"SIGINT": signal.SIGINT, "SIGKILL": signal.SIGKILL}
WAIT = 300  # seconds a stage may take to show up, or a signalled build to exit
ORPHAN_WAIT = 30  # seconds for the output of a build that has exited to end


def artifacts(project: Path) -> dict[str, str]:
    """Digests of the output directory's files, scratch directories aside."""
    return {name: digest for name, digest in digests(project / OUT).items() if not name.startswith(".hatch-lambda-")}


def scratch_dirs(project: Path) -> list[Path]:
    out = project / OUT
    return sorted(out.glob(".hatch-lambda-*")) if out.is_dir() else []


def start_build(project: Path, cache: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hatchling", "build", "-t", LAYER],
        cwd=project,
        env=build_env(cache, env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Ctrl-C must reach the build as it does from a terminal, even when these tests run where
        # SIGINT is ignored (a background job of a non-interactive shell), which children inherit.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the build ended before {what}:\n{process.stdout.read()}", pytrace=False)
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the build never reached {what}", pytrace=False)
        time.sleep(0.005)


def interrupt(process: subprocess.Popen, signum: int) -> str:
    process.send_signal(signum)
    try:
        process.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("the interrupted build did not stop", pytrace=False)
    try:
        # Its output ends when the last process holding it ends: a worker that outlived the build would hold it.
        output, _ = process.communicate(timeout=ORPHAN_WAIT)
    except subprocess.TimeoutExpired:
        pytest.fail("the interrupted build left a process running that holds its output", pytrace=False)
    assert process.returncode != 0, output
    if signum == signal.SIGINT:
        assert process.returncode == 130, output
        assert "hatch-lambda: interrupted; the previous artifacts are untouched" in output
        assert "Traceback" not in output, output
    return output


def change_function(project: Path, package: str) -> str:
    """Edit the function's code so that a finished build would change its zip."""
    marker = f"# changed {time.time_ns()}\n"
    handler = project / "src" / package / "handler.py"
    handler.write_text(handler.read_text() + marker)
    return marker


def assert_next_build_succeeds(project: Path, cache: Path, package: str, marker: str, env=None) -> None:
    build = hatchling_build(project, LAYER, cache=cache, env=env)
    assert scratch_dirs(project) == [], "the killed build's scratch directory is still there"
    out = project / OUT
    sections = manifest(out)["targets"][LAYER]
    for artifact in sections["artifacts"]:
        assert sha256_file(out / artifact["file"]) == artifact["sha256"], artifact["file"]
    function_zip = build.out(f"{project.name}.zip")
    with zipfile.ZipFile(function_zip) as archive:
        assert archive.read(f"{package}/handler.py").decode().endswith(marker)
    assert f"python/{package}" not in zip_files(build.out("layer.zip"))


# --------------------------------------------------------------------------
# during download


@pytest.mark.parametrize("signame", SIGNALS)
def test_killed_while_downloading(tmp_path, cache, signame):
    project = copy_fixture("native-app", tmp_path)
    hatchling_build(project, LAYER, cache=cache)  # the session cache has every file now
    with WheelServer() as server:
        server.add_dir(cache / "files")
        point_lock_at(project, server)
        downloads = tmp_path / "shared-cache"
        hatchling_build(project, LAYER, cache=tmp_path / "first-cache", env=loopback_env())
        before = artifacts(project)
        marker = change_function(project, "native_app")
        for name in server.files:
            server.fault(name, kind="trickle", piece=2048, seconds=0.05)
        temp = tmp_path / "tmp"
        temp.mkdir()
        process = start_build(project, downloads, {**loopback_env(), "TMPDIR": str(temp)})
        wait_for(lambda: any(downloads.rglob("*.part")), process, "a download")
        interrupt(process, SIGNALS[signame])
        assert list(temp.iterdir()) == [], "the killed build left files in TMPDIR"

        assert artifacts(project) == before
        if signame == "SIGINT":
            assert not any(downloads.rglob("*.part")), "Ctrl-C left a partial download in the cache"
            assert scratch_dirs(project) == []
        else:
            assert scratch_dirs(project), "SIGKILL cannot clean up: the test should see its scratch directory"
        assert_cache_holds_only_verified_files(downloads, allow_part=signame == "SIGKILL")

        server.clear_faults()
        assert_next_build_succeeds(project, downloads, "native_app", marker, env=loopback_env())
    assert_cache_holds_only_verified_files(downloads, allow_part=signame == "SIGKILL")


# --------------------------------------------------------------------------
# during install and zipping: a project with one large local wheel, so both stages take a while


@pytest.fixture(scope="module")
def bulky(tmp_path_factory, cache) -> Path:
    """A project depending on a 1500-file, 60 MB wheel (hex text: deflating it takes real work), built once."""
    project = tmp_path_factory.mktemp("bulky") / "bulkyapp"
    files = {f"bulk/part{i:04d}/data.txt": os.urandom(20_000).hex().encode() for i in range(1500)}
    files["bulk/__init__.py"] = b""
    make_wheel(project / "wheels", "bulk", "1.0", files)
    local_project(project, "bulkyapp", {"bulk": "wheels/bulk-1.0-py3-none-any.whl"},
                  layer={"installer": "wheels", "size-check": "warn"})
    hatchling_build(project, LAYER, cache=cache)
    return project


def _stage_reached(project: Path, stage: str) -> Callable[[], bool]:
    def reached() -> bool:
        for scratch in scratch_dirs(project):
            # the wheel unpacked alone, to become its pack
            unpacked = any(any(site.iterdir()) for site in scratch.glob("work/packs/pack-*/site-packages/bulk"))
            zipped = (scratch / "layer.zip").exists()
            if stage == "install" and unpacked and not zipped:
                return True
            if stage == "zip" and zipped:
                return True
        return False

    return reached


@pytest.mark.parametrize("stage", ["install", "zip"])
@pytest.mark.parametrize("signame", SIGNALS)
def test_killed_while_installing_or_zipping(tmp_path, cache, bulky, stage, signame):
    project = tmp_path / "bulkyapp"
    shutil.copytree(bulky, project, symlinks=True)
    before = artifacts(project)
    assert set(before) == {"layer.zip", "bulkyapp.zip", "manifest.json"}
    marker = change_function(project, "bulkyapp")
    temp = tmp_path / "tmp"
    temp.mkdir()
    # Without the cache, so the wheel is unpacked and the layer written again (its pack is cached).
    process = start_build(project, cache, {"TMPDIR": str(temp), "HATCH_LAMBDA_NO_CACHE": "1"})
    wait_for(_stage_reached(project, stage), process, f"the {stage} stage")
    interrupt(process, SIGNALS[signame])
    assert list(temp.iterdir()) == [], "the killed build left files in TMPDIR"

    assert artifacts(project) == before
    if signame == "SIGINT":
        assert scratch_dirs(project) == []
    else:
        assert len(scratch_dirs(project)) == 1
    assert_cache_holds_only_verified_files(cache, allow_part=True)  # other tests' builds share this cache
    assert_next_build_succeeds(project, cache, "bulkyapp", marker)


# --------------------------------------------------------------------------
# while building an sdist on the host (its wheel is cached under built/<sha[:2]>/<sha256>/)


def _building_sdist(project: Path) -> Callable[[], bool]:
    def reached() -> bool:
        return any(any(scratch.glob("work/sdists/*")) for scratch in scratch_dirs(project))

    return reached


@pytest.mark.parametrize("signame", SIGNALS)
def test_killed_while_building_an_sdist(tmp_path, cache, signame):
    project = copy_fixture("sdist-app", tmp_path)
    hatchling_build(project, LAYER, cache=cache)  # downloads docopt's sdist into the session cache
    private = tmp_path / "cache"
    shutil.copytree(cache / "files", private / "files")  # the files, but no wheel built from the sdist yet
    hatchling_build(project, LAYER, cache=private, args=["-c"])
    shutil.rmtree(private / "built")
    before = artifacts(project)
    marker = change_function(project, "sdist_app")
    process = start_build(project, private)
    wait_for(_building_sdist(project), process, "the sdist build")
    interrupt(process, SIGNALS[signame])

    assert artifacts(project) == before
    for path in (private / "built").rglob("*") if (private / "built").exists() else []:
        if path.is_file() and path.name.endswith(".whl"):
            with zipfile.ZipFile(path) as archive:  # a wheel under its own name is whole
                assert archive.testzip() is None
    assert_cache_holds_only_verified_files(private, allow_part=True)
    assert_next_build_succeeds(project, private, "sdist_app", marker)
    assert list((private / "built").glob("*/*/docopt-*.whl"))  # built/<sha[:2]>/<sha>/


# --------------------------------------------------------------------------
# scratch directories: stale ones go, a running build's stays


def test_stale_scratch_is_removed_and_a_running_builds_is_kept(tmp_path):
    from hatch_lambda.scratch import Scratch, remove_stale

    out = tmp_path / "out"
    out.mkdir()
    # a running "build": another process holding its scratch directory
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from hatch_lambda.scratch import Scratch; "
         "s = Scratch.claim(Path(sys.argv[1])); print(s.path, flush=True); time.sleep(120)", str(out)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        live = Path(holder.stdout.readline().strip())
        assert live.is_dir()
        # a build killed after locking: its lock file is there but nobody holds it
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        dead_pid = int(dead.stdout)
        killed = out / f".hatch-lambda-{dead_pid}-abcd"
        (killed / "site-packages").mkdir(parents=True)
        (killed / ".owner").touch()
        # a build killed before it locked: only the pid in the name tells
        early = out / f".hatch-lambda-{dead_pid}-efgh"
        early.mkdir()
        # one just created by a running build that has not locked it yet
        starting = out / f".hatch-lambda-{holder.pid}-ijkl"
        starting.mkdir()

        removed = remove_stale(out)
        assert sorted(removed) == sorted([killed, early])
        assert live.is_dir() and starting.is_dir()

        mine = Scratch.claim(out)  # claiming also sweeps, and keeps the live one
        assert live.is_dir() and mine.path.name.startswith(f".hatch-lambda-{os.getpid()}-")
        mine.release()
        assert not mine.path.exists()
    finally:
        holder.kill()
        holder.wait()
    # its owner is gone now, so both of its directories are stale
    assert sorted(remove_stale(out)) == sorted([live, starting])
    assert list(out.iterdir()) == []


# --------------------------------------------------------------------------
# Ctrl-C from a terminal: SIGINT to the whole process group, pack workers included

GROUP_RUNS = 21


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_to_the_process_group_at_any_moment_of_a_cold_build(tmp_path, cache):
    """A terminal's Ctrl-C reaches the build and its forked pack workers at once, at 21 moments of a cold build
    spread over the first 60 % of its time after its first line."""
    project = copy_fixture("native-app", tmp_path / "project")
    hatchling_build(project, LAYER, cache=cache)  # the session cache has every file now
    before = artifacts(project)
    change_function(project, "native_app")

    def start(run: int) -> subprocess.Popen:
        private = fresh_cache(cache, tmp_path / f"cache-{run}")  # downloads only: every pack is built
        return subprocess.Popen(
            [sys.executable, "-m", "hatchling", "build", "-t", LAYER], cwd=project,
            env=build_env(private, {"PYTHONFAULTHANDLER": "1"}),  # a hang is shown with every thread's stack
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    def started(process: subprocess.Popen) -> str:
        """The output up to the build's first line of its own (Python and hatchling have started by then)."""
        lines = []
        while not (lines and lines[-1].startswith("lambda-layer:")) and (line := process.stdout.readline()):
            lines.append(line)
        return "".join(lines)

    timed = start(-1)
    head = started(timed)
    began = time.monotonic()
    output, _ = timed.communicate(timeout=WAIT)
    duration = time.monotonic() - began
    output = head + output
    assert timed.returncode == 0, output
    assert "0 distributions reused from the cache, 3 unpacked and deflated" in output
    hatchling_build(project, LAYER, cache=cache)  # the artifacts a finished build leaves
    before = artifacts(project)
    change_function(project, "native_app")

    interrupted = 0
    for run in range(GROUP_RUNS):
        process = start(run)
        head = started(process)
        time.sleep(0.6 * duration * (run + 0.5) / GROUP_RUNS)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # what a terminal does: the whole foreground group
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGABRT)  # faulthandler prints where each thread is
            stacks, _ = process.communicate(timeout=30)
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"run {run}: the build did not end within 30 s of Ctrl-C:\n{head}{stacks}", pytrace=False)
        output = head + output
        deadline = time.monotonic() + ORPHAN_WAIT
        while _group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _group_alive(process.pid), f"run {run}: a process of the build outlived it"
        assert "Traceback" not in output and "KeyboardInterrupt" not in output, f"run {run}:\n{output}"
        published = "interrupted once the new artifacts were in place" in output
        if "manifest.json\n" in output or published:  # it finished before the signal (or died of it on the way out)
            assert process.returncode in (0, 130, -signal.SIGINT), f"run {run}:\n{output}"
            sections = manifest(project / OUT)["targets"][LAYER]
            for artifact in sections["artifacts"]:
                assert sha256_file(project / OUT / artifact["file"]) == artifact["sha256"], f"run {run}"
            before = artifacts(project)
            continue
        interrupted += 1
        assert process.returncode == 130, f"run {run}:\n{output}"
        assert output.count("hatch-lambda: interrupted; the previous artifacts are untouched") == 1, output
        assert artifacts(project) == before, f"run {run}"
        assert scratch_dirs(project) == [], f"run {run}"
    assert interrupted >= GROUP_RUNS // 3, f"only {interrupted} of {GROUP_RUNS} runs were interrupted"
