"""Symbol tables and debug sections removed from an ELF file, without touching what the loader reads.

The dynamic loader reads an ELF file only through its program headers (and
the ELF header): the ``PT_LOAD`` segments and what they cover, ``.dynsym`` and
``.dynstr`` among it. Sections without ``SHF_ALLOC`` (``.symtab``,
``.strtab``, ``.debug*``, ``.comment`` ...) are read by debuggers and linkers
only. :func:`strip_symbols` removes those when the file's layout allows it
safely, the way ``strip`` does for a file a linker wrote: every byte a program
header or an allocated section covers comes first and stays where it is; the
removable sections lie after all of it and are cut off; the non-allocated
sections that stay (notes and the like) follow,
then a fresh ``.shstrtab`` and section header table. Only the ELF header's
``e_shoff``, ``e_shnum`` and ``e_shstrndx`` change.

Any other layout is left alone: auditwheel's patchelf often appends segments
(or moves ``.dynstr``) after the non-allocated sections, and cutting those out
would move what the loader reads. So is a relocatable object, a file with
extended section numbering, or anything that does not parse. Every result is
parsed again with pyelftools and compared with the original (every program
header, every allocated section, every byte before the cut) before it is used.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Literal

from elftools.common.exceptions import ELFError
from elftools.construct import ConstructError
from elftools.construct.lib import Container
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

SHF_ALLOC = 0x2
SHF_INFO_LINK = 0x40
SHN_LORESERVE = 0xFF00
PN_XNUM = 0xFFFF
#: Non-allocated sections that only debuggers, profilers and linkers read.
REMOVABLE = frozenset({
    ".symtab", ".strtab", ".symtab_shndx", ".comment", ".gnu_debuglink", ".gnu_debugaltlink",
    ".gnu_debugdata", ".stab", ".stabstr",
})
REMOVABLE_PREFIXES = (".debug", ".zdebug", ".rela.debug", ".rel.debug")
#: The sections an ELF file may have that are no section at all in the file's bytes.
NO_BYTES = ("SHT_NOBITS", "SHT_NULL")
#: The ELF header's fields a removal changes.
SECTION_TABLE = ("e_shoff", "e_shnum", "e_shstrndx")

Outcome = Literal["stripped", "nothing", "layout", "not-elf"]


@dataclass(frozen=True)
class StripResult:
    """What :func:`strip_symbols` made of one file."""

    outcome: Outcome  # stripped; nothing to remove; layout not safe (left alone); not a shared object/executable
    data: bytes = b""  # the new file when stripped
    removed: int = 0  # bytes fewer than before


class UnsafeLayout(Exception):
    """The file's layout allows no removal that keeps what the loader reads where it is."""


def removable_name(name: str) -> bool:
    return name in REMOVABLE or name.startswith(REMOVABLE_PREFIXES)


def strip_symbols(data: bytes) -> StripResult:
    """``data`` (a whole file) less its symbol tables and debug sections, when that is safe."""
    if data[:4] != b"\x7fELF":
        return StripResult("not-elf")
    try:
        elf = ELFFile(io.BytesIO(data))
        if elf["e_type"] not in ("ET_DYN", "ET_EXEC"):
            return StripResult("not-elf")
        new = _rewrite(elf, data)
        if new is None:
            return StripResult("nothing")
        if len(new) >= len(data) or not same_for_the_loader(data, new):
            return StripResult("layout")
    except UnsafeLayout:
        return StripResult("layout")
    except (ELFError, ConstructError, ValueError, KeyError, IndexError, TypeError, OverflowError):
        return StripResult("layout")
    return StripResult("stripped", new, len(data) - len(new))


def _ranges_end(elf: ELFFile, data: bytes) -> int:
    """The end of every byte the loader may read: the ELF header, the program headers, every segment."""
    header = elf.header
    end = header["e_ehsize"] + 0
    if header["e_phnum"]:
        end = max(end, header["e_phoff"] + header["e_phnum"] * header["e_phentsize"])
    for segment in elf.iter_segments():
        if segment["p_filesz"]:
            end = max(end, segment["p_offset"] + segment["p_filesz"])
    if end > len(data):
        raise UnsafeLayout("a segment ends beyond the file")
    return end


def _has_bytes(header: Any) -> bool:
    return header["sh_type"] not in NO_BYTES and header["sh_size"] > 0


def _references(header: Any) -> list[int]:
    """The section indices a section header refers to (``sh_link``, and ``sh_info`` where it is one)."""
    out = [header["sh_link"]] if header["sh_link"] else []
    if header["sh_info"] and (header["sh_flags"] & SHF_INFO_LINK or header["sh_type"] in ("SHT_REL", "SHT_RELA")):
        out.append(header["sh_info"])
    return out


def _removed(headers: list[Any], names: list[str]) -> set[int]:
    """Indices of the sections to remove: non-allocated ones by name and relocations of those,
    none that a kept section refers to."""
    removed = {i for i, h in enumerate(headers) if i and not h["sh_flags"] & SHF_ALLOC and removable_name(names[i])}
    changed = True
    while changed:
        changed = False
        for i, header in enumerate(headers):
            # Relocations of a removed section go with it; a kept section keeps what it refers to.
            if (i not in removed and header["sh_type"] in ("SHT_REL", "SHT_RELA") and not header["sh_flags"] & SHF_ALLOC
                    and header["sh_info"] in removed):
                removed.add(i)
                changed = True
        for i, header in enumerate(headers):
            if i not in removed:
                for target in _references(header):
                    if target in removed:
                        removed.discard(target)
                        changed = True
    return removed


def _align(size: int, alignment: int) -> int:
    return size + (-size % alignment) if alignment > 1 else size


def _rewrite(elf: ELFFile, data: bytes) -> bytes | None:
    """The file without its removable sections, or None if it has none; UnsafeLayout if the layout forbids it."""
    header = elf.header
    count = header["e_shnum"]
    if header["e_shoff"] == 0 or count == 0:
        return None  # no section headers: nothing to remove
    if (header["e_shstrndx"] >= SHN_LORESERVE or count >= SHN_LORESERVE or header["e_phnum"] == PN_XNUM
            or header["e_shentsize"] != elf.structs.Elf_Shdr.sizeof()):
        raise UnsafeLayout("extended numbering or an unusual section header size")
    sections = [elf.get_section(i) for i in range(count)]
    headers = [section.header for section in sections]
    names = [section.name for section in sections]
    shstrndx = header["e_shstrndx"]
    removed = _removed(headers, names)
    if not any(_has_bytes(headers[i]) for i in removed):
        return None
    fixed_end = _ranges_end(elf, data)
    allocated = [i for i, h in enumerate(headers) if h["sh_flags"] & SHF_ALLOC]
    for i in allocated:
        if _has_bytes(headers[i]):
            fixed_end = max(fixed_end, headers[i]["sh_offset"] + headers[i]["sh_size"])
    if fixed_end > len(data) or header["e_shoff"] < fixed_end:
        raise UnsafeLayout("the section header table lies among what the loader reads")
    if any(i > min(removed) for i in allocated) or shstrndx in removed or not shstrndx:
        raise UnsafeLayout("an allocated section comes after a removable one")
    for i in removed:
        if _has_bytes(headers[i]) and (headers[i]["sh_offset"] < fixed_end
                                       or headers[i]["sh_offset"] + headers[i]["sh_size"] > len(data)):
            raise UnsafeLayout(f"{names[i]} lies among what the loader reads")
    kept = [i for i in range(count) if i not in removed]
    index = {old: new for new, old in enumerate(kept)}
    out = bytearray(data[:fixed_end])
    new_headers: dict[int, dict] = {}
    # Kept non-allocated sections past the cut follow it, in their order in the file.
    moved = sorted((i for i in kept if i != shstrndx and _has_bytes(headers[i])
                    and headers[i]["sh_offset"] + headers[i]["sh_size"] > fixed_end),
                   key=lambda i: (headers[i]["sh_offset"], i))
    for i in moved:
        start, size = headers[i]["sh_offset"], headers[i]["sh_size"]
        if start < fixed_end or start + size > len(data) or headers[i]["sh_flags"] & SHF_ALLOC:
            raise UnsafeLayout(f"{names[i]} straddles what the loader reads")
        out += bytes(_align(len(out), headers[i]["sh_addralign"]) - len(out))
        new_headers[i] = {"sh_offset": len(out)}
        out += data[start:start + size]
    names_table, name_offsets = _string_table([names[i] for i in kept])
    new_headers[shstrndx] = {"sh_offset": len(out), "sh_size": len(names_table)}
    out += names_table
    out += bytes(_align(len(out), 8 if elf.elfclass == 64 else 4) - len(out))
    table_offset = len(out)
    for i in kept:
        row = dict(headers[i])
        row.update(new_headers.get(i, {}))
        row["sh_name"] = name_offsets[names[i]]
        row["sh_link"] = index[row["sh_link"]] if row["sh_link"] else 0
        if headers[i]["sh_info"] in index and headers[i]["sh_info"] in _references(headers[i]):
            row["sh_info"] = index[headers[i]["sh_info"]]
        out += elf.structs.Elf_Shdr.build(Container(**row))
    new_header = dict(header)
    new_header.update(e_shoff=table_offset, e_shnum=len(kept), e_shstrndx=index[shstrndx])
    ehdr = elf.structs.Elf_Ehdr.build(Container(**new_header))
    out[:len(ehdr)] = ehdr
    return bytes(out)


def _string_table(names: list[str]) -> tuple[bytes, dict[str, int]]:
    """A string table holding ``names`` once each (the empty name at 0), and where each one starts."""
    table, offsets = bytearray(b"\0"), {"": 0}
    for name in names:
        if name not in offsets:
            offsets[name] = len(table)
            table += name.encode("utf-8", "surrogateescape") + b"\0"
    return bytes(table), offsets


def _fields(header: Any, *leave_out: str) -> dict[str, Any]:
    return {key: value for key, value in header.items() if key not in leave_out}


def same_for_the_loader(old: bytes, new: bytes) -> bool:
    """Whether ``new`` parses and keeps what the loader reads of ``old``, and what else it keeps, unchanged.

    The ELF header less ``e_shoff``/``e_shnum``/``e_shstrndx``, every program
    header, every byte the segments cover past the ELF header, every allocated
    section (same index, header and bytes), the dynamic tags; and every section
    left is one of ``old``'s, in ``old``'s order, with the same bytes.
    """
    try:
        before, after = ELFFile(io.BytesIO(old)), ELFFile(io.BytesIO(new))
        if _fields(before.header, *SECTION_TABLE) != _fields(after.header, *SECTION_TABLE):
            return False
        segments = [segment.header for segment in before.iter_segments()]
        if segments != [segment.header for segment in after.iter_segments()]:
            return False
        # The first segment maps the ELF header too: beyond it, every byte a segment covers is the same.
        header_size = before["e_ehsize"]
        loaded_end = max((h["p_offset"] + h["p_filesz"] for h in segments if h["p_filesz"]), default=0)
        if loaded_end > len(new) or old[header_size:loaded_end] != new[header_size:loaded_end]:
            return False
        olds = list(before.iter_sections())
        for i, section in enumerate(olds):
            if section["sh_flags"] & SHF_ALLOC:
                other = after.get_section(i)
                if other.name != section.name or _fields(other.header, "sh_name") != _fields(section.header, "sh_name"):
                    return False
                if isinstance(other, DynamicSection):
                    list(other.iter_tags())
        position = 0
        names_index = after["e_shstrndx"]
        for i, section in enumerate(after.iter_sections()):
            while position < len(olds) and not _same_section(olds[position], section, i == names_index):
                if olds[position]["sh_flags"] & SHF_ALLOC:
                    return False  # an allocated section went missing
                position += 1
            if position == len(olds):
                return False
            position += 1
        return True
    except (ELFError, ConstructError, ValueError, KeyError, IndexError, TypeError, OverflowError):
        return False


def _same_section(old: Any, new: Any, names_table: bool) -> bool:
    """Whether ``new`` is ``old`` (perhaps moved, its links renumbered); the section names table is rewritten."""
    if old.name != new.name or old["sh_type"] != new["sh_type"] or old["sh_flags"] != new["sh_flags"]:
        return False
    if names_table or old["sh_type"] in NO_BYTES:
        return True
    return bool(old["sh_size"] == new["sh_size"] and old.data() == new.data())
