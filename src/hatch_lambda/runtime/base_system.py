"""What the Lambda Python runtimes' base system provides to native code, as data.

The audit (:mod:`hatch_lambda.assemble.audit`) accepts a ``DT_NEEDED`` library when it is in the
artifact or named here, and checks ``GLIBCXX_``/``CXXABI_`` symbol versions
against the runtime's ``libstdc++.so.6``.

Sources:

- ``BASE_LIBRARIES``: the ``lib_whitelist`` of pypa/auditwheel's
  ``src/auditwheel/policy/manylinux-policy.json`` (the libraries every
  manylinux wheel may assume on the system: glibc's own libraries, libgcc_s,
  libstdc++, libz, libexpat), plus the dynamic loaders glibc installs. The
  policy's desktop libraries (libX11, libXext, libXrender, libICE, libSM,
  libGL, glib/gobject/gthread) are left out: the Lambda base images carry no
  graphical stack, and a wheel that needs them (e.g. ``opencv-python`` instead
  of ``opencv-python-headless``) fails to import there.
- ``LIBSTDCXX``: the runtime's libstdc++ is the one of its Amazon Linux
  release's GCC: GCC 7.3.1 on Amazon Linux 2 (python 3.10/3.11), GCC 11.4.1 on
  Amazon Linux 2023 (python 3.12+). The highest symbol versions each GCC's
  libstdc++ defines are from the table in GCC's "ABI Policy and Guidelines"
  (libstdc++ manual, section "Symbol versioning"): GCC 7.2+ ``GLIBCXX_3.4.24``
  and ``CXXABI_1.3.11``; GCC 11.1+ ``GLIBCXX_3.4.29`` and ``CXXABI_1.3.13``.
"""

from __future__ import annotations

BASE_LIBRARIES: frozenset[str] = frozenset(
    {
        # glibc
        "libc.so.6",
        "libm.so.6",
        "libmvec.so.1",
        "libdl.so.2",
        "librt.so.1",
        "libpthread.so.0",
        "libutil.so.1",
        "libresolv.so.2",
        "libnsl.so.1",
        "libanl.so.1",
        "ld-linux-x86-64.so.2",
        "ld-linux-aarch64.so.1",
        # GCC runtime
        "libgcc_s.so.1",
        "libstdc++.so.6",
        "libatomic.so.1",
        # other system libraries the manylinux policy allows
        "libz.so.1",
        "libexpat.so.1",
    }
)

#: OS release -> highest (GLIBCXX, CXXABI) symbol versions its libstdc++.so.6 defines.
LIBSTDCXX: dict[str, dict[str, tuple[int, ...]]] = {
    "Amazon Linux 2": {"GLIBCXX": (3, 4, 24), "CXXABI": (1, 3, 11)},
    "Amazon Linux 2023": {"GLIBCXX": (3, 4, 29), "CXXABI": (1, 3, 13)},
}
