"""Reader for R's serialisation format (XDR, versions 2 and 3) and lazy-load databases
(``Rdata.rdb``), enough for the data objects R packages ship: vectors, lists, pairlists with
attributes (so data frames and factors), symbols and references. Written from the format; no R
needed and nothing executed.

A lazy-load database is a sequence of objects, each a 4-byte big-endian uncompressed length
followed by a zlib stream of the serialised object.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

NA_STRING = None  # R's NA_character_


class RObject:
    """A non-vector R object: its type code, value and attributes."""

    def __init__(self, sexptype: int, value: Any, attributes: dict[str, Any] | None = None):
        self.sexptype = sexptype
        self.value = value
        self.attributes = attributes or {}

    def __repr__(self) -> str:
        return f"RObject(type={self.sexptype}, value={self.value!r:.60})"


class RVector(list):
    """An R vector (a Python list) carrying its R type code and attributes."""

    sexptype: int = 0
    attributes: dict[str, Any]


_SPECIAL = {
    254: None,
    242: "<emptyenv>",
    241: "<baseenv>",
    253: "<globalenv>",
    252: "<unbound>",
    251: "<missing>",
    247: "<basenamespace>",
}


class _Reader:
    def __init__(self, data: bytes, where: str):
        self.data = data
        self.pos = 0
        self.where = where
        self.refs: list[Any] = []

    def fail(self, what: str) -> ValueError:
        return ValueError(f"{self.where}: {what} at byte {self.pos} (not an R XDR serialisation, or corrupt)")

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise self.fail(f"unexpected end of data reading {n} bytes")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def int32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def length(self) -> int:
        n = self.int32()
        if n == -1:  # long vector: two ints
            hi, lo = self.int32(), self.int32()
            n = (hi << 32) + lo
        if n < 0:
            raise self.fail(f"negative length {n}")
        return n

    def header(self) -> None:
        if self.take(2) != b"X\n":
            raise self.fail("missing the 'X\\n' XDR header (ASCII/binary formats are not supported)")
        version = self.int32()
        self.int32()  # writer R version
        self.int32()  # minimal reader version
        if version == 3:
            self.take(self.int32())  # native encoding name
        elif version != 2:
            raise self.fail(f"serialisation version {version} (expected 2 or 3)")

    def item(self) -> Any:
        flags = self.int32()
        sexptype = flags & 0xFF
        has_attr = bool(flags & (1 << 9))
        has_tag = bool(flags & (1 << 10))
        if sexptype in _SPECIAL:
            return _SPECIAL[sexptype]
        if sexptype == 255:  # REFSXP
            index = flags >> 8
            if index == 0:
                index = self.int32()
            if not 1 <= index <= len(self.refs):
                raise self.fail(f"reference {index} out of range")
            return self.refs[index - 1]
        if sexptype == 1:  # SYMSXP
            name = self.item()
            self.refs.append(name)
            return name
        if sexptype == 9:  # CHARSXP
            n = self.int32()
            return NA_STRING if n == -1 else self.take(n).decode("utf-8", errors="replace")
        if sexptype in (2, 6, 17, 5):  # LISTSXP, LANGSXP, ATTRLISTSXP, PROMSXP: pairlists
            out: dict[Any, Any] = {}
            node_flags, node_attr, node_tag = flags, has_attr, has_tag
            i = 0
            while True:
                attrs = self.item() if node_attr else None
                tag = self.item() if node_tag else i
                out[tag] = self.item()
                i += 1
                node_flags = self.int32()
                node_type = node_flags & 0xFF
                if node_type == 254:
                    break
                if node_type not in (2, 6, 17, 5):
                    # The tail of the list is another object: read it as the last element.
                    self.pos -= 4
                    out[i] = self.item()
                    break
                node_attr = bool(node_flags & (1 << 9))
                node_tag = bool(node_flags & (1 << 10))
                del attrs
            return RObject(sexptype, out)
        if sexptype in (10, 13):  # LGLSXP, INTSXP
            n = self.length()
            vec = list(struct.unpack(f">{n}i", self.take(4 * n)))
        elif sexptype == 14:  # REALSXP
            n = self.length()
            vec = list(struct.unpack(f">{n}d", self.take(8 * n)))
        elif sexptype == 15:  # CPLXSXP
            n = self.length()
            vals = struct.unpack(f">{2 * n}d", self.take(16 * n))
            vec = [complex(vals[2 * i], vals[2 * i + 1]) for i in range(n)]
        elif sexptype == 24:  # RAWSXP
            vec = list(self.take(self.length()))
        elif sexptype == 16:  # STRSXP
            n = self.length()
            vec = [self.item() for _ in range(n)]
        elif sexptype in (19, 20):  # VECSXP, EXPRSXP
            n = self.length()
            vec = [self.item() for _ in range(n)]
        else:
            raise self.fail(f"unsupported R object type {sexptype}")
        out_vec = RVector(vec)
        out_vec.sexptype = sexptype
        out_vec.attributes = {}
        if has_attr:
            attrs = self.item()
            if isinstance(attrs, RObject):
                out_vec.attributes = {str(k): v for k, v in attrs.value.items()}
        return out_vec


def unserialize(data: bytes, where: str = "R data") -> Any:
    """Decode one R XDR serialisation (``X\\n`` header) into Python values.

    Character vectors become :class:`RVector` lists of ``str`` (``None`` for NA); numeric and
    logical vectors lists of numbers; lists :class:`RVector` of items; attributes are kept on
    ``.attributes`` (e.g. ``names``).
    """
    reader = _Reader(data, where)
    reader.header()
    return reader.item()


def read_rdb(data: bytes, where: str = "Rdata.rdb") -> list[bytes]:
    """The serialised objects of an R lazy-load database, in file order, decompressed."""
    objects = []
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise ValueError(f"{where}: truncated object header at byte {pos}")
        (expected,) = struct.unpack(">I", data[pos : pos + 4])
        inflater = zlib.decompressobj()
        try:
            raw = inflater.decompress(data[pos + 4 :])
        except zlib.error as err:
            raise ValueError(f"{where}: object at byte {pos} does not inflate: {err}") from None
        if not inflater.eof or len(raw) != expected:
            raise ValueError(
                f"{where}: object at byte {pos} is truncated or corrupt "
                f"({len(raw)} bytes inflated, header says {expected})"
            )
        objects.append(raw)
        pos = len(data) - len(inflater.unused_data)
    return objects
