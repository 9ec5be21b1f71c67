"""A cold-start profile: each top-level module imported under Lambda's ``sys.path`` with ``-X importtime``.

The runner's interpreter (this machine's ``pythonX.Y``, or the image's) starts
one fresh interpreter of itself with ``-X importtime -I -S -B``, so nothing of
the first one's imports is counted and nothing is written; CPython reports, for
every module it imports, the microseconds spent in the module itself and
cumulatively with what it imported. The profile keeps only the imports made
after the artifact's directories were put on ``sys.path``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hatch_lambda.runtime.interpreters import HostPython, ImagePython

MARK = "@@hatch-lambda-importtime@@"
SLOWEST = 15

SCRIPT = r"""
import json, subprocess, sys
paths, modules = json.loads(sys.argv[1])
child = (
    "import importlib, sys\n"
    "sys.path[:0] = " + repr(paths) + "\n"
    "sys.stderr.write('@@start@@\\n'); sys.stderr.flush()\n"
    "for name in " + repr(modules) + ":\n"
    "    try:\n"
    "        importlib.import_module(name)\n"
    "    except BaseException:\n"
    "        pass\n"
)
done = subprocess.run([sys.executable, "-X", "importtime", "-I", "-S", "-B", "-c", child],
                      capture_output=True, text=True)
lines = done.stderr.split("@@start@@\n", 1)[-1].splitlines()
print("MARK" + json.dumps(lines))
""".replace("MARK", MARK)


@dataclass(frozen=True)
class Imported:
    """One module's import: its own time and the time with everything it imported (microseconds)."""

    module: str
    self_us: int
    cumulative_us: int
    depth: int  # 0: imported by the profile itself; deeper: imported by the module above it


@dataclass(frozen=True)
class ImportProfile:
    artifact: str
    interpreter: str
    imports: tuple[Imported, ...]

    @property
    def total_us(self) -> int:
        """Every import the top-level modules caused: the sum of the outermost ones' cumulative times."""
        return sum(item.cumulative_us for item in self.imports if item.depth == 0)

    def slowest(self, count: int = SLOWEST) -> list[Imported]:
        return sorted(self.imports, key=lambda item: (-item.cumulative_us, item.module))[:count]

    def as_dict(self) -> dict:
        return {"artifact": self.artifact, "interpreter": self.interpreter, "total_us": self.total_us,
                "imports": len(self.imports),
                "slowest": [{"module": item.module, "cumulative_us": item.cumulative_us, "self_us": item.self_us}
                            for item in self.slowest()]}


def parse_importtime(lines: list[str]) -> tuple[Imported, ...]:
    """CPython's ``import time: <self> | <cumulative> | <indented name>`` lines (the header skipped)."""
    out = []
    for line in lines:
        if not line.startswith("import time:"):
            continue
        fields = line[len("import time:"):].split("|", 2)
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header line: "self [us] | cumulative | imported package"
        name = fields[2].rstrip()
        indent = len(name) - len(name.lstrip())
        out.append(Imported(name.strip(), int(fields[0]), int(fields[1]), max(0, (indent - 1) // 2)))
    return tuple(out)


def profile_imports(runner: HostPython | ImagePython, unpacked: Path, artifact: str,
                    modules: list[str]) -> ImportProfile | None:
    """The import profile of ``modules`` from the artifact laid out in ``unpacked``; None when it did not run."""
    stdout, _ = runner.execute(unpacked, SCRIPT, json.dumps([runner.sys_path(unpacked), modules]))
    for line in stdout.splitlines():
        if line.startswith(MARK):
            return ImportProfile(artifact, runner.description, parse_importtime(json.loads(line[len(MARK):])))
    return None


def profile_lines(profile: ImportProfile) -> list[str]:
    """The profile as the command prints it: the total, then the slowest imports with their cumulative time."""
    lines = [f"{profile.artifact}: importing every top-level module took {profile.total_us / 1000:.1f} ms "
             f"({len(profile.imports)} modules) with {profile.interpreter}; the {SLOWEST} slowest, "
             "cumulative (with what each imports) and self:"]
    width = max((len(item.module) for item in profile.slowest()), default=0)
    for item in profile.slowest():
        lines.append(f"  {item.module:<{width}}  {item.cumulative_us / 1000:9.1f} ms  {item.self_us / 1000:8.1f} ms")
    return lines
