"""Zips written byte by byte, so a test can make one lie: sizes, CRC, flags, methods, modes.

zipfile refuses to write most of these, so :func:`raw_zip` writes the local
headers, the data and the central directory itself (the layout of PKWARE's
APPNOTE, section 4.3).
"""

from __future__ import annotations

import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

STORED = 0
DEFLATED = 8


@dataclass(frozen=True)
class Member:
    name: str
    data: bytes  # as stored in the zip (already compressed when method is DEFLATED)
    size: int  # the declared uncompressed size
    crc: int
    method: int = STORED
    flags: int = 0
    mode: int = stat.S_IFREG | 0o644  # a symlink: stat.S_IFLNK | 0o777


def stored(name: str, content: bytes, **changes: int) -> Member:
    """A stored member of ``content``; ``changes`` override what the headers say (size, crc, flags, method)."""
    fields = {"size": len(content), "crc": zlib.crc32(content), **changes}
    return Member(name, content, **fields)


def deflated(name: str, content: bytes, **changes: int) -> Member:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = squeeze.compress(content) + squeeze.flush()
    fields = {"size": len(content), "crc": zlib.crc32(content), "method": DEFLATED, **changes}
    return Member(name, data, **fields)


def deflated_zeros(name: str, size: int, **changes: int) -> Member:
    """``size`` zero bytes deflated, without ever holding them all in memory."""
    squeeze, crc, chunk, parts = zlib.compressobj(9, zlib.DEFLATED, -15), 0, bytes(2**24), []
    left = size
    while left:
        piece = chunk[:min(left, len(chunk))]
        parts.append(squeeze.compress(piece))
        crc = zlib.crc32(piece, crc)
        left -= len(piece)
    parts.append(squeeze.flush())
    fields = {"size": size, "crc": crc, "method": DEFLATED, **changes}
    return Member(name, b"".join(parts), **fields)


def symlink(name: str, target: str) -> Member:
    return stored(name, target.encode(), mode=stat.S_IFLNK | 0o777)


def raw_zip(path: Path, members: list[Member]) -> Path:
    """Write ``members`` as a zip, each header saying exactly what its Member says."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body, directory = bytearray(), bytearray()
    for member in members:
        name = member.name.encode()
        offset = len(body)
        body += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, member.flags, member.method, 0, 0x21,
                            member.crc, len(member.data), member.size, len(name), 0)
        body += name + member.data
        directory += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", (3 << 8) | 20, 20, member.flags, member.method,
                                 0, 0x21, member.crc, len(member.data), member.size, len(name), 0, 0, 0, 0,
                                 member.mode << 16, offset)
        directory += name
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), len(body), 0)
    path.write_bytes(bytes(body + directory + end))
    return path
