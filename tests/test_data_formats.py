"""Parsers of the registry formats, on fixtures written in the real formats (SWORD zText/zCom,
R XDR serialisation and lazy-load databases, tar/zip archives)."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
import zlib

import pytest

from cocattn.data.read.document import normalize_text
from cocattn.data.build.fetch import read_archive
from cocattn.data.build.rdata import read_rdb, unserialize
from cocattn.data.build.sword import block_label, osis_to_text, sword_blocks


def sword_module(blocks: list[str]) -> tuple[bytes, bytes]:
    """A SWORD block index (12-byte LE entries) and data file holding ``blocks``, zlib-compressed."""
    index, data = b"", b""
    for block in blocks:
        raw = block.encode("utf-8")
        packed = zlib.compress(raw) if raw else b""
        index += struct.pack("<III", len(data), len(packed), len(raw))
        data += packed
    return index, data


PSALM = (
    '<chapter n="23" osisID="Ps.23" sID="Ps.23"/><title type="x-s">Psalm 23 OVERVIEW</title> '
    '<div sID="g1" type="x-p"/>The <w lemma="strong:H3068">LORD</w> is my shepherd'
    '<note placement="foot"><reference>23.1</reference>Heb. feeds me</note>; I shall not want.'
    '<div eID="g1" type="x-p"/><div sID="g2" type="x-p"/>He leadeth me &amp; restoreth my soul.<div eID="g2" type="x-p"/>'
)


def test_sword_blocks_and_osis_text_round_trip():
    index, data = sword_module(['<milestone type="x-importer"/>', "", PSALM])
    blocks = sword_blocks(index, data)
    assert blocks[1] == "" and blocks[2] == PSALM
    assert block_label(blocks[2], chapter_blocks=True) == "Ps.23"
    text = osis_to_text(blocks[2])
    assert text == ("Psalm 23 OVERVIEW\nThe LORD is my shepherd; I shall not want.\nHe leadeth me & restoreth my soul.")
    book = '<div canonical="true" osisID="Gen" sID="gen2" type="book"/> In the beginning'
    assert block_label(book, chapter_blocks=False) == "Gen"


def test_sword_corrupt_module_errors_name_the_module():
    index, data = sword_module([PSALM])
    with pytest.raises(ValueError, match="tdavid.*multiple of 12"):
        sword_blocks(index[:-1], data, where="tdavid")
    with pytest.raises(ValueError, match="tdavid.*block 0 ends"):
        sword_blocks(index, data[:-5], where="tdavid")
    bad = bytearray(data)
    bad[2:6] = b"\xff\xff\xff\xff"
    with pytest.raises(ValueError, match="tdavid.*block 0"):
        sword_blocks(index, bytes(bad), where="tdavid")


def xdr_int(n: int) -> bytes:
    return struct.pack(">i", n)


def xdr_charsxp(s: str | None) -> bytes:
    if s is None:
        return xdr_int(9) + xdr_int(-1)
    raw = s.encode("utf-8")
    return xdr_int(0x40009) + xdr_int(len(raw)) + raw  # UTF-8 flag in the levels


def xdr_header(version: int = 3) -> bytes:
    out = b"X\n" + xdr_int(version) + xdr_int(0x040201) + xdr_int(0x030500)
    if version == 3:
        out += xdr_int(5) + b"UTF-8"
    return out


def xdr_character_vector(items: list[str | None], names: list[str] | None = None) -> bytes:
    flags = 16 | ((1 << 9) if names else 0)
    out = xdr_int(flags) + xdr_int(len(items)) + b"".join(xdr_charsxp(s) for s in items)
    if names:  # pairlist: names = STRSXP
        out += xdr_int(2 | (1 << 10)) + xdr_int(1) + xdr_charsxp("names")
        out += xdr_int(16) + xdr_int(len(names)) + b"".join(xdr_charsxp(s) for s in names)
        out += xdr_int(254)
    return out


def test_r_xdr_character_vector_with_unicode_na_and_names():
    lines = ["PRIDE AND PREJUDICE", "", "It is a truth universally acknowledged…", None]
    for version in (2, 3):
        value = unserialize(xdr_header(version) + xdr_character_vector(lines))
        assert list(value) == lines and value.sexptype == 16
    named = unserialize(xdr_header() + xdr_character_vector(["a", "b"], names=["x", "y"]))
    assert list(named) == ["a", "b"] and list(named.attributes["names"]) == ["x", "y"]


def test_r_lazy_load_database_of_several_objects():
    novels = [["EMMA", "", "Emma Woodhouse, handsome, clever, and rich"], ["PERSUASION", "Sir Walter Elliot"]]
    rdb = b""
    for lines in novels:
        raw = xdr_header() + xdr_character_vector(lines)
        rdb += struct.pack(">I", len(raw)) + zlib.compress(raw)
    objects = read_rdb(rdb)
    assert [list(unserialize(o)) for o in objects] == novels
    with pytest.raises(ValueError, match="Rdata.rdb.*truncated"):
        read_rdb(rdb[:-10])
    with pytest.raises(ValueError, match="XDR header"):
        unserialize(b"A\n" + xdr_character_vector(["x"]))
    with pytest.raises(ValueError, match="unexpected end"):
        unserialize((xdr_header() + xdr_character_vector(["abcdef"]))[:-3])


def test_archive_reader_rejects_path_traversal(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("pkg/../../etc/passwd")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(ValueError, match="unsafe member path.*evil.tar.gz"):
        read_archive(evil)
    absolute = tmp_path / "abs.whl"
    with zipfile.ZipFile(absolute, "w") as zf:
        zf.writestr("/tmp/x.txt", "x")
    with pytest.raises(ValueError, match="unsafe member path"):
        read_archive(absolute)
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("pkg/data/a.txt", "hello")
        zf.writestr("pkg/b.txt", "skip")
    assert read_archive(good, lambda p: "/data/" in p) == {"pkg/data/a.txt": b"hello"}
    with pytest.raises(ValueError, match="archive="):
        read_archive(tmp_path / "x.rar")


def test_normalize_text_line_ends_and_blank_runs():
    assert normalize_text("A  \r\nB\r\n\r\n\r\n\r\n\r\nC \n") == "A\nB\n\n\nC"
