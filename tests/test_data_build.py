"""Building data directories from local sources: reproducible, cached, checked on load, with
clear errors; the tokenizer is deterministic; the CLI calls the same functions."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cocattn.cli import main
from cocattn.data.build import build_dataset
from cocattn.data import (
    EOT,
    dataset_info,
    load_eval_documents,
    load_manifest,
    load_tokenizer,
    load_tokens,
    train_tokenizer,
)

WORDS = (
    "the of and to a in that is was he for it with as his on be at by had not are but from or have an they "
    "which one you were her all she there would their we him been has when who will more no if out so said "
    "what up its about into than them can only other new some could time these two may then do first any "
    "my now such like our over man me even most made after also did many before must through back years "
    "where much your way well down should because each just those people how too little state good very "
    "make world still own see men work long get here between both life being under never day same another "
    "know while last might us great old year off come since against go came right used take three"
).split()


def prose(rng: random.Random, chars: int) -> str:
    """Deterministic English-like paragraphs of about ``chars`` characters."""
    out, n = [], 0
    while n < chars:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 18)))
        sentence = sentence[0].upper() + sentence[1:] + rng.choice(".,;!?") + (" " if rng.random() < 0.8 else "\n\n")
        out.append(sentence)
        n += len(sentence)
    return "".join(out).strip()


def make_corpus(directory, long_docs: int = 4, short_docs: int = 10) -> None:
    rng = random.Random(1234)
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(long_docs):
        (directory / f"long_{i:02d}.txt").write_text(prose(rng, 12_000), encoding="utf-8")
    for i in range(short_docs):
        (directory / f"short_{i:02d}.txt").write_text(prose(rng, 2_500), encoding="utf-8")


SMALL = dict(preset="custom", vocab_size=400, min_eval_chars=10_000, min_eval_tokens=1_000, progress=False)
DATA_FILES = ("manifest.json", "tokenizer.json", "train.bin", "val.bin", "eval.jsonl")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_corpus(root / "corpus")
    result = build_dataset(out_dir=root / "out", sources=[f"text:{root / 'corpus'}"], **SMALL)
    return root, result


def test_build_splits_manifest_and_shards(built):
    root, result = built
    manifest = load_manifest(result.path)
    docs = manifest["documents"]
    splits = {d["id"]: d["split"] for d in docs}
    assert sorted(splits.values()).count("eval") == 2  # every other long document
    assert sum(1 for s in splits.values() if s == "val") == 1
    assert all(splits[f"text/long_{i:02d}"] == "eval" for i in (0, 2))
    for d in docs:  # every document recorded with its length and checksum
        assert set(d) >= {"id", "source", "title", "split", "chars", "tokens", "sha256"} and len(d["sha256"]) == 64
    train = load_tokens(result.path, "train")
    tokenizer = load_tokenizer(result.path)
    eot = tokenizer.token_to_id(EOT)
    assert train.dtype == np.uint16 and int(train.max()) < tokenizer.get_vocab_size()
    train_docs = [d for d in docs if d["split"] == "train"]
    assert len(train) == sum(d["tokens"] + 1 for d in train_docs)  # each document + end-of-text
    assert int((train == eot).sum()) == len(train_docs) and train[-1] == eot
    # The shard decodes back to the training texts, in manifest order.
    first = train_docs[0]
    text = (root / "corpus" / f"{first['id'].split('/')[1]}.txt").read_text()
    assert tokenizer.decode(train[: first["tokens"]].tolist()) == text
    evals = load_eval_documents(result.path)
    assert [d.id for d in evals] == [d["id"] for d in docs if d["split"] == "eval"]
    assert all(d.meta["tokens"] >= 1_000 and d.sha256 == d.meta["sha256"] for d in evals)
    # No held-out text reached the training shard or the tokenizer's training input.
    assert not {d.id for d in evals} & {d["id"] for d in train_docs}
    assert manifest["tokenizer"]["trained_on"] == "train"
    info = dataset_info(result.path)
    assert info["splits"]["eval"]["documents"] == 2 and info["eval_lengths"][">=8192"] == 0


def test_two_builds_are_byte_identical_and_reruns_are_no_ops(built, tmp_path):
    root, first = built
    again = build_dataset(out_dir=tmp_path / "again", sources=[f"text:{root / 'corpus'}"], **SMALL)
    assert again.rebuilt
    for name in DATA_FILES:
        assert (first.path / name).read_bytes() == (again.path / name).read_bytes(), name
    stamp = os.stat(again.path / "train.bin").st_mtime_ns
    rerun = build_dataset(out_dir=tmp_path / "again", sources=[f"text:{root / 'corpus'}"], **SMALL)
    assert not rerun.rebuilt and os.stat(again.path / "train.bin").st_mtime_ns == stamp
    other = build_dataset(
        out_dir=tmp_path / "again", sources=[f"text:{root / 'corpus'}"], **{**SMALL, "vocab_size": 300}
    )  # new settings: rebuilt
    assert other.rebuilt and load_tokenizer(other.path).get_vocab_size() == 300


def test_changed_input_file_triggers_a_rebuild(tmp_path):
    make_corpus(tmp_path / "c", long_docs=2, short_docs=10)
    spec = [f"text:{tmp_path / 'c'}"]
    build_dataset(out_dir=tmp_path / "out", sources=spec, **SMALL)
    with open(tmp_path / "c" / "short_03.txt", "a") as handle:
        handle.write(" And one more sentence.")
    assert build_dataset(out_dir=tmp_path / "out", sources=spec, **SMALL).rebuilt


def test_corrupt_or_truncated_shard_is_detected(built, tmp_path):
    root, _ = built
    out = build_dataset(out_dir=tmp_path / "d", sources=[f"text:{root / 'corpus'}"], **SMALL).path
    load_tokens(out, "train")  # verified once, marker written
    data = bytearray((out / "train.bin").read_bytes())
    data[100] ^= 0xFF  # same size, different content (and a new modification time)
    (out / "train.bin").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"train\.bin is corrupt: sha256"):
        load_tokens(out, "train")
    load_tokens(out, "train", verify="size")  # size-only check cannot see it, by design
    (out / "val.bin").write_bytes((out / "val.bin").read_bytes()[:-2])
    with pytest.raises(ValueError, match=r"val\.bin has \d+ bytes but the manifest says"):
        load_tokens(out, "val", verify="size")
    (out / "eval.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=r"eval\.jsonl is missing"):
        load_eval_documents(out)


def test_bad_input_errors_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match=r"preset='pypo'.*'pypi'"):
        build_dataset(preset="pypo", out_dir=tmp_path / "x")
    with pytest.raises(ValueError, match=r"source='shakspeare'.*did you mean 'shakespeare'"):
        build_dataset(preset="custom", out_dir=tmp_path / "x", sources=["shakspeare"])
    with pytest.raises(ValueError, match=r"sources=None.*at least one source"):
        build_dataset(preset="custom", out_dir=tmp_path / "x")
    with pytest.raises(ValueError, match=r"vocab_size=100"):
        train_tokenizer(["abc"], vocab_size=100)
    with pytest.raises(ValueError, match=r"vocab_size=10 .*258"):  # checked before any download
        build_dataset(preset="pypi", out_dir=tmp_path / "x", vocab_size=10, cache_dir=tmp_path / "no_cache")
    assert not (tmp_path / "no_cache").exists()
    with pytest.raises(FileNotFoundError, match="data directory .*missing.* does not exist"):
        load_tokens(tmp_path / "missing", "train")
    with pytest.raises(ValueError, match=r"split='test'.*'train', 'val'"):
        load_tokens(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="text:.*nope"):
        build_dataset(preset="custom", out_dir=tmp_path / "x", sources=[f"text:{tmp_path / 'nope'}"], progress=False)
    (tmp_path / "notdata").mkdir()
    (tmp_path / "notdata" / "precious.txt").write_text("keep me")
    make_corpus(tmp_path / "c", long_docs=1, short_docs=10)
    with pytest.raises(FileExistsError, match="not a cocattn data directory"):
        build_dataset(out_dir=tmp_path / "notdata", sources=[f"text:{tmp_path / 'c'}"], **SMALL)
    assert (tmp_path / "notdata" / "precious.txt").read_text() == "keep me"


def test_hf_source_without_datasets_says_how_to_install(tmp_path):
    pytest.importorskip("tokenizers")
    try:
        import datasets  # noqa: F401

        pytest.skip("datasets is installed; this checks the message when it is not")
    except ImportError:
        pass
    with pytest.raises(ValueError, match="pip install datasets"):
        build_dataset(preset="custom", out_dir=tmp_path / "x", sources=["hf:pg19:test"], progress=False)


def test_jsonl_source_honours_explicit_splits(tmp_path):
    rng = random.Random(7)
    rows = [{"id": f"doc{i}", "title": f"Doc {i}", "text": prose(rng, 3_000)} for i in range(12)]
    rows[3]["split"] = "eval"
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = build_dataset(out_dir=tmp_path / "out", sources=[f"jsonl:{path}"], **SMALL).path
    splits = {d["id"]: d["split"] for d in load_manifest(out)["documents"]}
    assert splits["jsonl/doc3"] == "eval" and list(splits.values()).count("eval") == 1
    path.write_text('{"text": "ok"}\n{"title": "no text"}\n')
    with pytest.raises(ValueError, match=r"docs\.jsonl: line 2 has no string field 'text'"):
        build_dataset(out_dir=tmp_path / "out2", sources=[f"jsonl:{path}"], **SMALL)


def test_tokenizer_training_is_identical_across_processes(tmp_path):
    make_corpus(tmp_path / "c", long_docs=2, short_docs=4)
    script = textwrap.dedent(f"""
        import pathlib, sys
        from cocattn.data.read.tokenizer import train_tokenizer
        files = sorted(pathlib.Path({str(tmp_path / "c")!r}).glob('*.txt'))
        sys.stdout.write(train_tokenizer((f.read_text() for f in files), vocab_size=600).to_str())
    """)
    outs = [
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "RAYON_NUM_THREADS": threads},
        ).stdout
        for threads in ("1", "2")
    ]
    assert outs[0] == outs[1] and json.loads(outs[0])["added_tokens"][0]["content"] == EOT


def test_cli_build_and_info(built, tmp_path, capsys):
    root, first = built
    rc = main(
        [
            "data",
            "build",
            "--preset",
            "custom",
            "--source",
            f"text:{root / 'corpus'}",
            "--out",
            str(tmp_path / "cli"),
            "--vocab-size",
            "400",
            "--min-eval-chars",
            "10000",
            "--min-eval-tokens",
            "1000",
            "--quiet",
        ]
    )
    assert rc == 0
    for name in DATA_FILES:  # the CLI and the API build the same thing
        assert (tmp_path / "cli" / name).read_bytes() == (first.path / name).read_bytes()
    assert main(["data", "info", str(tmp_path / "cli"), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "| eval | 2 |" in out and "| train |" in out
    assert main(["data", "info", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_token_dtype_widens_for_large_vocabularies(tmp_path):
    from cocattn.data.read.shards import token_dtype, write_tokens

    assert token_dtype(65_536) == np.uint16 and token_dtype(65_537) == np.uint32
    docs = [[70_000, 5, 65_535], [1]]
    count = write_tokens(tmp_path / "t.bin", docs, eot=0, dtype=token_dtype(80_000))
    assert count == 6
    assert np.fromfile(tmp_path / "t.bin", dtype=np.uint32).tolist() == [70_000, 5, 65_535, 0, 1, 0]


def test_split_digits_makes_every_digit_a_token_and_is_recorded(tmp_path):
    texts = [
        f"The passkey is {n}. Remember it. In {1900 + n % 100} there were {n * 7} men." for n in range(10000, 10400)
    ]
    plain = train_tokenizer(texts, vocab_size=400)
    split = train_tokenizer(texts, vocab_size=400, split_digits=True)
    number = " 48213"
    assert split.encode(number).tokens == ["Ġ", "4", "8", "2", "1", "3"]
    assert len(plain.encode(number).tokens) < 6  # a plain BPE merges digits (the reason for the option)
    for text in texts[:20]:  # lossless either way
        assert split.decode(split.encode(text).ids) == text
    # the CLI records the choice; a directory built without it is not "current" for a build with it
    make_corpus(tmp_path / "c", long_docs=4, short_docs=4)
    args = [
        "data",
        "build",
        "--preset",
        "custom",
        "--source",
        f"text:{tmp_path / 'c'}",
        "--vocab-size",
        "400",
        "--min-eval-chars",
        "10000",
        "--min-eval-tokens",
        "1000",
        "--quiet",
    ]
    assert main(args + ["--out", str(tmp_path / "d"), "--split-digits"]) == 0
    manifest = load_manifest(tmp_path / "d")
    assert manifest["config"]["split_digits"] is True and "digits split" in manifest["tokenizer"]["type"]
    assert load_tokenizer(tmp_path / "d").encode(number).tokens == ["Ġ", "4", "8", "2", "1", "3"]
    assert main(args + ["--out", str(tmp_path / "p")]) == 0
    assert "split_digits" not in load_manifest(tmp_path / "p")["config"]
    with pytest.raises(ValueError, match="split_digits"):
        train_tokenizer(texts, vocab_size=400, split_digits="yes")


def test_build_never_deletes_a_directory_that_merely_holds_a_manifest_json(tmp_path):
    """`cocattn data build --out w` where w holds *some* manifest.json and a
    project (`w/src/main.js`) removed the project. Now only a provable cocattn data directory (its
    manifest says so, and it holds nothing a build does not write) is replaced; others are refused
    with exit 2 naming the directory, and every file survives."""
    make_corpus(tmp_path / "c", long_docs=1, short_docs=10)
    work = tmp_path / "w"
    (work / "src").mkdir(parents=True)
    (work / "manifest.json").write_text("{}")
    (work / "src" / "main.js").write_text("code")
    argv = [
        sys.executable,
        "-m",
        "cocattn",
        "data",
        "build",
        "--preset",
        "custom",
        "--source",
        f"text:{tmp_path / 'c'}",
        "--vocab-size",
        "400",
        "--out",
        str(work),
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stderr
    assert str(work) in done.stderr and "not a cocattn data directory" in done.stderr
    assert (work / "src" / "main.js").read_text() == "code" and (work / "manifest.json").read_text() == "{}"

    # a real data directory into which a user put a file of their own is not replaced either
    data = tmp_path / "data"
    build_dataset(out_dir=data, sources=[f"text:{tmp_path / 'c'}"], **SMALL)
    (data / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"holds entries a data build does not write \(notes.txt\)"):
        build_dataset(out_dir=data, sources=[f"text:{tmp_path / 'c'}"], force=True, **SMALL)
    assert (data / "notes.txt").read_text() == "mine" and (data / "train.bin").is_file()
    (data / "notes.txt").unlink()  # a plain cocattn data directory is rebuilt in place
    assert build_dataset(out_dir=data, sources=[f"text:{tmp_path / 'c'}"], force=True, **SMALL).rebuilt


def test_build_with_a_pretrained_models_tokenizer(built, tmp_path):
    """`data build --tokenizer MODEL_DIR`: the model's tokenizer.json is used as is (no BPE is
    trained), the shards hold its ids, and the directory's tokenizer is byte-identical to the
    model's, so `cocattn train --init-from MODEL_DIR` accepts the data."""
    import subprocess
    import sys

    from cocattn.data.read.tokenizer import train_tokenizer

    root, _ = built
    model = tmp_path / "model"
    model.mkdir()
    own = train_tokenizer([(root / "corpus" / "short_00.txt").read_text()], vocab_size=300)
    (model / "tokenizer.json").write_text(own.to_str(), encoding="utf-8")
    out = tmp_path / "data"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "cocattn",
            "data",
            "build",
            "--preset",
            "custom",
            "--source",
            f"text:{root / 'corpus'}",
            "--out",
            str(out),
            "--tokenizer",
            str(model),
            "--min-eval-chars",
            "10000",
            "--min-eval-tokens",
            "1000",
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert (out / "tokenizer.json").read_bytes() == (model / "tokenizer.json").read_bytes()
    manifest = load_manifest(out)
    assert manifest["tokenizer"]["type"] == "pretrained" and manifest["tokenizer"]["vocab_size"] == 300
    assert manifest["config"]["tokenizer_sha256"] == manifest["tokenizer"]["sha256"]
    train = load_tokens(out, "train")
    first = [d for d in manifest["documents"] if d["split"] == "train"][0]
    text = (root / "corpus" / f"{first['id'].split('/')[1]}.txt").read_text()
    assert train[: first["tokens"]].tolist() == own.encode(text).ids  # the model's ids, not a new BPE's
    assert int(train[first["tokens"]]) == own.token_to_id(EOT)
    # same split as a build that trains its own BPE on the same sources
    mine = build_dataset(out_dir=tmp_path / "bpe", sources=[f"text:{root / 'corpus'}"], **SMALL)
    assert {d["id"]: d["split"] for d in mine.manifest["documents"]} == {
        d["id"]: d["split"] for d in manifest["documents"]
    }

    # a tokenizer without an end-of-text token (and no eos_token) is refused, naming the argument
    from tokenizers import Tokenizer, models

    bare = tmp_path / "bare"
    bare.mkdir()
    Tokenizer(models.BPE()).save(str(bare / "tokenizer.json"))
    with pytest.raises(ValueError, match="tokenizer=.*end-of-text"):
        build_dataset(out_dir=tmp_path / "x", sources=[f"text:{root / 'corpus'}"], tokenizer=bare, **SMALL)
    with pytest.raises(FileNotFoundError, match="tokenizer="):
        build_dataset(out_dir=tmp_path / "x", sources=[f"text:{root / 'corpus'}"], tokenizer=tmp_path / "none", **SMALL)
    assert not (tmp_path / "x").exists()
