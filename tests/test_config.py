"""Run configuration: presets, overrides with type coercion, and validation with clear errors."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cocattn.config import RunConfig, apply_overrides, load_config, preset_names


def test_presets_ship_and_load_by_name():
    assert set(preset_names()) >= {"tiny-cpu", "cpu-30m", "small-gpu", "paper-350m"}
    tiny = load_config("tiny-cpu")
    assert tiny.name == "tiny-cpu" and 64 <= tiny.model.max_seq_len <= 128
    assert tiny.train.dtype == "auto" and tiny.data.retrieval_fraction == 1.0  # every row a passkey row
    assert tiny.eval.kinds == ["rope", "coca", "alibi"] and tiny.eval.passkey_cases >= 50
    long = load_config("cpu-30m")  # the same model and recipe, twice the steps, all four kinds
    assert long.model == tiny.model and long.data == tiny.data
    assert (long.train.steps, tiny.train.steps) == (1200, 600)
    assert long.eval.kinds == ["rope", "coca", "coca-strict", "alibi"]
    small = load_config("small-gpu")  # PILOT.md's GPU setup
    assert (small.model.n_layer, small.model.n_embd, small.model.n_head, small.model.max_seq_len) == (
        6,
        384,
        6,
        512,
    )
    assert (small.train.batch_size, small.train.steps, small.train.lr, small.train.compile) == (64, 3000, 1e-3, True)
    assert small.data.retrieval_fraction == 0.05
    paper = load_config("paper-350m")
    m = paper.model
    assert (m.n_layer, m.n_embd, m.n_head, m.max_seq_len) == (24, 1024, 16, 512)
    assert m.parallel_residual and not m.tie_embeddings and paper.data.retrieval_fraction == 0.0


def test_overrides_are_coerced_to_field_types():
    run = load_config(
        "tiny-cpu",
        [
            "train.lr=3e-4",
            "train.min_lr=1e-4",
            "train.steps=1e3",
            "train.compile=true",
            "model.attention=coca",
            "model.rope_parameters.rope_theta=5e4",
            "data.dir=/data/pypi",
            "train.betas=[0.9, 0.99]",
            "train.threads=null",
        ],
    )
    assert run.train.lr == 3e-4 and isinstance(run.train.lr, float)
    assert run.train.steps == 1000 and isinstance(run.train.steps, int)
    assert run.train.compile is True and run.model.attention == "coca"
    assert run.model.rope_parameters["rope_theta"] == 50000.0
    assert run.model.rope_parameters["rope_type"] == "default"  # merged, not replaced
    assert run.data.dir == "/data/pypi" and run.train.betas == [0.9, 0.99] and run.train.threads is None


@pytest.mark.parametrize(
    "override, wrong, closest",
    [
        ("train.lrr=1", "lrr", "lr"),
        ("model.n_layers=3", "n_layers", "n_layer"),
        ("trian.lr=1", "trian", "train"),
        ("data.retrieval_frac=0.1", "retrieval_frac", "retrieval_fraction"),
        ("train.warm_up=3", "warm_up", "warmup"),
    ],
)
def test_unknown_key_names_the_closest_valid_keys(override, wrong, closest):
    with pytest.raises(ValueError) as info:
        load_config("tiny-cpu", [override])
    message = str(info.value)
    assert repr(wrong) in message and f"closest valid: {closest}" in message


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.steps=abc", "train.steps='abc'"),
        ("train.steps=0", "train.steps=0"),
        ("train.min_lr=1", "train.min_lr=1.0"),
        ("train.schedule=cosin", "did you mean 'cosine'"),
        ("train.batch_size=10", "train.batch_size=10"),
        ("train.distributed=zero", "train.distributed"),
        ("data.retrieval_fraction=1.5", "data.retrieval_fraction=1.5"),
        ("train.betas=[0.9]", "train.betas"),
        ("model.attention=flash", "model.attention"),
        ("train.compile=maybe", "true or false"),
        ("model.n_embd=130", "model.n_embd"),
        ("train.weight_decay=" + "1" * 400, "expected a number"),  # past float's range (found by the fuzz test)
    ],
)
def test_bad_values_are_clear_errors(override, fragment):
    overrides = [override] + (["train.grad_accum=4"] if "batch_size" in override else [])
    with pytest.raises(ValueError) as info:
        load_config("tiny-cpu", overrides)
    assert fragment in str(info.value)


def test_files_yaml_and_json_and_round_trip(tmp_path):
    run = load_config("tiny-cpu", ["model.attention=alibi"])
    (tmp_path / "run.json").write_text(json.dumps(run.to_dict()))
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(run.to_dict()))
    assert load_config(tmp_path / "run.json") == run
    assert load_config(str(tmp_path / "run.yaml")) == run
    assert RunConfig.from_dict(run.to_dict()) == run
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match="tiny-cpu"):
        load_config("tiny-gpu")
    (tmp_path / "bad.yaml").write_text("model: [unclosed")
    with pytest.raises(ValueError, match="bad.yaml"):
        load_config(tmp_path / "bad.yaml")


def test_vocab_size_null_is_filled_from_the_tokenizer():
    run = load_config("tiny-cpu")
    assert run.vocab_from_data and run.to_dict()["model"]["vocab_size"] is None
    assert run.model_config(vocab_size=512).vocab_size == 512
    with pytest.raises(ValueError, match="model.vocab_size"):
        run.model_config()
    fixed = load_config("tiny-cpu", ["model.vocab_size=300"])
    assert not fixed.vocab_from_data and fixed.model_config(vocab_size=512).vocab_size == 300
    assert fixed.model_config() == fixed.model and fixed.model_config() is not fixed.model  # a copy


def test_the_sections_are_typed_and_recorded_as_given():
    """``model`` is a GPTConfig (every field recorded), ``eval`` an EvalConfig that records the keys
    the section gave, in their order, and any field changed since."""
    from cocattn.config import EvalConfig
    from cocattn.model import GPTConfig

    given = {"model": {"n_layer": 2}, "eval": {"vocab_size": 10, "lengths": [256], "factors": [4]}}
    run = load_config(given)
    assert isinstance(run.model, GPTConfig) and isinstance(run.eval, EvalConfig)
    assert run.to_dict()["model"] == GPTConfig(n_layer=2).to_dict()
    assert list(run.to_dict()["eval"].items()) == [("vocab_size", 10), ("lengths", [256]), ("factors", [4])]
    assert (
        load_config({"model": {}}).to_dict()["eval"] == {} == load_config({"model": {}, "eval": None}).to_dict()["eval"]
    )
    run.eval.documents = 3
    assert run.to_dict()["eval"]["documents"] == 3
    assert RunConfig.from_dict(run.to_dict()) == run


def test_eval_lengths_become_multiples_unless_multiples_are_given():
    from cocattn.config import eval_config

    run = load_config({"model": {"max_seq_len": 128}, "eval": {"lengths": [256, 1024]}})
    assert eval_config(run).multiples == [2, 8] and run.eval.multiples == [1, 2, 4, 8, 16]  # a copy
    run = load_config({"model": {"max_seq_len": 64}, "eval": {"lengths": [128], "multiples": [1, 3]}})
    assert eval_config(run).multiples == [1, 3]


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("eval.kindz=[rope]", "unknown key 'kindz' in section 'eval'; closest valid: kinds"),
        ("eval.extra=&a [*a]", "is not valid"),
    ],
)
def test_eval_sections_are_refused_at_load(override, fragment):
    with pytest.raises(ValueError) as info:
        load_config("tiny-cpu", [override])
    assert fragment in str(info.value)
    with pytest.raises(ValueError, match="eval=3 is not valid: expected a mapping of evaluation settings"):
        load_config({"model": {}, "eval": 3})


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("eval.kinds=[ropee]", "eval.kinds='ropee'"),
        ("eval.dtype=float8", "eval.dtype='float8'"),
        ("eval.multiples=[0]", "eval.multiples=[0]"),
        ("eval.jobs=0", "eval.jobs=0"),
    ],
)
def test_eval_values_are_checked_by_eval_config(override, fragment):
    from cocattn.config import eval_config

    run = load_config("tiny-cpu", [override])  # loads: training does not read the eval section
    with pytest.raises(ValueError) as info:
        eval_config(run)
    assert fragment in str(info.value)


def test_override_syntax_errors_are_named():
    with pytest.raises(ValueError, match="section.key=value"):
        apply_overrides({}, ["lr"])
    with pytest.raises(ValueError, match="section.key=value"):
        apply_overrides({}, ["train=3"])


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.lists(st.floats(0, 1), max_size=3),
)
_train_keys = st.sampled_from(
    [
        "batch_size",
        "grad_accum",
        "steps",
        "lr",
        "min_lr",
        "warmup",
        "schedule",
        "betas",
        "grad_clip",
        "dtype",
        "compile",
        "seed",
        "threads",
        "bogus",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_train_keys, _values, max_size=5))
def test_fuzzed_train_sections_either_validate_or_raise_valueerror(section):
    """Whatever a config file holds, loading it gives a valid config or a ValueError, nothing else."""
    try:
        run = load_config({"model": {"n_layer": 1}, "train": section})
    except ValueError:
        return
    run.train.validate()
    assert run.train.batch_size % run.train.grad_accum == 0 and run.train.min_lr <= run.train.lr


def test_the_repository_configs_are_the_shipped_presets():
    """configs/ (what the README points at) and the package's presets are the same files."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    shipped = {p.name: p.read_text() for p in (root / "src" / "cocattn" / "configs").glob("*.yaml")}
    visible = {p.name: p.read_text() for p in (root / "configs").glob("*.yaml")}
    assert visible == shipped
