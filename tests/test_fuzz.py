"""Issue 7 fuzzing with hypothesis: the config parser, the data manifest parser and the attention
API take arbitrary input and answer with a valid result or a clean ``ValueError`` /
``FileNotFoundError``, never another exception. Bounded (``max_examples`` 100-200, no deadline)
so the file runs in well under 30 s on 2 CPU cores. The atheris harnesses in ``fuzz/`` drive the
same parsers with coverage-guided bytes (see docs/RELIABILITY.md).
"""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cocattn.config import RunConfig, load_config

CLEAN = (ValueError, FileNotFoundError)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- config ---------------------------------------------------------------------------------------

_MODEL_KEYS = ["vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd", "max_seq_len", "attention",
               "rope_parameters", "mlp_ratio", "activation", "norm", "bias", "tie_embeddings", "dropout",
               "parallel_residual", "bogus"]
_TRAIN_KEYS = ["batch_size", "grad_accum", "steps", "lr", "min_lr", "warmup", "schedule", "weight_decay",
               "betas", "eps", "grad_clip", "eval_interval", "checkpoint_interval", "keep_checkpoints", "seed",
               "dtype", "compile", "device", "distributed", "threads", "progress", "tensorboard", "stepz"]
_DATA_KEYS = ["dir", "retrieval_fraction", "dirr"]
_SECTIONS = ["name", "description", "model", "data", "train", "eval", "modle"]

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
                     st.text(max_size=12), st.sampled_from(["cosine", "coca", "rope", "dynamic", "auto", "cuda:0",
                                                            "1e-3", "null", "true", "[0.9, 0.95]", "4"]))
_json_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                            max_leaves=12)


def _section(keys: list[str]):
    return st.dictionaries(st.sampled_from(keys) | st.text(max_size=6), _json_values, max_size=6)


_configs = st.one_of(
    st.fixed_dictionaries({"model": _section(_MODEL_KEYS)},
                          optional={"train": _section(_TRAIN_KEYS), "data": _section(_DATA_KEYS),
                                    "eval": _json_values, "name": _json_values}),
    st.dictionaries(st.sampled_from(_SECTIONS) | st.text(max_size=6), _json_values, max_size=5),
    _json_values,
)


def _assert_valid(run: RunConfig) -> None:
    run.validate()
    assert isinstance(run.model, dict) and run.train.batch_size % run.train.grad_accum == 0
    from cocattn.io import dumps_json

    text = dumps_json(run.to_dict())  # what RunConfig.save writes (strict JSON: no inf / NaN)
    RunConfig.from_dict(json.loads(text))  # and what it saves, it loads


@FUZZ
@given(_configs)
def test_fuzzed_config_dicts_give_a_valid_config_or_a_clean_error(d):
    """Guarantee (fuzzing): any parsed config dict yields a valid RunConfig or a ValueError."""
    try:
        run = load_config(d)
    except CLEAN:
        return
    _assert_valid(run)


_override_keys = st.one_of(
    st.sampled_from([f"model.{k}" for k in _MODEL_KEYS] + [f"train.{k}" for k in _TRAIN_KEYS]
                    + [f"data.{k}" for k in _DATA_KEYS] + ["model.rope_parameters.rope_theta",
                                                            "model.rope_parameters.rope_type", "eval.lengths",
                                                            "name", "model", "train.lr.x", ".lr", "train."]),
    st.text(alphabet=string.ascii_letters + "._=", max_size=12),
)
_override_values = st.one_of(st.sampled_from(["3e-4", "5e4", "-1", "0", "true", "null", "[1, 2]", "{a: 1}", "coca",
                                              "[0.9, 0.95]", "nan", "inf", "", "'", "[", "{", "!!python/none",
                                              "&a [*a]", "1" * 400]),
                             st.text(max_size=16))


@FUZZ
@given(st.lists(st.tuples(_override_keys, st.sampled_from(["=", "", "=="]), _override_values), max_size=4))
def test_fuzzed_overrides_give_a_valid_config_or_a_clean_error(parts):
    """Guarantee (fuzzing): any ``key=value`` override strings on a preset yield a valid RunConfig
    or a ValueError naming the problem."""
    overrides = [k + sep + v for k, sep, v in parts]
    try:
        run = load_config("tiny-cpu", overrides)
    except CLEAN:
        return
    _assert_valid(run)


@FUZZ
@given(st.one_of(st.binary(max_size=300),
                 st.text(max_size=300).map(str.encode),
                 _configs.map(lambda d: json.dumps(d, allow_nan=True).encode())),
       st.sampled_from([".yaml", ".json"]))
def test_fuzzed_config_files_give_a_valid_config_or_a_clean_error(data, suffix):
    """Guarantee (fuzzing): any bytes in a config file (YAML or JSON) yield a valid RunConfig or a
    ValueError naming the file; YAML tags that construct objects are refused (safe_load)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"run{suffix}"
        path.write_bytes(data)
        try:
            run = load_config(path)
        except CLEAN:
            return
    _assert_valid(run)


def test_yaml_object_tags_never_run():
    """Guarantee: a config file cannot run code (YAML python/object tags are refused)."""
    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "MARKER"
        path = Path(tmp) / "evil.yaml"
        path.write_text(f"model: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path ['{marker}']]\n")
        with pytest.raises(ValueError, match="evil.yaml"):
            load_config(path)
        assert not marker.exists()


# -- manifest -------------------------------------------------------------------------------------

_hex = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
_entry = st.one_of(
    st.fixed_dictionaries({"size": st.integers(-2, 40) | _scalars, "sha256": _hex | _scalars},
                          optional={"dtype": st.sampled_from(["uint16", "uint32", "float32", "object", "S3", "", "<u2"])
                                    | _scalars, "tokens": _scalars}),
    _json_values,
)
_names = st.sampled_from(["train.bin", "val.bin", "eval.jsonl", "tokenizer.json", "../escape.bin", "", "x/y.bin"])
_manifests = st.one_of(
    st.fixed_dictionaries({"format": st.just("cocattn-data") | _scalars, "format_version": st.just(1) | _scalars},
                          optional={"files": st.dictionaries(_names, _entry, max_size=4) | _json_values,
                                    "documents": _json_values}),
    _json_values,
)


def _manifest_bytes():
    return st.one_of(_manifests.map(lambda m: json.dumps(m, allow_nan=True).encode()),
                     st.binary(max_size=200),
                     _manifests.map(lambda m: json.dumps(m).encode()).flatmap(
                         lambda b: st.integers(0, max(len(b) - 1, 0)).map(lambda n: b[:n])))  # truncated


@FUZZ
@given(_manifest_bytes(), st.binary(max_size=40), st.sampled_from(["auto", "full", "size"]))
def test_fuzzed_manifests_give_data_or_a_clean_error(manifest, shard, verify):
    """Guarantee (fuzzing): any bytes in manifest.json, with any shard bytes, make the loaders
    (load_manifest, verify_file, load_tokens, load_eval_documents, dataset_info) return checked
    data or raise a ValueError / FileNotFoundError, never a KeyError/TypeError from inside."""
    from cocattn.data import dataset_info, load_eval_documents, load_manifest, load_tokens, verify_file

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "manifest.json").write_bytes(manifest)
        for name in ("train.bin", "val.bin", "eval.jsonl", "tokenizer.json"):
            (d / name).write_bytes(shard)
        try:
            loaded = load_manifest(d)
        except CLEAN:
            return
        assert isinstance(loaded, dict) and isinstance(loaded["files"], dict)

        def tokens(split: str) -> None:  # checked data: integer ids inside the recorded vocabulary
            t = load_tokens(d, split, verify=verify)
            assert t.ndim == 1 and t.dtype.kind in "iu"
            assert t.size == 0 or int(t.max()) < loaded["tokenizer"]["vocab_size"]
            assert t.size == loaded["files"][f"{split}.bin"].get("tokens", t.size)

        def documents() -> None:
            docs = load_eval_documents(d, verify=verify)
            assert isinstance(docs, list) and all(isinstance(x.text, str) for x in docs)

        def verified() -> None:  # every verified file is the manifest's, inside the directory, of its size
            for name in loaded["files"]:
                path = verify_file(d, name, verify=verify)
                assert path.parent == d and path.stat().st_size == loaded["files"][name]["size"]

        def info() -> None:
            assert isinstance(dataset_info(d, verify=verify), (dict, str))

        for call in (lambda: tokens("train"), lambda: tokens("val"), documents, info, verified):
            try:
                call()
            except CLEAN:
                pass


# -- attention API --------------------------------------------------------------------------------

_dtypes = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.bool])


@settings(max_examples=200, deadline=None)
@given(
    shapes=st.lists(st.lists(st.integers(0, 5), min_size=2, max_size=5), min_size=3, max_size=3),
    dtypes=st.lists(_dtypes, min_size=3, max_size=3) | _dtypes.map(lambda d: [d, d, d]),
    kind=st.sampled_from(["coca", "coca-strict", "rope", "nope", "alibi"]),
    causal=st.booleans(),
    positions=st.none() | st.lists(st.integers(-3, 40), max_size=6),
    consistent=st.booleans(),
)
def test_fuzzed_attention_shapes_and_dtypes(shapes, dtypes, kind, causal, positions, consistent):
    """Guarantee (fuzzing): the attention functions, given tensors of any rank, size (zeros
    included) and dtype, return an output of q's shape and dtype or raise a ValueError naming
    the argument."""
    from cocattn.attention import alibi_attention, coca_attention, nope_attention, rope_attention

    if consistent:  # bias towards valid inputs: q [b, h, n, d], keys/values [b, hkv, n, d]
        b, h, n, d = (list(shapes[0]) + [1, 1, 1, 2])[:4]
        hkv = max(1, shapes[1][0] % (h or 1) or 1)
        h = hkv * max(1, h // hkv)
        shapes = [[b, h, n, 2 * d], [b, hkv, n, 2 * d], [b, hkv, n, 2 * d]]
    gen = torch.Generator().manual_seed(0)
    tensors = []
    for shape, dtype in zip(shapes, dtypes):
        x = torch.randn(shape, generator=gen, dtype=torch.float64)
        tensors.append(x.to(dtype))
    q, k, v = tensors
    pos = None if positions is None else torch.tensor(positions, dtype=torch.int64)
    call = {
        "coca": lambda: coca_attention(q, k, v, variant="slack", positions=pos, causal=causal),
        "coca-strict": lambda: coca_attention(q, k, v, variant="strict", positions=pos, causal=causal),
        "rope": lambda: rope_attention(q, k, v, positions=pos, causal=causal),
        "nope": lambda: nope_attention(q, k, v, positions=pos, causal=causal),
        "alibi": lambda: alibi_attention(q, k, v, positions=pos, causal=causal),
    }[kind]
    try:
        out = call()
    except ValueError:
        return
    assert isinstance(out, torch.Tensor) and out.shape == q.shape and out.dtype == q.dtype
    if q.numel() and q.dtype in (torch.float32, torch.float64):
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("kind", ["rope", "nope", "alibi"])
@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_integer_attention_inputs_are_a_valueerror(kind, dtype):
    """Guarantee: non-floating q/k/v are refused with a ValueError naming the dtype."""
    from cocattn.attention import alibi_attention, nope_attention, rope_attention

    fn = {"rope": rope_attention, "nope": nope_attention, "alibi": alibi_attention}[kind]
    x = torch.ones(1, 2, 3, 4, dtype=dtype)
    with pytest.raises(ValueError, match="dtype"):
        fn(x, x, x)


def test_alibi_attention_on_an_empty_sequence():
    """Guarantee: a zero-length sequence gives an empty output of q's shape, as the other kinds do."""
    from cocattn.attention import alibi_attention, rope_attention

    x = torch.ones(1, 2, 0, 4)
    assert rope_attention(x, x, x).shape == x.shape
    assert alibi_attention(x, x, x).shape == x.shape
