"""Cold-start import time and size of the spectra-demo layer with ``bytecode = "off"``, ``"compile"`` and ``"only"``.

    python bench/bytecode.py [--runs N] [--builds N] [--python PATH]

Builds fixtures/spectra-demo's layer (python 3.12 x86_64) with ``-c`` (no packs
reused; downloads come from the cache), the modes alternating, timing each build
(the median per mode is printed);
unzips each layer and imports its top-level packages (those the fixture's
handlers use, plus a boto3 client) in a fresh ``python3.12 -B -I -S`` with
``sys.path`` set to the unzipped ``python/`` directory, as on Lambda's
read-only ``/opt``. The modes alternate run by run; the first run of each is
discarded and the median of the rest is printed, with the zipped and unzipped
sizes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from hatch_lambda.runtime.interpreters import find_python

ROOT = Path(__file__).resolve().parents[1]
MODES = ("off", "compile", "only")
IMPORTS = ("import aws_lambda_powertools, aws_lambda_powertools.logging, pydantic, pydantic_settings, pyarrow, "
           "boto3; boto3.client('s3', region_name='us-east-1')")


def build(project: Path, mode: str, env: dict[str, str]) -> float:
    text = (project / "pyproject.toml").read_text()
    marker = "[tool.hatch.build.targets.lambda-layer]\n"
    kept = "\n".join(line for line in text.split("\n") if not line.startswith("bytecode = "))
    (project / "pyproject.toml").write_text(kept.replace(marker, f'{marker}bytecode = "{mode}"\n', 1))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hatchling", "build", "-t", "lambda-layer", "-c"], cwd=project, env=env,
                   check=True, capture_output=True)
    return time.perf_counter() - start


def import_time(python: str, opt: Path) -> float:
    script = f"import sys, time; sys.path[:0] = [{str(opt / 'python')!r}]; t = time.perf_counter(); {IMPORTS}; " \
             "print(time.perf_counter() - t)"
    env = {"PATH": os.environ["PATH"], "HOME": str(opt), "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    out = subprocess.run([python, "-B", "-I", "-S", "-c", script], capture_output=True, text=True, env=env,
                         check=True)
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="imports per mode")
    parser.add_argument("--builds", type=int, default=3, help="builds per mode (the median is printed)")
    parser.add_argument("--python", help="the interpreter that imports (default: this machine's CPython 3.12)")
    args = parser.parse_args()
    found = find_python("3.12")
    python = args.python or (found.executable if found else "python3.12")
    with tempfile.TemporaryDirectory(prefix="bench-bytecode-") as scratch:
        work = Path(scratch)
        project = work / "spectra-demo"
        shutil.copytree(ROOT / "fixtures" / "spectra-demo", project, ignore=shutil.ignore_patterns("dist", ".venv"))
        (project / ".git").mkdir(exist_ok=True)
        env = {**os.environ, "DOCKER_HOST": f"unix://{work}/no-docker.sock"}
        builds: dict[str, list[float]] = {mode: [] for mode in MODES}
        sizes, opts = {}, {}
        build(project, "off", env)  # the downloads, so no build below waits for the network
        for _ in range(args.builds - 1):
            for mode in MODES:
                builds[mode].append(build(project, mode, env))
        for mode in MODES:
            builds[mode].append(build(project, mode, env))
            layer = project / "dist" / "lambda" / "layer.zip"
            with zipfile.ZipFile(layer) as archive:
                sizes[mode] = (layer.stat().st_size, sum(info.file_size for info in archive.infolist()))
                opts[mode] = work / f"opt-{mode}"
                archive.extractall(opts[mode])
        times: dict[str, list[float]] = {mode: [] for mode in MODES}
        for _ in range(args.runs):
            for mode in MODES:
                times[mode].append(import_time(python, opts[mode]))
        base = statistics.median(times["off"][1:])
        print(f"{'mode':<8} {'import (median)':>16} {'x off':>6} {'zipped':>10} {'unzipped':>10} {'build -c':>9}")
        for mode in MODES:
            median = statistics.median(times[mode][1:])
            zipped, unzipped = sizes[mode]
            print(f"{mode:<8} {median:>14.3f} s {median / base:>6.2f} {zipped / 2**20:>7.1f} MiB "
                  f"{unzipped / 2**20:>6.1f} MiB {statistics.median(builds[mode]):>7.2f} s")


if __name__ == "__main__":
    main()
