"""Speed and size of hatch-lambda against the hand-made pipelines, measured in the same run.

    python bench/run.py [--repeat N] [--skip-build] [--bump NAME==VERSION]

1. Lock reading: resolving the largest lock of the fixtures and the public
   corpus (``fixtures/corpus``) for one target, freshness check included,
   against the start-up of the same Python interpreter (``python -c pass``).
2. The layer of fixtures/spectra-demo (aws-lambda-powertools, pydantic,
   pydantic-settings, boto3, pyarrow; python 3.12 x86_64), every download
   already cached for every tool:

   - baselines: ``uv export`` + ``uv pip install --python-platform
     x86_64-manylinux_2_34 --only-binary :all: --target`` + ``zip -qrX``, and
     ``pip install --platform manylinux_2_34_x86_64 (and every lower manylinux
     level) --only-binary=:all: -t`` +
     ``zip -qrX``;
   - hatch-lambda: cold (nothing built yet), code-only rebuild (a handler
     edited), one package bumped (the project relocked with
     ``uv lock -P NAME==VERSION``), and a full rebuild with ``-c``.

   Prints times, zipped sizes and the ratios to the uv baseline; the layer's
   zipped and unzipped size and its import time (the seed's modules and a
   boto3 client, median of 7 runs taking turns with uv's layer, in a fresh
   ``python3.12 -B -I -S``) as ratios to uv's; checks that
   every top-level module of the layer imports (with python3.12, if present),
   and builds the seed's set with the options README documents for fitting
   under 50 MB.
3. What each option costs: the same layer built cold with one option changed
   (``bytecode = "off"`` and ``"only"``, ``strip-symbols = false``,
   ``compression-level = 9`` and ``12``): its build time, zipped and unzipped
   size, and for the bytecode options the import time, each against uv's.

Needs uv, pip, zip and network access to the package index (for the relock).
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

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
DEMO = FIXTURES / "spectra-demo"
MIB = 2**20
# What README documents for the seed's set under 50 MB (Lambda's limit is 50 MiB).
SEED_OPTIONS = '''
exclude-packages = ["boto3", "botocore"]
strip-patterns = ["pyarrow/*flight*", "pyarrow/src/"]
'''
# What each option costs: the spectra-demo layer built cold with one option changed from its default.
VARIANTS = {
    'bytecode = "off"': 'bytecode = "off"',
    'bytecode = "only"': 'bytecode = "only"',
    "strip-symbols = false": "strip-symbols = false",
    "compression-level = 9": "compression-level = 9",
    "compression-level = 12": "compression-level = 12",
}
# pip (before 24) takes the platforms literally: name every manylinux level up to glibc 2.34.
PIP_PLATFORMS = [arg for minor in range(34, 16, -1) for arg in ("--platform", f"manylinux_2_{minor}_x86_64")]
PIP_PLATFORMS += ["--platform", "manylinux2014_x86_64", "--platform", "manylinux2010_x86_64",
                  "--platform", "manylinux1_x86_64"]
IMPORTS = ["aws_lambda_powertools", "aws_lambda_powertools.logging", "pydantic", "pydantic_settings", "pyarrow",
           "pyarrow.parquet", "pyarrow.compute", "pyarrow.dataset", "pyarrow.fs"]


def run(command: list[str], *, cwd: Path, env: dict | None = None, capture: bool = False) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed in {cwd}:\n{result.stdout}{result.stderr}")
    return result.stdout if capture else ""


def timed(command: list[str], *, cwd: Path, env: dict | None = None) -> float:
    start = time.perf_counter()
    run(command, cwd=cwd, env=env)
    return time.perf_counter() - start


def bench_lock(repeat: int) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from hatch_lambda.lockfile.resolve import resolve
    from hatch_lambda.runtime.target import Target

    # The largest lock of the fixtures and of the public corpus (fixtures/corpus): about 1.5 MB.
    locks = sorted([*FIXTURES.glob("*/uv.lock"), *FIXTURES.glob("corpus/*/uv.lock")], key=lambda p: p.stat().st_size)
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
    bare = statistics.median(timed([sys.executable, "-I", "-S", "-c", "pass"], cwd=ROOT) for _ in range(repeat))
    size_kib = (largest / "uv.lock").stat().st_size / 1024
    print(f"lock read: {largest.name}/uv.lock ({size_kib:.0f} KiB, {len(resolution.distributions)} distributions)")
    print(f"  resolve() median of {repeat}: {ours * 1000:.1f} ms")
    print(f"  python -c pass median:        {startup * 1000:.1f} ms")
    print(f"  python -I -S -c pass median:  {bare * 1000:.1f} ms (no site-packages at all)")
    print(f"  ratio resolve / start-up:     {ours / startup:.2f}")


def requirements(project: Path, env: dict) -> Path:
    text = run(["uv", "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes", "--quiet"],
               cwd=project, env=env, capture=True)
    path = project.parent / "requirements.txt"
    path.write_text(text)
    return path


def uv_baseline(work: Path, project: Path, env: dict) -> tuple[float, Path]:
    """uv export + uv pip install --target + zip -qrX: (seconds, zip)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    layer = work / "layer"
    start = time.perf_counter()
    reqs = requirements(project, env)
    run(["uv", "pip", "install", "--quiet", "--python-platform", "x86_64-manylinux_2_34", "--python-version", "3.12",
         "--only-binary", ":all:", "--target", str(layer / "python"), "-r", str(reqs)], cwd=work, env=env)
    run(["zip", "-qrX", str(work / "layer.zip"), "."], cwd=layer, env=env)
    return time.perf_counter() - start, work / "layer.zip"


def pip_baseline(work: Path, project: Path, env: dict) -> tuple[float, Path]:
    """uv export (for the pins) + pip install --platform -t + zip -qrX: (seconds, zip)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    layer = work / "layer"
    reqs = requirements(project, env)
    start = time.perf_counter()
    # --isolated: no pip.conf (extra indexes, constraints) of this machine steers the baseline.
    run([sys.executable, "-m", "pip", "install", "--isolated", "--index-url", "https://pypi.org/simple", "--quiet",
         "--disable-pip-version-check", "--no-deps",
         *PIP_PLATFORMS, "--python-version", "3.12", "--implementation", "cp",
         "--only-binary=:all:", "-t", str(layer / "python"), "-r", str(reqs)], cwd=work, env=env)
    run(["zip", "-qrX", str(work / "layer.zip"), "."], cwd=layer, env=env)
    return time.perf_counter() - start, work / "layer.zip"


def hatch_build(project: Path, env: dict, *args: str) -> tuple[float, Path]:
    command = [sys.executable, "-m", "hatchling", "build", "-t", "lambda-layer", *args]
    return timed(command, cwd=project, env=env), project / "dist" / "lambda" / "layer.zip"


def variant_build(work: Path, project: Path, option: str, env: dict) -> tuple[float, Path]:
    """The project's layer built cold (its packs' keys are new) with ``option`` added to its table."""
    copy = work / "project"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns("dist", "__pycache__"))
    text = (copy / "pyproject.toml").read_text()
    (copy / "pyproject.toml").write_text(text.replace('arch = "x86_64"', f'arch = "x86_64"\n{option}', 1))
    seconds, layer = hatch_build(copy, env)
    kept = work / "layer.zip"
    shutil.copyfile(layer, kept)
    return seconds, kept


def python312() -> str | None:
    """A python3.12 interpreter, found the way the tests find one (PATH, pyenv)."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from helpers.lambda_run import find_python

        return find_python("3.12")
    except BaseException:  # noqa: BLE001 - the tests' helper skips when there is none
        return None


def imports_ok(layer: Path, scratch: Path, modules: list[str]) -> str:
    """Import ``modules`` and every top-level module of the layer with python3.12 -I -S."""
    python = python312()
    if python is None:
        return "not checked (no python3.12)"
    opt = scratch / "opt"
    shutil.rmtree(opt, ignore_errors=True)
    with zipfile.ZipFile(layer) as archive:
        archive.extractall(opt)
    site = opt / "python"
    tops = sorted({p.name.split(".")[0] for p in site.iterdir()
                   if not p.name.endswith(".dist-info") and (p.suffix in ("", ".py", ".so"))})
    code = ("import importlib, sys; sys.path.insert(0, sys.argv[1]); "
            "[importlib.import_module(m) for m in sys.argv[2:]]; print(len(sys.argv) - 2)")
    result = subprocess.run([python, "-I", "-S", "-c", code, str(site), *tops, *modules], capture_output=True,
                            text=True, env={"PATH": os.environ.get("PATH", ""), "HOME": str(scratch)})
    if result.returncode != 0:
        return "FAILED: " + result.stderr.strip().splitlines()[-1]
    return f"{result.stdout.strip()} modules import"


IMPORT_RUNS = 7  # alternating runs per layer, after one discarded warm-up run each
IMPORT_SCRIPT = """
import sys, time
start = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import importlib
for name in sys.argv[2:]:
    importlib.import_module(name)
import boto3
boto3.client("s3", region_name="us-east-1")
print(time.perf_counter() - start)
"""


def unzipped(layer: Path) -> int:
    with zipfile.ZipFile(layer) as archive:
        return sum(info.file_size for info in archive.infolist())


def import_times(layers: dict[str, Path], scratch: Path, modules: list[str]) -> dict[str, float] | None:
    """Median seconds to import ``modules`` and make a boto3 client from each unzipped layer, in a fresh
    ``python3.12 -B -I -S`` (nothing written, nothing of this machine's site-packages), the layers
    taking turns so that both see the same machine; the first run of each is discarded."""
    python = python312()
    if python is None:
        return None
    sites = {}
    for label, layer in layers.items():
        opt = scratch / f"import-{label}"
        shutil.rmtree(opt, ignore_errors=True)
        with zipfile.ZipFile(layer) as archive:
            archive.extractall(opt)
        sites[label] = str(opt / "python")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(scratch), "AWS_EC2_METADATA_DISABLED": "true"}
    runs: dict[str, list[float]] = {label: [] for label in layers}
    for _ in range(IMPORT_RUNS + 1):
        for label, site in sites.items():
            out = subprocess.run([python, "-B", "-I", "-S", "-c", IMPORT_SCRIPT, site, *modules],
                                 capture_output=True, text=True, env=env, check=False)
            if out.returncode != 0:
                sys.exit(f"importing from the {label} layer failed:\n{out.stderr}")
            runs[label].append(float(out.stdout.strip().splitlines()[-1]))
    return {label: statistics.median(values[1:]) for label, values in runs.items()}


def bench_build(bump: str) -> None:
    for tool in ("uv", "zip"):
        if shutil.which(tool) is None:
            sys.exit(f"bench needs `{tool}` on PATH")
    with tempfile.TemporaryDirectory(prefix="hatch-lambda-bench-") as scratch:
        scratch = Path(scratch)
        env = {**os.environ, "UV_CACHE_DIR": str(scratch / "uv-cache"), "PIP_CACHE_DIR": str(scratch / "pip-cache"),
               "HATCH_LAMBDA_CACHE_DIR": str(scratch / "hl-cache"), "PYTHONDONTWRITEBYTECODE": "1",
               "UV_PYTHON_DOWNLOADS": "never"}
        env.pop("SOURCE_DATE_EPOCH", None)
        project = scratch / "demo" / "project"
        shutil.copytree(DEMO, project, ignore=shutil.ignore_patterns("dist", "__pycache__"))
        bumped = scratch / "bumped" / "project"
        shutil.copytree(project, bumped)
        relock = ["uv", "lock", "--quiet", "-P", bump]
        run(relock + (["--python", python312()] if python312() else []), cwd=bumped, env=env)

        # Fill every download cache first: all figures below are "downloads cached".
        uv_baseline(scratch / "uv-warmup", project, env)
        pip_baseline(scratch / "pip-warmup", project, env)
        hatch_build(project, env, "-c")
        hl_cache = Path(env["HATCH_LAMBDA_CACHE_DIR"])
        for kind in ("packs", "layers"):
            shutil.rmtree(hl_cache / kind, ignore_errors=True)

        uv_s, uv_zip = uv_baseline(scratch / "uv", project, env)
        pip_s, pip_zip = pip_baseline(scratch / "pip", project, env)
        cold_s, layer = hatch_build(project, env)
        ours_bytes = layer.stat().st_size
        handler = project / "src" / "spectra" / "api.py"
        code_runs = []
        for n in range(3):
            handler.write_text(handler.read_text() + f"\n# edit {n}\n")
            code_runs.append(hatch_build(project, env)[0])
        code_s = statistics.median(code_runs)
        bump_s, bump_layer = hatch_build(bumped, env)
        full_s, _ = hatch_build(project, env, "-c")
        imports = imports_ok(layer, scratch, IMPORTS)
        shutil.copyfile(layer, scratch / "ours-layer.zip")  # the cold build's, before later builds replace it
        variants = {label: variant_build(scratch / "variants" / str(n), project, option, env)
                    for n, (label, option) in enumerate(VARIANTS.items())}
        timed_layers = {"uv": uv_zip, "ours": scratch / "ours-layer.zip",
                        **{label: variants[label][1] for label in variants if label.startswith("bytecode")}}
        times = import_times(timed_layers, scratch, IMPORTS)

        seed = scratch / "seed" / "project"
        shutil.copytree(DEMO, seed, ignore=shutil.ignore_patterns("dist", "__pycache__"))
        text = (seed / "pyproject.toml").read_text()
        lines = [line for line in text.splitlines() if not line.startswith(("strip-patterns", "max-zipped-mb"))]
        text = "\n".join(lines).replace('arch = "x86_64"', 'arch = "x86_64"' + SEED_OPTIONS)
        (seed / "pyproject.toml").write_text(text)
        _, seed_layer = hatch_build(seed, env)
        seed_imports = imports_ok(seed_layer, scratch, [m for m in IMPORTS if m != "boto3"])

        def row(label: str, seconds: float) -> str:
            return f"  {label:34} {seconds:7.2f} s   {seconds / uv_s:5.2f}x uv"

        print(f"layer build: fixtures/spectra-demo, python 3.12 x86_64, {os.cpu_count()} cores, downloads cached")
        print(row("uv export + uv pip install + zip", uv_s) + f"   {uv_zip.stat().st_size / MIB:6.1f} MiB")
        print(row("pip install -t + zip", pip_s) + f"   {pip_zip.stat().st_size / MIB:6.1f} MiB")
        print(row("hatch-lambda cold", cold_s) + f"   {ours_bytes / MIB:6.1f} MiB "
              f"({ours_bytes / uv_zip.stat().st_size:.2f}x uv's zip; {imports})")
        print(row("hatch-lambda code-only rebuild", code_s) + f"   (median of {len(code_runs)})")
        print(row(f"hatch-lambda one bump ({bump})", bump_s) + f"   {bump_layer.stat().st_size / MIB:6.1f} MiB")
        print(row("hatch-lambda -c (no cache)", full_s))
        print(f"  seed set with README's options: {seed_layer.stat().st_size / MIB:.1f} MiB "
              f"({seed_layer.stat().st_size:,} bytes; {seed_imports})")
        uv_zipped, ours_zipped = uv_zip.stat().st_size, ours_bytes
        uv_unzipped, ours_unzipped = unzipped(uv_zip), unzipped(scratch / "ours-layer.zip")
        print("the layer itself, against the uv recipe's:")
        print(f"  zipped    {uv_zipped / MIB:7.1f} MiB uv   {ours_zipped / MIB:7.1f} MiB ours   "
              f"{ours_zipped / uv_zipped:5.2f}x")
        print(f"  unzipped  {uv_unzipped / MIB:7.1f} MiB uv   {ours_unzipped / MIB:7.1f} MiB ours   "
              f"{ours_unzipped / uv_unzipped:5.2f}x")
        if times is None:
            print("  import time: not measured (no python3.12)")
        else:
            print(f"  import time (median of {IMPORT_RUNS}, python3.12 -B -I -S, {len(IMPORTS)} modules and a boto3 "
                  f"client)  {times['uv']:.3f} s uv   {times['ours']:.3f} s ours   {times['ours'] / times['uv']:5.2f}x")
        print("what each option costs (the layer built cold with one option changed; x uv, and against the default):")
        print(f"  {'default':24} cold {cold_s:6.2f} s {cold_s / uv_s:5.2f}x   zipped {ours_zipped / MIB:6.1f} MiB "
              f"{ours_zipped / uv_zipped:5.2f}x   unzipped {ours_unzipped / MIB:6.1f} MiB"
              + (f"   import {times['ours'] / times['uv']:4.2f}x" if times else ""))
        for label, (seconds, variant) in variants.items():
            zipped_size, unzipped_size = variant.stat().st_size, unzipped(variant)
            imported = f"   import {times[label] / times['uv']:4.2f}x" if times and label in times else ""
            print(f"  {label:24} cold {seconds:6.2f} s {seconds / uv_s:5.2f}x   zipped {zipped_size / MIB:6.1f} MiB "
                  f"{zipped_size / uv_zipped:5.2f}x   unzipped {unzipped_size / MIB:6.1f} MiB "
                  f"({(zipped_size - ours_zipped) / MIB:+.1f} MiB zipped){imported}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--skip-build", action="store_true", help="only the lock-reading benchmark")
    parser.add_argument("--bump", default="aws-lambda-powertools==3.36.0",
                        help="the one-package change, as uv lock -P takes it (default: %(default)s)")
    args = parser.parse_args()
    bench_lock(args.repeat)
    if not args.skip_build:
        bench_build(args.bump)


if __name__ == "__main__":
    main()
