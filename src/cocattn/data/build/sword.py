"""Reader for SWORD compressed modules (zText Bibles, zCom commentaries), written from the
format: the block index (``.bzs``/``.czs``) is a list of 12-byte little-endian entries
``(offset, compressed size, uncompressed size)`` into the data file (``.bzz``/``.czz``); each
block inflates with zlib to OSIS XML. :func:`osis_to_text` turns that XML into plain text.
"""

from __future__ import annotations

import html
import re
import struct
import zlib

_ENTRY = struct.Struct("<III")


def sword_blocks(index: bytes, data: bytes, where: str = "SWORD module") -> list[str]:
    """The decompressed OSIS text of every block of a zText/zCom module, in order.

    Empty blocks (size 0) are returned as ``""``; a malformed index or a corrupt block raises a
    ValueError naming ``where``.
    """
    if len(index) % _ENTRY.size:
        raise ValueError(f"{where}: block index of {len(index)} bytes is not a multiple of 12 (corrupt?)")
    blocks = []
    for k in range(len(index) // _ENTRY.size):
        offset, csize, usize = _ENTRY.unpack_from(index, k * _ENTRY.size)
        if csize == 0:
            blocks.append("")
            continue
        if offset + csize > len(data):
            raise ValueError(
                f"{where}: block {k} ends at byte {offset + csize}, past the data file ({len(data)} bytes)"
            )
        try:
            raw = zlib.decompress(data[offset : offset + csize])
        except zlib.error as err:
            raise ValueError(f"{where}: block {k} does not inflate: {err}") from None
        if len(raw) != usize:
            raise ValueError(f"{where}: block {k} inflated to {len(raw)} bytes, index says {usize}")
        blocks.append(raw.decode("utf-8", errors="replace"))
    return blocks


_NOTE = re.compile(r"<note\b[^>]*?(?:/>|>.*?</note>)", re.S)
# Tags that end a paragraph or a line: end-of-paragraph milestones, line breaks, titles, list items.
_BREAK = re.compile(r"<(?:lb\b[^>]*|/title|/p|/l|/item|/head|div\b[^>]*\beID=[^>]*|p\b[^>]*/|/div)>")
_TITLE_START = re.compile(r"<title\b[^>]*>")
_TAG = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANKS = re.compile(r"\n\s*\n\s*(?:\n\s*)+")


def osis_to_text(osis: str) -> str:
    """Plain text of an OSIS fragment: notes (Strong's numbers, cross references, footnotes)
    dropped, titles and paragraph ends become line breaks, other tags stripped, entities
    unescaped, spaces collapsed."""
    text = _NOTE.sub("", osis)
    text = _TITLE_START.sub("\n\n", text)
    text = _BREAK.sub("\n", text)
    text = _TAG.sub("", text)
    text = html.unescape(text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    text = "\n".join(lines)
    text = _BLANKS.sub("\n\n", text)
    return text.strip()


_BOOK = re.compile(r'osisID="([^".]+)"[^>]*type="book"|type="book"[^>]*osisID="([^".]+)"')
_CHAPTER = re.compile(r'<chapter\b[^>]*osisID="([^"]+)"')


def block_label(osis: str, chapter_blocks: bool) -> str | None:
    """The OSIS id a block starts with: the first chapter (``Ps.23``) for chapter-blocked
    modules, else the first book (``Gen``); None when the block has neither."""
    if chapter_blocks:
        m = _CHAPTER.search(osis)
        if m:
            return m.group(1)
    m = _BOOK.search(osis)
    return (m.group(1) or m.group(2)) if m else None
