"""A private Docker engine and a local stand-in for the AWS Lambda Python image.

Used by the test-suite (see ``conftest.py``) and usable from a shell::

    python tests/helpers/engine.py start --workdir DIR   # prints DOCKER_HOST=unix://...
    DOCKER_HOST=unix://... python tests/helpers/engine.py image
    python tests/helpers/engine.py stop --workdir DIR

Nothing here depends on pytest.  The engine is a ``dockerd`` started in the
background with its own data-root, exec-root, pidfile and unix socket, without
a bridge network and without touching iptables, so it never interferes with
any other engine on the machine.  Containers that need network use
``network_mode="host"``; the ones that must not have any use ``"none"``.

The image is *not* pulled: no registry is needed.  A Debian bookworm root
filesystem is made with ``debootstrap`` and shaped like
``public.ecr.aws/lambda/python:3.11`` (Python at ``/var/lang/bin/python3.11``,
``/var/task``, ``/opt``, ``/lambda-entrypoint.sh`` as entrypoint, ...), packed
into a tarball kept in the user cache directory and imported with
``docker import``.  Debian's ``EXTERNALLY-MANAGED`` marker is removed from the
image, so its pip behaves like the one in the real image (no PEP 668 refusal).

For arm64 (``--arch arm64`` / ``arch="arm64"``) the same recipe is
debootstrapped for arm64, which runs through qemu's user-mode emulator:
binfmt_misc hands it every aarch64 executable, in chroots and containers too
(see :func:`ensure_arm64_emulation`)::

    python tests/helpers/engine.py emulation              # qemu-user-static + binfmt entry
    DOCKER_HOST=unix://... python tests/helpers/engine.py image --arch arm64

``docker import`` records the engine's own architecture, so the arm64 image's
config is rewritten to say arm64 (see :func:`ensure_lambda_image`).  The arm64
root filesystem can also be used without Docker: :func:`unpack_rootfs`
extracts it into a directory and :func:`run_in_rootfs` runs a command in it
with ``chroot``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

DEFAULT_IMAGE = "hatch-lambda-test/python:3.11"
DEFAULT_ARM64_IMAGE = "hatch-lambda-test/python-arm64:3.11"
# Debian architecture names; the other spellings are accepted too.
ARCHES = ("amd64", "arm64")
ARCH_ALIASES = {"x86_64": "amd64", "aarch64": "arm64"}
DEFAULT_IMAGES = {"amd64": DEFAULT_IMAGE, "arm64": DEFAULT_ARM64_IMAGE}
# platform.machine() / uname -m of each arch
MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
# what the image config says for each arch (as in the real arm64 Lambda image)
IMAGE_PLATFORMS = {"amd64": ("amd64", ""), "arm64": ("arm64", "v8")}
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = os.environ.get(
    "HATCH_LAMBDA_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian"
)
DEBIAN_PACKAGES = ("python3", "python3-pip", "python3-venv")
PYTHON_VERSION = "3.11"
# Label carrying the recipe key: an image built from another recipe is rebuilt.
RECIPE_LABEL = "org.hatch-lambda.test.recipe"

ENTRYPOINT_MESSAGE = (
    "this is the Lambda entrypoint; it needs a handler "
    "(override the entrypoint to run anything else in this image)"
)
ENTRYPOINT_SCRIPT = f"""#!/bin/sh
# Stand-in for the AWS Lambda base image's entrypoint, which starts the runtime
# interface client with the handler named in CMD.  This test image has no
# runtime, so anything that forgets to override the entrypoint fails loudly.
echo "{ENTRYPOINT_MESSAGE}" >&2
exit 1
"""
PIP_WRAPPER = f"""#!/bin/sh
exec /var/lang/bin/python{PYTHON_VERSION} -m pip "$@"
"""
IMAGE_PATH = (
    "/var/lang/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)
IMAGE_ENV = {
    "PATH": IMAGE_PATH,
    "LANG": "C.UTF-8",
    "LAMBDA_TASK_ROOT": "/var/task",
    "LAMBDA_RUNTIME_DIR": "/var/runtime",
}
# Removed from the root filesystem before packing it (globs relative to the
# root; a trailing "/" matches directories only).
TRIM = (
    "var/cache/apt/archives/*.deb",
    "var/cache/apt/*.bin",
    "var/lib/apt/lists/*_*",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
    "var/cache/ldconfig/aux-cache",
    "var/log/*",
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/locale/*/",
    "tmp/*",
    "root/.cache",
)
# Bump when the shaping below changes in a way the inputs above do not show.
RECIPE_REVISION = 1

# binfmt_misc: the kernel hands executables whose first bytes match an entry to
# that entry's interpreter (here qemu's user-mode emulator).
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_NAME = "qemu-aarch64"
QEMU_PACKAGE = "qemu-user-static"
# Where the package keeps the entry: a register line (systemd-binfmt format),
# and the same in binfmt-support's key/value format.
BINFMT_SOURCES = (
    Path("/usr/lib/binfmt.d/qemu-aarch64.conf"),
    Path("/usr/share/binfmts/qemu-aarch64"),
)
PROBE_MESSAGE = b"aarch64 probe ok\n"

ENGINE_STATE = "engine.json"
PIDFILE = "dockerd.pid"
LOGFILE = "dockerd.log"

# Longest path we accept for the engine's sockets (sun_path holds 108 bytes and
# containerd puts "<exec-root>/containerd/containerd.sock.ttrpc" in there).
_MAX_RUN_DIR = 60


class EngineError(RuntimeError):
    """The engine could not be started / the image could not be made."""


# --------------------------------------------------------------------------
# host tools


def _find_executable(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        candidate = os.path.join(d, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def ensure_host_tools(tools: tuple[str, ...] = ("dockerd", "debootstrap")) -> None:
    """Install Debian's docker.io and debootstrap when one of ``tools`` is missing.

    Only done as root (apt-get); otherwise raises :class:`EngineError`.
    """
    missing = [t for t in tools if _find_executable(t) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise EngineError(
            f"{', '.join(missing)} not found, and installing docker.io/debootstrap "
            "with apt-get needs root; install them, or start an engine yourself "
            "and point HATCH_LAMBDA_TEST_DOCKER_HOST at it"
        )
    if _find_executable("apt-get") is None:
        raise EngineError(f"{', '.join(missing)} not found and apt-get is not available")
    _apt_get_install(["docker.io", "debootstrap"])
    still = [t for t in tools if _find_executable(t) is None]
    if still:
        raise EngineError(f"{', '.join(still)} still missing after apt-get install")


def _apt_get_install(packages: list[str]) -> None:
    """``apt-get update`` and ``apt-get install -y packages`` (root), services kept off.

    ``packages`` may start with apt-get options (``--no-install-recommends``).
    """
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Keep the package's maintainer scripts from starting a system-wide dockerd
    # (or any other service): we start our own, and only ours.
    policy = Path("/usr/sbin/policy-rc.d")
    own_policy = not policy.exists()
    if own_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        for cmd in (
            ["apt-get", "update"],
            ["apt-get", "install", "-y", *packages],
        ):
            proc = subprocess.run(
                cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True
            )
            if proc.returncode != 0:
                raise EngineError(
                    f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                    + _tail(proc.stdout + proc.stderr)
                )
    finally:
        if own_policy:
            policy.unlink(missing_ok=True)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _file_tail(path: Path, lines: int = 40) -> str:
    try:
        return _tail(path.read_text(errors="replace"), lines)
    except OSError as exc:
        return f"(cannot read {path}: {exc})"


# --------------------------------------------------------------------------
# arm64 emulation (qemu user mode + binfmt_misc)


def normalize_arch(arch: str) -> str:
    """``amd64`` or ``arm64`` for any usual spelling of the two (x86_64, aarch64)."""
    arch = ARCH_ALIASES.get(arch, arch)
    if arch not in ARCHES:
        raise EngineError(f"unknown arch {arch!r}: use one of {', '.join(ARCHES)}")
    return arch


def host_arch() -> str:
    """This machine's arch, ``amd64`` or ``arm64``."""
    machine = platform.machine()
    try:
        return normalize_arch(machine)
    except EngineError:
        raise EngineError(f"unsupported host machine {machine!r}") from None


@dataclass
class BinfmtEntry:
    """What :func:`ensure_arm64_emulation` found or set up."""

    path: Path  # the entry under binfmt_misc (the directory itself on an arm64 host)
    interpreter: str
    flags: str
    registered: bool = False  # registered by this call
    installed: bool = False  # qemu-user-static installed by this call
    native: bool = False  # the host is arm64 itself: nothing to emulate

    def describe(self) -> str:
        if self.native:
            return "arm64 host: aarch64 binaries run natively"
        how = "registered now" if self.registered else "already registered"
        return f"{self.path} ({how}): interpreter {self.interpreter}, flags {self.flags or '-'}"


def aarch64_probe_elf(message: bytes = PROBE_MESSAGE) -> bytes:
    """A minimal static aarch64 Linux executable that writes ``message`` and exits 0.

    Eight instructions (write(1, message, len); exit(0)) in one loadable
    segment, so that emulation can be checked before any arm64 root filesystem
    exists.
    """
    if not 0 < len(message) < 1 << 16:
        raise ValueError("message must be 1..65535 bytes")
    base = 0x400000
    code_start = 64 + 56  # ELF header + one program header
    adr_at, message_at = 4, 8 * 4  # adr is the 2nd instruction; message after the 8th
    distance = message_at - adr_at
    instructions = (
        0xD2800020,  # mov x0, #1            fd: stdout
        0x10000001 | (distance & 3) << 29 | (distance >> 2) << 5,  # adr x1, message
        0xD2800002 | len(message) << 5,  # mov x2, #len(message)
        0xD2800808,  # mov x8, #64           write
        0xD4000001,  # svc #0
        0xD2800000,  # mov x0, #0            status
        0xD2800BA8,  # mov x8, #93           exit
        0xD4000001,  # svc #0
    )
    code = struct.pack(f"<{len(instructions)}I", *instructions) + message
    size = code_start + len(code)
    ident = b"\x7fELF" + bytes((2, 1, 1, 0)) + bytes(8)  # 64-bit, little-endian, SysV
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH",
        2,  # ET_EXEC
        0xB7,  # EM_AARCH64
        1,  # EV_CURRENT
        base + code_start,  # entry point
        64,  # program headers right after this header
        0, 0,  # no section headers, no flags
        64, 56, 1,  # header size, program header size and count
        64, 0, 0,  # section header size (checked even when there are none), count, names
    )
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)  # PT_LOAD, R+X
    return header + segment + code


def _binfmt_mounted() -> bool:
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[1] == str(BINFMT_DIR) and fields[2] == "binfmt_misc":
                    return True
    except OSError:
        pass
    return False


def _kernel_has_binfmt_misc() -> bool:
    try:
        return any(line.split()[-1] == "binfmt_misc" for line in open("/proc/filesystems") if line.strip())
    except OSError:
        return False


def _ensure_binfmt_mounted() -> None:
    """Mount binfmt_misc at its usual place when it is not mounted yet."""
    if _binfmt_mounted():
        return
    if os.geteuid() != 0:
        raise EngineError(
            f"binfmt_misc is not mounted at {BINFMT_DIR}, and mounting it needs root "
            f"(mount -t binfmt_misc binfmt_misc {BINFMT_DIR})"
        )
    if not _kernel_has_binfmt_misc() and _find_executable("modprobe"):
        subprocess.run(["modprobe", "binfmt_misc"], capture_output=True)
    if not _kernel_has_binfmt_misc():
        raise EngineError(
            "this kernel has no binfmt_misc support (not in /proc/filesystems, and no module "
            "could be loaded), so it cannot hand aarch64 executables to an emulator"
        )
    cmd = ["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not _binfmt_mounted():
        raise EngineError(
            f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip() or 'not mounted after it'}"
            " (inside a container /proc/sys is usually read-only: set up emulation on the host)"
        )


def _read_binfmt_entry(path: Path) -> dict[str, str]:
    """An entry under binfmt_misc as a dict: ``enabled`` ("enabled"/"disabled"), interpreter, flags, ..."""
    info: dict[str, str] = {}
    lines = path.read_text().splitlines()
    if lines:
        info["enabled"] = lines[0].strip()
    for line in lines[1:]:
        key, _, value = line.partition(" ")
        info[key.rstrip(":")] = value.strip()
    return info


def _packaged_binfmt_line() -> str | None:
    """The register line for aarch64 that qemu-user-static ships, or None.

    Read from the binfmt.d file (already a register line) or built from the
    binfmt-support description.  ``F`` (fix-binary: the kernel opens the
    interpreter once, now, so it also works inside chroots and containers that
    do not have it) is added when missing.
    """
    line = None
    conf, binfmts = BINFMT_SOURCES
    if conf.is_file():
        for candidate in conf.read_text().splitlines():
            if candidate.startswith(f":{BINFMT_NAME}:"):
                line = candidate.strip()
                break
    if line is None and binfmts.is_file():
        keys: dict[str, str] = {}
        for entry in binfmts.read_text().splitlines():
            key, _, value = entry.strip().partition(" ")
            keys[key] = value.strip()
        if keys.get("magic") and keys.get("interpreter"):
            flags = "P" if keys.get("preserve") == "yes" else ""
            flags += "C" if keys.get("credentials") == "yes" else ""
            flags += "F" if keys.get("fix_binary") == "yes" else ""
            line = (
                f":{BINFMT_NAME}:M:{keys.get('offset', '0')}:{keys['magic']}:{keys.get('mask', '')}"
                f":{keys['interpreter']}:{flags}"
            )
    if line is None:
        return None
    fields = line.split(":")
    # "", name, type, offset, magic, mask, interpreter, flags
    if len(fields) != 8:
        raise EngineError(f"unexpected binfmt register line for {BINFMT_NAME}: {line!r}")
    if "F" not in fields[7]:
        fields[7] += "F"
    return ":".join(fields)


def _register_binfmt(line: str) -> bool:
    """Register ``line``; False when an entry of that name appeared meanwhile (someone else's)."""
    interpreter = line.split(":")[6]
    if not os.path.exists(interpreter):
        raise EngineError(f"the emulator {interpreter} named by the {BINFMT_NAME} entry does not exist")
    try:
        fd = os.open(BINFMT_DIR / "register", os.O_WRONLY)
        try:
            os.write(fd, line.encode())  # one write: the kernel parses each write as one entry
        finally:
            os.close(fd)
    except OSError as exc:
        if (BINFMT_DIR / BINFMT_NAME).exists():
            return False
        raise EngineError(f"registering {BINFMT_NAME} in {BINFMT_DIR}/register failed: {exc}") from exc
    return True


def _run_probe(directory: Path) -> None:
    """Run the aarch64 probe in ``directory``, then (as root) inside a chroot of it."""
    probe = directory / "probe"
    probe.write_bytes(aarch64_probe_elf())
    probe.chmod(0o755)
    attempts = [("on this machine", [str(probe)])]
    chroot = _find_executable("chroot")
    if os.geteuid() == 0 and chroot:
        # the chroot has no emulator in it: only a fix-binary entry works there
        attempts.append(("inside a chroot without the emulator", [chroot, str(directory), "/probe"]))
    for where, cmd in attempts:
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=60)
        except OSError as exc:
            hint = " (the kernel did not hand it to an emulator)" if exc.errno == errno.ENOEXEC else ""
            raise EngineError(f"running an aarch64 executable {where} failed: {exc}{hint}") from exc
        except subprocess.TimeoutExpired:
            raise EngineError(f"an aarch64 executable {where} did not finish in 60s") from None
        if proc.returncode != 0 or proc.stdout != PROBE_MESSAGE:
            raise EngineError(
                f"an aarch64 executable {where} exited {proc.returncode} with stdout {proc.stdout!r} "
                f"(expected {PROBE_MESSAGE!r}); stderr: {proc.stderr.decode(errors='replace').strip()}"
            )


def check_arm64_emulation() -> None:
    """Raise :class:`EngineError` unless aarch64 executables run here (and, as root, in chroots)."""
    work = Path(tempfile.mkdtemp(prefix="aarch64-probe-"))
    try:
        _run_probe(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_arm64_emulation() -> BinfmtEntry:
    """Make aarch64 executables run on this machine, in chroots and in containers.

    Installs Debian's qemu-user-static when needed (apt-get, root), mounts
    binfmt_misc when it is not, and registers the package's ``qemu-aarch64``
    entry (with the fix-binary flag) when no entry of that name exists.  An
    existing entry is used as it is, never replaced or removed.  Checks the
    result by running a tiny aarch64 executable; raises :class:`EngineError`
    saying why when emulation cannot be set up.
    """
    if not sys.platform.startswith("linux"):
        raise EngineError(f"arm64 emulation needs Linux's binfmt_misc (this is {sys.platform})")
    if host_arch() == "arm64":
        check_arm64_emulation()
        return BinfmtEntry(path=BINFMT_DIR, interpreter="", flags="", native=True)
    _ensure_binfmt_mounted()
    status = BINFMT_DIR / "status"
    if status.exists() and status.read_text().strip() != "enabled":
        raise EngineError(
            f"binfmt_misc is disabled on this machine ({status} says "
            f"{status.read_text().strip()!r}); enable it with: echo 1 > {status}"
        )
    entry = BINFMT_DIR / BINFMT_NAME
    installed = registered = False
    if not entry.exists():
        if os.geteuid() != 0:
            raise EngineError(
                f"no {BINFMT_NAME} entry in {BINFMT_DIR}, and registering one needs root"
            )
        line = _packaged_binfmt_line()
        if line is None or not os.path.exists(line.split(":")[6]):
            if _find_executable("apt-get") is None:
                raise EngineError(f"{QEMU_PACKAGE} is not installed and apt-get is not available")
            # without recommends: binfmt-support or systemd would register every
            # architecture qemu knows, system-wide
            _apt_get_install(["--no-install-recommends", QEMU_PACKAGE])
            installed = True
            line = _packaged_binfmt_line()
            if line is None:
                raise EngineError(
                    f"{QEMU_PACKAGE} is installed but ships no {BINFMT_NAME} entry in "
                    + " or ".join(map(str, BINFMT_SOURCES))
                )
        registered = _register_binfmt(line)
    try:
        info = _check_binfmt_entry(entry)
        check_arm64_emulation()
    except EngineError:
        if registered:  # ours, and it does not work: leave nothing half-working behind
            entry.write_text("-1")
        raise
    return BinfmtEntry(
        path=entry,
        interpreter=info.get("interpreter", ""),
        flags=info.get("flags", ""),
        registered=registered,
        installed=installed,
    )


def _check_binfmt_entry(entry: Path) -> dict[str, str]:
    """The entry's fields; raises unless it is enabled and has the fix-binary flag."""
    info = _read_binfmt_entry(entry)
    if info.get("enabled") != "enabled":
        raise EngineError(f"{entry} is {info.get('enabled')!r}; enable it with: echo 1 > {entry}")
    flags = info.get("flags", "")
    if "F" not in flags:
        raise EngineError(
            f"{entry} was registered without the fix-binary flag F (flags {flags or '-'}), so "
            f"aarch64 executables do not run in chroots or containers; remove it (echo -1 > {entry}) "
            "and run this again to register it with F"
        )
    return info


# --------------------------------------------------------------------------
# processes


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, or None when it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat:
                children.setdefault(stat[1], []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _is_our_dockerd(pid: int, data_root: Path) -> bool:
    args = _cmdline(pid)
    return (
        bool(args)
        and os.path.basename(args[0]) == "dockerd"
        and str(data_root) in args
        and _alive(pid)
    )


def _wait_gone(pids: list[int], proc: subprocess.Popen | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None:
            proc.poll()  # reap our child so it does not linger as a zombie
        if not any(_alive(p) for p in pids):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def _signal(pids: list[int], sig: int) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, sig)


# --------------------------------------------------------------------------
# engine


@dataclass
class Engine:
    """A dockerd started by :func:`start_engine`."""

    base_url: str
    pid: int
    log_path: Path
    workdir: Path
    data_root: Path
    exec_root: Path | None = None
    # short directory of our own for socket + exec-root when workdir is long
    scratch_dir: Path | None = None
    _proc: subprocess.Popen | None = field(default=None, repr=False, compare=False)
    _stopped: bool = field(default=False, repr=False, compare=False)

    def client(self, timeout: int = 300):
        import docker

        return docker.DockerClient(base_url=self.base_url, timeout=timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM dockerd, wait, SIGKILL it (and what it started) after ``timeout``.

        Idempotent; does nothing to a pid that is no longer this engine's dockerd.
        """
        if self._stopped:
            return
        if _is_our_dockerd(self.pid, self.data_root):
            family = _descendants(self.pid)  # its containerd and shims
            _signal([self.pid], signal.SIGTERM)
            if not _wait_gone([self.pid], self._proc, timeout):
                _signal([self.pid, *family], signal.SIGKILL)
                _wait_gone([self.pid], self._proc, 10)
            # dockerd stops its containerd itself; make sure nothing is left.
            left = [p for p in family if _alive(p)]
            if left and not _wait_gone(left, None, 5):
                _signal(left, signal.SIGKILL)
                _wait_gone(left, None, 5)
        elif self._proc is not None:
            self._proc.poll()
        self._stopped = True
        if self.exec_root is not None and not _alive(self.pid):
            # dockerd leaves the bind mount of the host network namespace
            # (<exec-root>/netns/default) behind once a container used "host"
            _unmount_under(self.exec_root)
        if self.scratch_dir is not None:
            remove_tree(self.scratch_dir)
        (self.workdir / ENGINE_STATE).unlink(missing_ok=True)

    # state file, so that ``engine.py stop`` finds an engine ``start`` left running
    def save(self) -> Path:
        path = self.workdir / ENGINE_STATE
        path.write_text(
            json.dumps(
                {
                    "base_url": self.base_url,
                    "pid": self.pid,
                    "log_path": str(self.log_path),
                    "workdir": str(self.workdir),
                    "data_root": str(self.data_root),
                    "exec_root": str(self.exec_root) if self.exec_root else None,
                    "scratch_dir": str(self.scratch_dir) if self.scratch_dir else None,
                },
                indent=2,
            )
        )
        return path

    @classmethod
    def load(cls, workdir: Path) -> Engine:
        state = json.loads((Path(workdir) / ENGINE_STATE).read_text())
        return cls(
            base_url=state["base_url"],
            pid=int(state["pid"]),
            log_path=Path(state["log_path"]),
            workdir=Path(state["workdir"]),
            data_root=Path(state["data_root"]),
            exec_root=Path(state["exec_root"]) if state.get("exec_root") else None,
            scratch_dir=Path(state["scratch_dir"]) if state["scratch_dir"] else None,
        )


def start_engine(workdir: Path, timeout: float = 60.0) -> Engine:
    """Start a private dockerd whose state lives under ``workdir``.

    Installs docker.io/debootstrap first when missing (root only).  Returns
    once the engine answers ``ping``; raises :class:`EngineError` (with the end
    of its log) otherwise.
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    ensure_host_tools()
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - docker is a dependency
        raise EngineError("the docker Python SDK is not installed") from exc

    data_root = workdir / "data"
    pidfile = workdir / PIDFILE
    log_path = workdir / LOGFILE
    config = workdir / "daemon.json"
    config.write_text("{}\n")  # ignore /etc/docker/daemon.json

    old = _pid_from(pidfile)
    if old and _is_our_dockerd(old, data_root):
        raise EngineError(
            f"a dockerd (pid {old}) already runs on {data_root}; "
            f"stop it first (python {__file__} stop --workdir {workdir})"
        )

    scratch: Path | None = None
    run_dir = workdir / "run"
    if len(str(run_dir)) > _MAX_RUN_DIR:
        scratch = Path(tempfile.mkdtemp(prefix="hld-", dir="/tmp"))
        run_dir = scratch
    run_dir.mkdir(parents=True, exist_ok=True)
    socket = run_dir / "docker.sock"
    base_url = f"unix://{socket}"

    cmd = [
        _find_executable("dockerd") or "dockerd",
        "--config-file", str(config),
        "--data-root", str(data_root),
        "--exec-root", str(run_dir / "exec"),  # containerd's sockets go in here
        "--pidfile", str(pidfile),
        "-H", base_url,
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["PATH"] = env.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # survives Ctrl-C of the caller; stopped by stop()
        )
    engine = Engine(
        base_url=base_url,
        pid=proc.pid,
        log_path=log_path,
        workdir=workdir,
        data_root=data_root,
        exec_root=run_dir / "exec",
        scratch_dir=scratch,
        _proc=proc,
    )

    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        if proc.poll() is not None:
            engine.stop()
            raise EngineError(
                f"dockerd exited with status {proc.returncode}; end of {log_path}:\n"
                + _file_tail(log_path)
            )
        if socket.exists():
            try:
                client = docker.DockerClient(base_url=base_url, timeout=5)
                try:
                    if client.ping():
                        break
                finally:
                    client.close()
            except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
                last_error = exc
        if time.monotonic() >= deadline:
            engine.stop(timeout=10)
            raise EngineError(
                f"dockerd did not answer within {timeout:.0f}s ({last_error}); "
                f"end of {log_path}:\n" + _file_tail(log_path)
            )
        time.sleep(0.2)
    if _pid_from(pidfile) != proc.pid:
        pidfile.write_text(f"{proc.pid}\n")
    engine.save()
    return engine


def _pid_from(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------
# removing trees that may still hold mounts (a failed debootstrap leaves
# /proc, /sys or a bind of /dev mounted in its target)


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root).rstrip("/") + "/"
    found = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = line.split()[4].replace("\\040", " ")
                if point == str(root) or point.startswith(prefix):
                    found.append(point)
    except OSError:
        pass
    return sorted(found, key=len, reverse=True)


def _unmount_under(path: Path) -> None:
    for point in _mounts_under(Path(path)):
        subprocess.run(["umount", "-l", point], capture_output=True)


def remove_tree(path: Path) -> None:
    """``rm -rf path``, unmounting whatever is mounted below it first."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    _unmount_under(path)
    left = _mounts_under(path)
    if left:
        raise EngineError(f"refusing to delete {path}: still mounted: {left}")
    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------
# image


def default_cache_dir() -> Path:
    env = os.environ.get("HATCH_LAMBDA_TEST_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "hatch-lambda-tests"


def recipe_key(arch: str = "amd64") -> str:
    """Short hash of everything that decides the image's content.

    amd64's recipe does not name its arch (so its key stayed what it was
    before arm64 existed); every other arch's does.
    """
    arch = normalize_arch(arch)
    recipe = {
        "revision": RECIPE_REVISION,
        "suite": DEBIAN_SUITE,
        "packages": DEBIAN_PACKAGES,
        "python": PYTHON_VERSION,
        "entrypoint": ENTRYPOINT_SCRIPT,
        "pip": PIP_WRAPPER,
        "env": IMAGE_ENV,
        "trim": TRIM,
    }
    if arch != "amd64":
        recipe["arch"] = arch
        recipe["platform"] = IMAGE_PLATFORMS[arch]
    blob = json.dumps(recipe, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def image_changes(arch: str = "amd64") -> list[str]:
    """``docker import --change`` instructions: environment, workdir, entrypoint, recipe label."""
    changes = [f"ENV {k}={v}" for k, v in IMAGE_ENV.items()]
    changes += [
        "WORKDIR /var/task",
        'ENTRYPOINT ["/lambda-entrypoint.sh"]',
        f"LABEL {RECIPE_LABEL}={recipe_key(arch)}",
    ]
    return changes


def _shape_rootfs(root: Path) -> None:
    """Make a Debian root filesystem look like the Lambda Python base image."""
    py = f"python{PYTHON_VERSION}"
    if not (root / "usr/bin" / py).exists():
        raise EngineError(f"/usr/bin/{py} missing from the debootstrapped tree")
    lang_bin = root / "var/lang/bin"
    lang_bin.mkdir(parents=True, exist_ok=True)
    (lang_bin / py).symlink_to(f"/usr/bin/{py}")
    (lang_bin / "python3").symlink_to(py)
    (lang_bin / "python").symlink_to(py)
    for name in ("pip", "pip3", f"pip{PYTHON_VERSION}"):
        wrapper = lang_bin / name
        wrapper.write_text(PIP_WRAPPER)
        wrapper.chmod(0o755)
    for d in ("var/task", "var/runtime", "opt"):
        (root / d).mkdir(parents=True, exist_ok=True)
        (root / d).chmod(0o755)
    entry = root / "lambda-entrypoint.sh"
    entry.write_text(ENTRYPOINT_SCRIPT)
    entry.chmod(0o755)
    # PEP 668: the real image's pip installs anywhere; Debian's refuses system
    # installs while this marker exists.
    (root / f"usr/lib/{py}/EXTERNALLY-MANAGED").unlink(missing_ok=True)
    machine_id = root / "etc/machine-id"
    if machine_id.exists():
        machine_id.write_text("")


def _trim_rootfs(root: Path) -> None:
    for pattern in TRIM:
        for victim in root.glob(pattern.rstrip("/")):
            if pattern.endswith("/") and not victim.is_dir():
                continue
            if victim.is_dir() and not victim.is_symlink():
                shutil.rmtree(victim)
            else:
                victim.unlink()


def _source_date_epoch(root: Path) -> int:
    """Timestamp that install-time files are clamped to in the tarball.

    Newest ``.py`` shipped by the packages: clamping never touches those, so
    the ``.pyc`` files Debian compiled at install time stay valid.
    """
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    newest = 0
    for lib in (root / "usr/lib").glob("python3*"):
        for path in lib.rglob("*.py"):
            with contextlib.suppress(OSError):
                newest = max(newest, int(path.lstat().st_mtime))
    return newest or 0


def _pack_rootfs(root: Path, out: Path) -> None:
    """Deterministic-ish gzip'd tar of ``root``: sorted, numeric owners, clamped mtimes."""
    cmd = [
        "tar",
        "--create",
        "--file=-",
        f"--directory={root}",
        "--sort=name",
        "--numeric-owner",
        f"--mtime=@{_source_date_epoch(root)}",
        "--clamp-mtime",
        "--exclude=./dev/*",
        "--exclude=./proc/*",
        "--exclude=./sys/*",
        ".",
    ]
    with open(out, "wb") as raw, gzip.GzipFile(
        filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6
    ) as gz:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        for chunk in iter(lambda: proc.stdout.read(1 << 20), b""):
            gz.write(chunk)
        err = proc.stderr.read() if proc.stderr else b""
        if proc.wait() != 0:
            raise EngineError(f"tar failed: {err.decode(errors='replace')}")


def rootfs_tarball_path(cache_dir: Path | None = None, arch: str = "amd64") -> Path:
    """Where the root filesystem tarball of ``arch`` is cached (it may not exist yet)."""
    arch = normalize_arch(arch)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    name = f"lambda-python{PYTHON_VERSION}-{DEBIAN_SUITE}"
    if arch != "amd64":
        name += f"-{arch}"
    return cache_dir / f"{name}-{recipe_key(arch)}.tar.gz"


def build_rootfs_tarball(
    cache_dir: Path | None = None, force: bool = False, arch: str = "amd64"
) -> Path:
    """Return the cached root filesystem tarball, making it with debootstrap if needed.

    ``arch`` other than the host's is debootstrapped through emulation
    (:func:`ensure_arm64_emulation`), which makes the first arm64 build several
    times slower than amd64's.
    """
    arch = normalize_arch(arch)
    out = rootfs_tarball_path(cache_dir, arch)
    cache_dir = out.parent
    cache_dir.mkdir(parents=True, exist_ok=True)
    if out.exists() and not force:
        return out
    if os.geteuid() != 0:
        raise EngineError(
            f"{out} is not cached yet and making it needs root (debootstrap)"
        )
    ensure_host_tools(("debootstrap",))
    if arch != host_arch():
        # debootstrap's second stage runs the target's dpkg and maintainer
        # scripts in a chroot of it
        ensure_arm64_emulation()
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache_dir))
    try:
        root = work / "rootfs"
        log = work / "debootstrap.log"
        cmd = [
            _find_executable("debootstrap") or "debootstrap",
            f"--arch={arch}",
            "--variant=minbase",
            f"--include={','.join(DEBIAN_PACKAGES)}",
            DEBIAN_SUITE,
            str(root),
            DEBIAN_MIRROR,
        ]
        with open(log, "wb") as f:
            rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT).returncode
        if rc != 0:
            raise EngineError(
                f"{' '.join(cmd)} failed ({rc}):\n" + _file_tail(log)
                + "\n" + _file_tail(root / "debootstrap/debootstrap.log", 20)
            )
        _shape_rootfs(root)
        _trim_rootfs(root)
        partial = out.with_name(out.name + ".partial")
        _pack_rootfs(root, partial)
        os.replace(partial, out)
    finally:
        remove_tree(work)
    return out


def _split_tag(tag: str) -> tuple[str, str]:
    repository, _, version = tag.rpartition(":")
    if not repository or "/" in version:
        repository, version = tag, "latest"
    return repository, version


def _import_rootfs(client, tarball: Path, tag: str, arch: str) -> None:
    repository, version = _split_tag(tag)
    result = client.api.import_image(
        src=str(tarball), repository=repository, tag=version, changes=image_changes(arch)
    )
    for line in str(result).splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("error"):
            raise EngineError(f"docker import of {tarball} failed: {message['error']}")


def _image_platform(image) -> tuple[str, str]:
    return image.attrs.get("Architecture") or "", image.attrs.get("Variant") or ""


def _tar_add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def rewrite_saved_image_platform(
    saved: Path, out: Path, tag: str, architecture: str, variant: str = ""
) -> str:
    """Copy the ``docker save`` archive ``saved`` of one image to ``out`` with another platform.

    The image config's ``architecture`` / ``variant`` are set; the config blob
    is stored under its new sha256, which ``manifest.json`` (whose RepoTags
    become ``[tag]``) and ``repositories`` are rewritten to.  Layers are copied
    as they are.  Returns the new image id (``sha256:...``).
    """
    with tarfile.open(saved) as src:
        members = {m.name.removeprefix("./"): m for m in src.getmembers()}

        def read(name: str) -> bytes:
            member = members.get(name)
            handle = src.extractfile(member) if member is not None else None
            if handle is None:
                raise EngineError(f"{saved} has no file {name} (not a docker save archive?)")
            return handle.read()

        manifest = json.loads(read("manifest.json"))
        if not isinstance(manifest, list) or len(manifest) != 1:
            raise EngineError(f"{saved} holds {len(manifest)} images; expected one")
        old_name = manifest[0]["Config"]
        old_id = old_name.removesuffix(".json")
        config = json.loads(read(old_name))
        config["architecture"] = architecture
        if variant:
            config["variant"] = variant
        else:
            config.pop("variant", None)
        blob = json.dumps(config, separators=(",", ":")).encode()
        new_id = hashlib.sha256(blob).hexdigest()
        manifest[0]["Config"] = f"{new_id}.json"
        manifest[0]["RepoTags"] = [tag]
        # repositories: {repository: {tag: id}}, the id being the top layer's
        # (legacy) id; an entry naming the old config becomes the new one.
        legacy = json.loads(read("repositories")) if "repositories" in members else {}
        ids = [value for tags in legacy.values() for value in tags.values()]
        layers = manifest[0].get("Layers") or []
        top = ids[0] if ids else layers[-1].split("/")[0] if layers else old_id
        repository, version = _split_tag(tag)
        repositories = {repository: {version: new_id if top == old_id else top}}
        skip = {old_name, "manifest.json", "repositories"}
        with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as dst:
            for name, member in members.items():
                if name in skip:
                    continue
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
            _tar_add_bytes(dst, f"{new_id}.json", blob)
            _tar_add_bytes(dst, "manifest.json", json.dumps(manifest).encode())
            _tar_add_bytes(dst, "repositories", json.dumps(repositories).encode())
    return f"sha256:{new_id}"


def _set_image_platform(client, tag: str, architecture: str, variant: str) -> None:
    """Replace image ``tag`` by a copy whose config names another platform.

    ``docker import`` records the engine's own architecture whatever it is
    told (Docker 20.10), and ``docker run --platform`` then refuses the image;
    saving it, rewriting its config and loading it back fixes that.  The
    imported original is removed afterwards.
    """
    original = client.images.get(tag)
    with tempfile.TemporaryDirectory(prefix="image-platform-") as scratch:
        saved, rewritten = Path(scratch) / "saved.tar", Path(scratch) / "rewritten.tar"
        with open(saved, "wb") as f:
            for chunk in original.save(named=True):
                f.write(chunk)
        image_id = rewrite_saved_image_platform(saved, rewritten, tag, architecture, variant)
        saved.unlink()
        with open(rewritten, "rb") as f:
            client.images.load(f)
    loaded = client.images.get(tag)
    if loaded.id != image_id:
        raise EngineError(f"docker load of the rewritten {tag} gave {loaded.id}, expected {image_id}")
    if loaded.id != original.id:
        _remove_image_quietly(client, original.id)


def _remove_image_quietly(client, image_id: str) -> None:
    """Remove an image left without a tag; keep it when tagged or used by a container."""
    import docker

    try:
        if client.images.get(image_id).tags:
            return  # another name still wants it
        client.images.remove(image_id)
    except docker.errors.APIError:
        pass  # gone already, or still used by a container: not ours to force


def ensure_lambda_image(
    client, tag: str | None = None, cache_dir: Path | None = None, arch: str = "amd64"
) -> str:
    """Make sure ``tag`` names the local Lambda stand-in image for ``arch``; return ``tag``.

    ``tag`` defaults to :data:`DEFAULT_IMAGE` for amd64 and
    :data:`DEFAULT_ARM64_IMAGE` for arm64.  An image with that tag made from
    the current recipe, whose config names ``arch``, is kept as it is.
    Otherwise it is imported from the cached root filesystem tarball, which is
    made first (debootstrap, root only; emulated for arm64) when the cache does
    not have it.  An arm64 image has ``architecture: arm64, variant: v8`` in
    its config, so ``platform="linux/arm64"`` finds it.
    """
    import docker

    arch = normalize_arch(arch)
    tag = tag or DEFAULT_IMAGES[arch]
    key = recipe_key(arch)
    wanted = IMAGE_PLATFORMS[arch]
    previous = None
    try:
        image = client.images.get(tag)
        if (image.labels or {}).get(RECIPE_LABEL) == key and _image_platform(image)[0] == wanted[0]:
            return tag
        previous = image.id
    except docker.errors.ImageNotFound:
        pass
    tarball = build_rootfs_tarball(cache_dir, arch=arch)
    _import_rootfs(client, tarball, tag, arch)
    if _image_platform(client.images.get(tag)) != wanted:
        _set_image_platform(client, tag, *wanted)
    image = client.images.get(tag)
    if (image.labels or {}).get(RECIPE_LABEL) != key:
        raise EngineError(f"imported {tag} but it lacks label {RECIPE_LABEL}={key}")
    if _image_platform(image)[0] != wanted[0]:
        raise EngineError(
            f"{tag} says architecture {_image_platform(image)[0]!r}, expected {wanted[0]!r}"
        )
    if previous is not None and previous != image.id:
        _remove_image_quietly(client, previous)
    return tag


# --------------------------------------------------------------------------
# running commands in an unpacked root filesystem (chroot, no Docker)

# The environment of a command run by run_in_rootfs, before its own ``env``.
ROOTFS_ENV = {"PATH": IMAGE_PATH, "LANG": "C.UTF-8", "HOME": "/root"}
# Character devices made in the command's /dev (a tmpfs): name, major, minor.
DEV_NODES = (
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
)


def unpack_rootfs(dest: Path, arch: str = "amd64", cache_dir: Path | None = None) -> Path:
    """Extract the cached root filesystem tarball of ``arch`` into ``dest``; return it.

    ``dest`` is created and must be empty when it exists.  The tarball is made
    first when the cache does not have it (:func:`build_rootfs_tarball`).
    Owners and modes are kept, which needs root, as :func:`run_in_rootfs` does.
    Delete the tree with :func:`remove_tree`.
    """
    dest = Path(dest).resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise EngineError(f"{dest} exists and is not an empty directory")
    if os.geteuid() != 0:
        raise EngineError("unpacking a root filesystem with its owners, and chroot into it, need root")
    tarball = build_rootfs_tarball(cache_dir, arch=arch)
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        "tar",
        "--extract",
        "--gzip",
        f"--file={tarball}",
        f"--directory={dest}",
        "--numeric-owner",
        "--preserve-permissions",
    ]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EngineError(f"unpacking {tarball} into {dest} failed ({proc.returncode}):\n" + _tail(proc.stderr))
    if not (dest / "usr/bin" / f"python{PYTHON_VERSION}").exists():
        raise EngineError(f"{tarball} unpacked into {dest} has no /usr/bin/python{PYTHON_VERSION}")
    return dest


def _path_inside(root: Path, inner: str) -> Path:
    """``inner`` (absolute, inside the root filesystem) as a path on this machine.

    Refuses ``..`` and symlinks on the way: they would be followed here, where
    an absolute link points outside ``root``.
    """
    pure = PurePosixPath(inner)
    if not pure.is_absolute() or ".." in pure.parts or len(pure.parts) < 2:
        raise EngineError(f"bind target {inner!r} must be an absolute path below / without '..'")
    if pure.parts[1] in ("proc", "dev"):
        raise EngineError(f"bind target {inner!r}: /proc and /dev are mounted by run_in_rootfs itself")
    path = root
    for part in pure.parts[1:]:
        path = path / part
        if path.is_symlink():
            raise EngineError(
                f"bind target {inner!r} goes through the symlink /{path.relative_to(root)} of the "
                "root filesystem; name the real directory"
            )
    if path.exists() and not path.is_dir():
        raise EngineError(f"bind target {inner!r} exists in the root filesystem and is not a directory")
    return path


def _mount(args: list[str], target: Path, mounted: list[Path]) -> None:
    cmd = ["mount", *args, str(target)]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EngineError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    if not mounted or mounted[-1] != target:
        mounted.append(target)


def _unmount_all(mounted: list[Path]) -> None:
    """Unmount ``mounted`` (last first); lazily when busy.  Raises when one stays mounted."""
    for point in reversed(mounted):
        if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True)
    left = [str(p) for p in mounted if str(p) in _mounts_under(p)]
    if left:
        raise EngineError(f"still mounted after the command: {left}")


def _populate_dev(dev: Path) -> None:
    for name, major, minor in DEV_NODES:
        os.mknod(dev / name, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(dev / name, 0o666)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, dev / name)
    (dev / "shm").mkdir()
    os.chmod(dev / "shm", 0o1777)


def run_in_rootfs(
    root: Path,
    argv: list[str],
    binds: dict[Path | str, str] | None = None,
    env: dict[str, str] | None = None,
    cwd: str = "/",
    timeout: float | None = 600.0,
    check: bool = False,
) -> subprocess.CompletedProcess:
    """Run ``argv`` in the root filesystem ``root`` (see :func:`unpack_rootfs`) with chroot.

    ``binds`` maps directories on this machine to absolute paths inside the
    root; each is bind-mounted read-only for the command (missing mount points
    are made, and removed again).  /proc and a small /dev (null, zero, full,
    random, urandom, on a tmpfs) are mounted as well.  Everything is unmounted
    afterwards, also when the command fails or times out (then
    :class:`subprocess.TimeoutExpired` is raised, as by :func:`subprocess.run`).

    The command's environment is :data:`ROOTFS_ENV` updated with ``env``;
    nothing of the caller's leaks in.  It starts in ``cwd`` (inside the root).
    Output is captured as text.  ``check=True`` raises :class:`EngineError`
    with the output's end on a non-zero exit.  Needs root; an arm64 root needs
    :func:`ensure_arm64_emulation` first.  Calls on the same root must not
    overlap (each mounts over the same /proc and /dev).
    """
    root = Path(root).resolve()
    if os.geteuid() != 0:
        raise EngineError("run_in_rootfs needs root (chroot, mount)")
    if not (root / "usr/bin").is_dir() or not (root / "proc").is_dir() or not (root / "dev").is_dir():
        raise EngineError(f"{root} does not look like an unpacked root filesystem")
    chroot = _find_executable("chroot")
    if chroot is None:
        raise EngineError("chroot not found")
    plan = []
    for host, inner in (binds or {}).items():
        host = Path(host).resolve()
        if not host.is_dir():
            raise EngineError(f"bind source {host} is not a directory")
        plan.append((host, _path_inside(root, str(inner))))
    cmd = [chroot, str(root)]
    if cwd != "/":
        cmd += ["/usr/bin/env", "-C", cwd]
    cmd += [str(a) for a in argv]

    mounted: list[Path] = []
    made: list[Path] = []
    try:
        _mount(["-t", "proc", "-o", "nosuid,nodev,noexec", "proc"], root / "proc", mounted)
        _mount(["-t", "tmpfs", "-o", "nosuid,mode=0755,size=16m", "tmpfs"], root / "dev", mounted)
        _populate_dev(root / "dev")
        for host, target in plan:
            missing = [p for p in (target, *target.parents) if p != root and root in p.parents and not p.exists()]
            target.mkdir(parents=True, exist_ok=True)
            made += missing  # deepest first
            _mount(["--bind", str(host)], target, mounted)
            _mount(["-o", "remount,bind,ro"], target, mounted)
        proc = subprocess.run(
            cmd,
            env={**ROOTFS_ENV, **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
        )
    finally:
        try:
            _unmount_all(mounted)
        finally:
            for directory in made:
                with contextlib.suppress(OSError):
                    directory.rmdir()
    if check and proc.returncode != 0:
        raise EngineError(
            f"{' '.join(map(str, argv))} in {root} exited {proc.returncode}:\n"
            + _tail(proc.stdout + proc.stderr)
        )
    return proc


# --------------------------------------------------------------------------
# command line


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="engine.py", description="private Docker engine and Lambda stand-in image for tests"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_start = sub.add_parser("start", help="start a dockerd and leave it running")
    p_start.add_argument("--workdir", type=Path, required=True)
    p_start.add_argument("--timeout", type=float, default=60.0)
    p_image = sub.add_parser("image", help="make sure the image exists in $DOCKER_HOST's engine")
    p_image.add_argument(
        "--tag", default=None,
        help=f"default {DEFAULT_IMAGE} (amd64), {DEFAULT_ARM64_IMAGE} (arm64)",
    )
    p_image.add_argument(
        "--arch", default="amd64", choices=[*ARCHES, *ARCH_ALIASES],
        help="amd64 (default) or arm64 (emulated)",
    )
    p_image.add_argument("--cache-dir", type=Path, default=None)
    sub.add_parser(
        "emulation",
        help="make aarch64 executables run here (qemu-user-static, binfmt_misc entry)",
    )
    p_stop = sub.add_parser("stop", help="stop the dockerd started with start --workdir")
    p_stop.add_argument("--workdir", type=Path, required=True)
    p_stop.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)

    try:
        if args.command == "start":
            t0 = time.monotonic()
            engine = start_engine(args.workdir, timeout=args.timeout)
            print(f"DOCKER_HOST={engine.base_url}")
            print(
                f"# dockerd pid {engine.pid} ready in {time.monotonic() - t0:.1f}s, "
                f"log {engine.log_path}",
                file=sys.stderr,
            )
        elif args.command == "image":
            import docker

            if not os.environ.get("DOCKER_HOST"):
                print("DOCKER_HOST is not set (run `start` first)", file=sys.stderr)
                return 2
            client = docker.from_env(timeout=300)
            t0 = time.monotonic()
            tag = ensure_lambda_image(client, args.tag, args.cache_dir, arch=args.arch)
            image = client.images.get(tag)
            size = image.attrs.get("Size", 0)
            print(tag)
            print(
                f"# {image.attrs.get('Os')}/{image.attrs.get('Architecture')} ready in "
                f"{time.monotonic() - t0:.1f}s, {size / 1e6:.0f} MB",
                file=sys.stderr,
            )
        elif args.command == "emulation":
            t0 = time.monotonic()
            entry = ensure_arm64_emulation()
            print(entry.describe())
            if entry.installed:
                print(f"# installed {QEMU_PACKAGE}", file=sys.stderr)
            print(f"# aarch64 executables run (checked in {time.monotonic() - t0:.1f}s)", file=sys.stderr)
        elif args.command == "stop":
            workdir = args.workdir.resolve()
            try:
                engine = Engine.load(workdir)
            except FileNotFoundError:
                pid = _pid_from(workdir / PIDFILE)
                if pid is None:
                    print(f"# no running engine recorded in {workdir}", file=sys.stderr)
                    return 0
                engine = Engine(
                    base_url="", pid=pid, log_path=workdir / LOGFILE,
                    workdir=workdir, data_root=workdir / "data",
                )
            engine.stop(timeout=args.timeout)
            print(f"# stopped dockerd pid {engine.pid}", file=sys.stderr)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
