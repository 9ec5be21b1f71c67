"""Speed and size of hatch-lambda against the hand-made pipeline, measured in the same run.

    python bench/run.py [--repeat N] [--skip-build]

1. Lock reading: resolving the largest fixture lock for one target, against
   the start-up of a bare Python interpreter (``python -c pass``).
2. Layer build for fixtures/spectra-demo (aws-lambda-powertools, pydantic,
   pydantic-settings, boto3, pyarrow; python 3.12 x86_64), against
   ``uv export`` + ``uv pip install --python-platform x86_64-manylinux_2_34
   --only-binary :all: --target`` + ``zip -qrX``. Both cold (empty download
   caches) and warm (caches filled by the cold run).

Prints times, zipped sizes and the ratios ours / baseline. Needs uv and zip.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
DEMO = FIXTURES / "spectra-demo"


def timed(command: list[str], *, cwd: Path, env: dict | None = None, shell: bool = False) -> float:
    start = time.perf_counter()
    subprocess.run(command if not shell else command[0], cwd=cwd, env=env, shell=shell, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def bench_lock(repeat: int) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from hatch_lambda.lock import resolve
    from hatch_lambda.target import Target

    locks = sorted(FIXTURES.glob("*/uv.lock"), key=lambda p: p.stat().st_size)
    largest = locks[-1].parent
    # In-process: what a build pays for reading the lock (imports already warm).
    resolve(largest, Target("3.12", "x86_64"))
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        resolution = resolve(largest, Target("3.12", "x86_64"))
        runs.append(time.perf_counter() - start)
    ours = statistics.median(runs)
    startup = statistics.median(timed([sys.executable, "-c", "pass"], cwd=ROOT) for _ in range(repeat))
    size_kib = (largest / "uv.lock").stat().st_size / 1024
    print(f"lock read: {largest.name}/uv.lock ({size_kib:.0f} KiB, {len(resolution.distributions)} distributions)")
    print(f"  resolve() median of {repeat}: {ours * 1000:.1f} ms")
    print(f"  python -c pass median:        {startup * 1000:.1f} ms")
    print(f"  ratio resolve / start-up:     {ours / startup:.2f}")


def baseline(work: Path, env: dict) -> tuple[float, int]:
    """uv export + uv pip install --target + zip -qrX; returns (seconds, zip bytes)."""
    project = work / "project"
    layer = work / "layer"
    start = time.perf_counter()
    requirements = subprocess.run(
        ["uv", "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes", "--quiet"],
        cwd=project, env=env, check=True, capture_output=True, text=True,
    ).stdout
    (work / "requirements.txt").write_text(requirements)
    subprocess.run(
        ["uv", "pip", "install", "--quiet", "--python-platform", "x86_64-manylinux_2_34", "--python-version", "3.12",
         "--only-binary", ":all:", "--target", str(layer / "python"), "-r", str(work / "requirements.txt")],
        cwd=work, env=env, check=True,
    )
    subprocess.run(["zip", "-qrX", str(work / "layer.zip"), "."], cwd=layer, env=env, check=True)
    return time.perf_counter() - start, (work / "layer.zip").stat().st_size


def ours(work: Path, env: dict) -> tuple[float, int]:
    project = work / "project"
    seconds = timed([sys.executable, "-m", "hatchling", "build", "-t", "lambda-layer"], cwd=project, env=env)
    return seconds, (project / "dist" / "lambda" / "layer.zip").stat().st_size


def bench_build() -> None:
    for tool in ("uv", "zip"):
        if shutil.which(tool) is None:
            sys.exit(f"bench needs `{tool}` on PATH")
    with tempfile.TemporaryDirectory(prefix="hatch-lambda-bench-") as scratch:
        scratch = Path(scratch)
        results = {}
        for name, run in (("baseline", baseline), ("hatch-lambda", ours)):
            caches = scratch / f"cache-{name}"
            env = {**os.environ, "UV_CACHE_DIR": str(caches / "uv"), "HATCH_LAMBDA_CACHE_DIR": str(caches / "hl")}
            for phase in ("cold", "warm"):
                work = scratch / f"{name}-{phase}"
                shutil.copytree(DEMO, work / "project", ignore=shutil.ignore_patterns("dist", "__pycache__"))
                results[name, phase] = run(work, env)
        print("layer build: fixtures/spectra-demo, python 3.12 x86_64")
        for phase in ("cold", "warm"):
            base_s, base_b = results["baseline", phase]
            our_s, our_b = results["hatch-lambda", phase]
            print(f"  {phase}: baseline {base_s:6.2f} s {base_b / 2**20:6.1f} MB | "
                  f"hatch-lambda {our_s:6.2f} s {our_b / 2**20:6.1f} MB | "
                  f"time ratio {our_s / base_s:.2f}, size ratio {our_b / base_b:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--skip-build", action="store_true", help="only the lock-reading benchmark")
    args = parser.parse_args()
    bench_lock(args.repeat)
    if not args.skip_build:
        bench_build()


if __name__ == "__main__":
    main()
