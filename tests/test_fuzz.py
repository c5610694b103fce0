"""Fuzzing with hypothesis: the config parser, the data manifest parser and the attention
API take arbitrary input and answer with a valid result or a clean ``ValueError`` /
``FileNotFoundError``, never another exception. Every test asserts both halves: a result is
checked (a config that saves and loads back equal and holds the values it was given; tokens
inside the vocabulary; attention equal to the reference implementation), and an error is of
the documented type with a message that names the argument (the input's own key, value, file or
tensor) and what is accepted. Bounded (``max_examples`` 100-200, no deadline)
so the file runs in well under 30 s on 2 CPU cores. The atheris harnesses in ``fuzz/`` drive the
same parsers with coverage-guided bytes (see docs/RELIABILITY.md).
"""

from __future__ import annotations

import ast
import json
import re
import string
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cocattn.config import SECTIONS, RunConfig, load_config, parse_override
from cocattn.errors import InputError

CLEAN = (ValueError, FileNotFoundError)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- config ---------------------------------------------------------------------------------------

_MODEL_KEYS = [
    "vocab_size",
    "n_layer",
    "n_head",
    "n_kv_head",
    "n_embd",
    "max_seq_len",
    "attention",
    "rope_parameters",
    "mlp_ratio",
    "activation",
    "norm",
    "bias",
    "tie_embeddings",
    "dropout",
    "parallel_residual",
    "bogus",
]
_TRAIN_KEYS = [
    "batch_size",
    "grad_accum",
    "steps",
    "lr",
    "min_lr",
    "warmup",
    "schedule",
    "weight_decay",
    "betas",
    "eps",
    "grad_clip",
    "eval_interval",
    "checkpoint_interval",
    "keep_checkpoints",
    "seed",
    "dtype",
    "compile",
    "device",
    "distributed",
    "threads",
    "progress",
    "tensorboard",
    "stepz",
]
_DATA_KEYS = ["dir", "retrieval_fraction", "dirr"]
_SECTIONS = ["name", "description", "model", "data", "train", "eval", "modle"]

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(
        ["cosine", "coca", "rope", "dynamic", "auto", "cuda:0", "1e-3", "null", "true", "[0.9, 0.95]", "4"]
    ),
)
_json_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


def _section(keys: list[str]):
    return st.dictionaries(st.sampled_from(keys) | st.text(max_size=6), _json_values, max_size=6)


_configs = st.one_of(
    st.fixed_dictionaries(
        {"model": _section(_MODEL_KEYS)},
        optional={
            "train": _section(_TRAIN_KEYS),
            "data": _section(_DATA_KEYS),
            "eval": _json_values,
            "name": _json_values,
        },
    ),
    st.dictionaries(st.sampled_from(_SECTIONS) | st.text(max_size=6), _json_values, max_size=5),
    _json_values,
)


def _assert_valid(run: RunConfig) -> None:
    run.validate()
    assert isinstance(run.to_dict()["model"], dict) and run.train.batch_size % run.train.grad_accum == 0
    from cocattn.files import dumps_json

    text = dumps_json(run.to_dict())  # what RunConfig.save writes (strict JSON: no inf / NaN)
    again = RunConfig.from_dict(json.loads(text))  # and what it saves, it loads: the same config
    assert json.loads(dumps_json(again.to_dict())) == json.loads(text)


_BAD_VALUE = re.compile(r"(?P<arg>[^=\s][^=]*)=(?P<shown>.+) is not valid: expected \S", re.DOTALL)
_UNKNOWN = re.compile(
    r"unknown key (?P<key>'.*'|\".*\") in (the run config|section '(?P<section>\w+)'|[\w.]+)"
    r"(; closest valid: .+?)?\. Valid keys: \w",
    re.DOTALL,
)


def _assert_clear_config_error(err: Exception, keys: set[str]) -> None:
    """A config error is a ValueError or cocattn's InputError, no other subclass (FileNotFoundError
    only for a missing file), that either names ``arg=value`` and what is accepted, with ``arg`` a
    section path (or the whole ``config`` / ``override``), or names an unknown key the input really
    holds and lists the valid keys."""
    msg = str(err)
    assert type(err) in (ValueError, InputError), f"{type(err).__name__}: {msg}"
    bad, unknown = _BAD_VALUE.match(msg), _UNKNOWN.match(msg)
    assert bad or unknown, f"unclear error: {msg}"
    if bad:
        root = bad["arg"].split(".")[0]  # a section, the whole config / override, or the input's own key
        assert root in (*SECTIONS, "config", "override") or root in keys, msg
    else:
        assert ast.literal_eval(unknown["key"]) in keys, msg  # the input's own key, not another
        assert ast.literal_eval(unknown["key"]) not in SECTIONS or unknown["section"], msg


def _keys(d, seen=None) -> set:
    """Every key of the input, at any depth (YAML anchors may make it self-referential)."""
    seen = set() if seen is None else seen
    if not isinstance(d, (dict, list)) or id(d) in seen:
        return set()
    seen.add(id(d))
    values = d.values() if isinstance(d, dict) else d
    return (set(d) if isinstance(d, dict) else set()) | {k for v in values for k in _keys(v, seen)}


def _lookup(tree, parts):
    for part in parts:
        if not isinstance(tree, dict) or part not in tree:
            return _MISSING
        tree = tree[part]
    return tree


_MISSING = object()


def _same(loaded, given) -> bool:
    """Values equal as the config stores them (tuples as lists; NaN never reaches a valid config)."""

    def norm(x):
        return json.loads(json.dumps(x, default=list)) if isinstance(x, (list, tuple, dict)) else x

    return norm(loaded) == norm(given)


def _assert_holds_the_given_values(run: RunConfig, given: dict) -> None:
    """Every model/train/data field the input set is the value the config holds (nothing
    silently replaced by a default or coerced to another value)."""
    loaded = run.to_dict()
    for section in ("model", "train", "data"):
        for key, value in (given.get(section) or {}).items():
            have = _lookup(loaded, [section, key])
            if have is not _MISSING and not isinstance(value, dict):
                assert _same(have, value), (section, key, value, have)


@FUZZ
@given(_configs)
def test_fuzzed_config_dicts_give_a_valid_config_or_a_clean_error(d):
    """Guarantee (fuzzing): any parsed config dict yields a valid RunConfig or a ValueError."""
    try:
        run = load_config(d)
    except Exception as err:  # noqa: BLE001 - the type is the property under test
        _assert_clear_config_error(err, _keys(d))
        return
    _assert_valid(run)
    _assert_holds_the_given_values(run, d)


_override_keys = st.one_of(
    st.sampled_from(
        [f"model.{k}" for k in _MODEL_KEYS]
        + [f"train.{k}" for k in _TRAIN_KEYS]
        + [f"data.{k}" for k in _DATA_KEYS]
        + [
            "model.rope_parameters.rope_theta",
            "model.rope_parameters.rope_type",
            "eval.lengths",
            "name",
            "model",
            "train.lr.x",
            ".lr",
            "train.",
        ]
    ),
    st.text(alphabet=string.ascii_letters + "._=", max_size=12),
)
_override_values = st.one_of(
    st.sampled_from(
        [
            "3e-4",
            "5e4",
            "-1",
            "0",
            "true",
            "null",
            "[1, 2]",
            "{a: 1}",
            "coca",
            "[0.9, 0.95]",
            "nan",
            "inf",
            "",
            "'",
            "[",
            "{",
            "!!python/none",
            "&a [*a]",
            "1" * 400,
        ]
    ),
    st.text(max_size=16),
)


@FUZZ
@given(st.lists(st.tuples(_override_keys, st.sampled_from(["=", "", "=="]), _override_values), max_size=4))
def test_fuzzed_overrides_give_a_valid_config_or_a_clean_error(parts):
    """Guarantee (fuzzing): any ``key=value`` override strings on a preset yield a valid RunConfig
    or a ValueError naming the problem."""
    overrides = [k + sep + v for k, sep, v in parts]
    try:
        run = load_config("tiny-cpu", overrides)
    except Exception as err:  # noqa: BLE001 - the type is the property under test
        keys = {piece for o in overrides for piece in o.split("=", 1)[0].strip().split(".")}
        keys |= {k for o in overrides if "=" in o for k in _keys(_yaml_or_none(o.split("=", 1)[1]))}
        _assert_clear_config_error(err, keys)
        bad = _BAD_VALUE.match(str(err))
        if bad and bad["arg"] == "override":  # the override shown is one of those given, as given
            assert any(repr(o)[:197] in str(err) for o in overrides), str(err)
        return
    _assert_valid(run)
    # the last override of each key is what the config holds (as YAML parses it)
    loaded = run.to_dict()
    for text in overrides:
        path, value = parse_override(text)
        last = [parse_override(o)[1] for o in overrides if parse_override(o)[0] == path][-1]
        have = _lookup(loaded, path)
        if have is not _MISSING and path[0] in ("model", "train", "data") and not isinstance(last, dict):
            assert _same(have, last), (text, have)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(str.encode),
        _configs.map(lambda d: json.dumps(d, allow_nan=True).encode()),
    ),
    st.sampled_from([".yaml", ".json"]),
)
def test_fuzzed_config_files_give_a_valid_config_or_a_clean_error(data, suffix):
    """Guarantee (fuzzing): any bytes in a config file (YAML or JSON) yield a valid RunConfig or a
    ValueError naming the file; YAML tags that construct objects are refused (safe_load)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"run{suffix}"
        path.write_bytes(data)
        try:
            run = load_config(path)
        except Exception as err:  # noqa: BLE001 - the type is the property under test
            msg = str(err)
            if msg.startswith(str(path)):  # unreadable file: the error names it and what it must hold
                assert type(err) is ValueError and re.match(
                    re.escape(str(path)) + r" (is not valid (YAML|JSON)|must hold a mapping with sections)", msg
                ), msg
            else:  # readable: the same clear errors as for a dict
                _assert_clear_config_error(err, _keys(_parsed(data, suffix)))
            return
    _assert_valid(run)
    _assert_holds_the_given_values(run, _parsed(data, suffix))


def _yaml_or_none(text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _parsed(data: bytes, suffix: str):
    import yaml

    text = data.decode("utf-8")
    return json.loads(text) if suffix == ".json" else yaml.safe_load(text)


def test_yaml_object_tags_never_run():
    """Guarantee: a config file cannot run code (YAML python/object tags are refused)."""
    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "MARKER"
        path = Path(tmp) / "evil.yaml"
        path.write_text(
            f"model: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path ['{marker}']]\n"
        )
        with pytest.raises(ValueError, match="evil.yaml"):
            load_config(path)
        assert not marker.exists()


# -- manifest -------------------------------------------------------------------------------------

_hex = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
_entry = st.one_of(
    st.fixed_dictionaries(
        {"size": st.integers(-2, 40) | _scalars, "sha256": _hex | _scalars},
        optional={
            "dtype": st.sampled_from(["uint16", "uint32", "float32", "object", "S3", "", "<u2"]) | _scalars,
            "tokens": _scalars,
        },
    ),
    _json_values,
)
_names = st.sampled_from(["train.bin", "val.bin", "eval.jsonl", "tokenizer.json", "../escape.bin", "", "x/y.bin"])
_manifests = st.one_of(
    st.fixed_dictionaries(
        {"format": st.just("cocattn-data") | _scalars, "format_version": st.just(1) | _scalars},
        optional={"files": st.dictionaries(_names, _entry, max_size=4) | _json_values, "documents": _json_values},
    ),
    _json_values,
)


def _manifest_bytes():
    return st.one_of(
        _manifests.map(lambda m: json.dumps(m, allow_nan=True).encode()),
        st.binary(max_size=200),
        _manifests.map(lambda m: json.dumps(m).encode()).flatmap(
            lambda b: st.integers(0, max(len(b) - 1, 0)).map(lambda n: b[:n])
        ),
    )  # truncated


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

        def assert_clear(err: Exception) -> None:  # names the data directory's file, is a clean type
            assert isinstance(err, CLEAN), f"{type(err).__name__}: {err}"
            assert str(d) in str(err), str(err)

        try:
            loaded = load_manifest(d)
        except Exception as err:  # noqa: BLE001 - the type is the property under test
            assert_clear(err)
            assert str(d / "manifest.json") in str(err)
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
            except AssertionError:
                raise
            except Exception as err:  # noqa: BLE001 - the type is the property under test
                assert_clear(err)


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
    except Exception as err:  # noqa: BLE001 - the type is the property under test
        msg = str(err)
        assert type(err) in (ValueError, InputError), f"{type(err).__name__}: {msg}"
        bad = _BAD_VALUE.match(msg)
        assert bad, f"unclear error: {msg}"
        assert re.match(r"(q|k|t|v|positions|key_positions|dtypes)\b", bad["arg"]), msg  # names the argument
        return
    assert isinstance(out, torch.Tensor) and out.shape == q.shape and out.dtype == q.dtype
    if q.numel() and q.dtype in (torch.float32, torch.float64):
        assert torch.isfinite(out).all()


_REFERENCE = {
    "coca": "coca_slack_reference",
    "coca-strict": "coca_strict_reference",
    "rope": "rope_reference",
    "nope": "nope_reference",
    "alibi": "alibi_reference",
}


@settings(max_examples=100, deadline=None)
@given(
    dims=st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 2), st.integers(1, 9), st.integers(1, 4)),
    kind=st.sampled_from(list(_REFERENCE)),
    causal=st.booleans(),
    offset=st.none() | st.integers(0, 30),
    queries=st.integers(1, 9),
    seed=st.integers(0, 2**16),
)
def test_fuzzed_valid_attention_equals_the_reference(dims, kind, causal, offset, queries, seed):
    """Guarantee (fuzzing): on any valid float64 input (GQA groups, sequence and head sizes,
    causal or not, positions shifted by an offset, fewer queries than keys as in cached decoding)
    every kind computes the paper's / textbook formula: equal to the reference implementations in
    :mod:`cocattn.attention.reference` to 1e-9 (measured ~1e-16)."""
    from cocattn import attention as A
    from cocattn.attention import functional as AF
    from cocattn.attention import reference as R

    b, hkv, group, n, half = dims
    h, d, nq = hkv * group, 2 * half, min(queries, n)
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, nq, d, generator=gen, dtype=torch.float64) * 2
    k = torch.randn(b, hkv, n, d, generator=gen, dtype=torch.float64) * 2
    v = torch.randn(b, hkv, n, d, generator=gen, dtype=torch.float64)
    pos = None if offset is None else torch.arange(offset, offset + n)
    kw = dict(causal=causal)
    cached = {} if pos is None else dict(positions=pos[-nq:], key_positions=pos)  # queries: the last positions
    if kind.startswith("coca"):
        variant = "strict" if kind == "coca-strict" else "slack"
        if nq < n:  # decoding against cached keys: the tied key state, as the KV cache holds it
            out = AF.coca_attention_tied(q, AF.tie_t(k), v, variant=variant, **cached, **kw)
        else:
            out = A.coca_attention(q, k, v, variant=variant, positions=pos, **kw)
    else:
        fn = {"rope": A.rope_attention, "nope": A.nope_attention, "alibi": A.alibi_attention}[kind]
        out = fn(q, k, v, **cached, **kw) if nq < n else fn(q, k, v, positions=pos, **kw)
    expected = getattr(R, _REFERENCE[kind])(q, k, v, positions=pos, causal=causal)
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)


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


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_non_utf8_config_file_is_a_valueerror_naming_it(tmp_path, suffix):
    """Regression (found by the fuzz test above): bytes that are not UTF-8 raised a bare
    UnicodeDecodeError that named no file."""
    path = tmp_path / f"run{suffix}"
    path.write_bytes(b"\x80model: {}")
    with pytest.raises(ValueError, match=re.escape(str(path)) + r" is not valid (YAML|JSON): not UTF-8") as info:
        load_config(path)
    assert type(info.value) is ValueError


# -- nesting depth and YAML aliases, through every parser entry point ----------------------------

_DEEP_MESSAGE = "nested more than 100 levels deep"


def _nested(depth: int, opener: str) -> str:
    close = {"[": "]", '{"a": ': "}", "- ": ""}[opener]
    if opener == "- ":  # YAML block sequences, one indentation level per depth
        return "".join("  " * i + "- \n" for i in range(depth)) + "  " * depth + "- 1\n"
    return opener * depth + "1" + close * depth


def _through(entry: str, text: str, tmp: Path):
    """Feed ``text`` to one parser entry point the way a user's input reaches it."""
    from cocattn.evaluate.results import read_results
    from cocattn.evaluate.scaling import parse_scaling

    if entry == "config.json":
        (tmp / "run.json").write_text('{"model": ' + text + "}")
        return load_config(tmp / "run.json")
    if entry == "config.yaml":
        (tmp / "run.yaml").write_text("model:\n  x:\n" + "".join("    " + line + "\n" for line in text.splitlines()))
        return load_config(tmp / "run.yaml")
    if entry == "override":
        return load_config("tiny-cpu", ["train.betas=" + text.replace("\n", " ")])
    if entry == "rope-json":
        return parse_scaling('{"rope_type": "dynamic", "factor": 2, "x": ' + text + "}", "--rope-json")
    (tmp / "r.json").write_text('{"schema": "cocattn.eval/1", "x": ' + text + "}")
    return read_results(tmp / "r.json")


@FUZZ
@given(
    st.integers(min_value=0, max_value=4000),
    st.sampled_from(["[", '{"a": ', "- "]),
    st.sampled_from(["config.json", "config.yaml", "override", "rope-json", "result.json"]),
)
def test_fuzzed_nesting_depth_is_bounded_at_every_entry_point(depth, opener, entry):
    """Guarantee (fuzzing, cause A of docs/RELIABILITY.md, section 9): nesting of any depth, in a config file (JSON, YAML flow or
    block), an override, ``--rope-json`` or a result JSON, gives a result or a ValueError; past 100
    levels the error names the input and the bound (never a RecursionError)."""
    if opener == "- " and entry not in ("config.yaml",):
        opener = "["
    with tempfile.TemporaryDirectory() as tmp:
        try:
            _through(entry, _nested(depth, opener), Path(tmp))
        except ValueError as err:
            deep = _DEEP_MESSAGE in str(err)  # the wrapping adds up to 3 levels
            assert deep if depth > 100 else (not deep if depth <= 97 else True), (depth, entry, str(err)[:200])
            return
        except RecursionError:  # pragma: no cover - the defect this test guards
            raise AssertionError(f"RecursionError at depth {depth} through {entry}") from None
    assert depth <= 100


def _laughs(levels: int, fanout: int, inline: bool) -> str:
    """Anchors ``l0 … l{levels-1}``, each a list of ``fanout`` aliases of the one before."""
    parts = [f"&l0 [{', '.join(['x'] * fanout)}]"]
    parts += [f"&l{i} [{', '.join([f'*l{i - 1}'] * fanout)}]" for i in range(1, levels)]
    if inline:
        return "[" + ", ".join(parts) + "]"
    return "\n".join(f"k{i}: {p}" for i, p in enumerate(parts)) + "\n"


@FUZZ
@given(
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=1, max_value=12),
    st.sampled_from(["config.yaml", "override", "eval-section"]),
)
def test_fuzzed_yaml_aliases_are_bounded(levels, fanout, entry):
    """Guarantee (fuzzing, cause B of docs/RELIABILITY.md, section 9): YAML anchors and aliases of any fan-out and depth, in a
    config file, an override value or the eval section, give a result or a ValueError at once;
    what would expand past 100,000 values is refused naming the input, in well under a second."""
    import time

    expanded = sum(fanout**i for i in range(1, levels + 1)) + levels
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.yaml"
        try:
            if entry == "override":
                load_config("tiny-cpu", ["eval.extra=" + _laughs(levels, fanout, inline=True)])
            else:
                body = _laughs(levels, fanout, inline=entry == "eval-section")
                text = f"eval:\n  extra: {body}\n" if entry == "eval-section" else body
                path.write_text(text)
                load_config(path)
        except ValueError as err:
            bound = "aliases expanded" in str(err)
            assert bound or expanded <= 100_000, (levels, fanout, str(err)[:200])
            if bound:
                assert expanded > 50_000, (levels, fanout)
        else:
            assert expanded <= 100_000
    assert time.perf_counter() - start < 5
