"""Run configuration: one YAML/JSON file with sections ``model``, ``data``, ``train``, ``eval``.

Presets ship in ``cocattn/configs/`` and load by name (``load_config("tiny-cpu")``) or by path.
Command-line overrides are ``section.key=value`` (``train.lr=3e-4``,
``model.rope_parameters.rope_theta=50000``); values are parsed as YAML and coerced to the
field's type. Unknown keys, wrong types and out-of-range values raise a ``ValueError`` naming the
key, the value and what is accepted (with the closest valid keys for a typo).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, TypeVar, Union

import yaml

from cocattn._checks import bad_value, check, check_choice, check_ci_options, unknown_key
from cocattn.attention.kinds import KINDS, ROTARY_KINDS
from cocattn.safeparse import loads_json, loads_yaml

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from cocattn.model import GPTConfig

SCHEDULES = ("cosine", "linear", "constant")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DISTRIBUTED = ("none", "ddp", "fsdp")
SECTIONS = ("name", "description", "model", "data", "train", "eval")


@dataclass
class DataConfig:
    """Where the tokens come from (``cocattn data build`` output) and how rows are drawn."""

    dir: str | None = None
    """Data directory written by ``cocattn data build`` (``--data`` on the command line)."""
    retrieval_fraction: float = 0.0
    """Fraction of training rows replaced by synthetic retrieval rows (0 = off)."""
    retrieval_tasks: list[str] = field(default_factory=lambda: ["passkey"])
    """What those rows are, each drawn uniformly: ``passkey`` (the paper's key line) and tasks of the
    retrieval suite with their options (``niah_multikey``, ``vt:hops=2``, ...; docs/RETRIEVAL.md)."""

    def validate(self) -> None:
        from cocattn.tasks.warmup import check_retrieval_tasks

        check(
            0.0 <= self.retrieval_fraction <= 1.0,
            "data.retrieval_fraction",
            self.retrieval_fraction,
            "a number between 0 and 1",
        )
        check_retrieval_tasks(self.retrieval_tasks)


@dataclass
class TrainConfig:
    """Optimisation, logging, checkpointing and hardware settings of a training run."""

    batch_size: int = 32
    """Rows per optimizer step, the global batch (split over ranks and grad_accum micro-steps)."""
    grad_accum: int = 1
    """Micro-steps per optimizer step; batch_size must be divisible by grad_accum × world size."""
    steps: int = 1000
    """Optimizer steps."""
    lr: float = 1e-3
    """Peak learning rate (after warm-up)."""
    min_lr: float = 1e-4
    """Learning rate at the end of the decay."""
    warmup: int = 100
    """Linear warm-up steps (from lr/warmup to lr)."""
    schedule: str = "cosine"
    """Decay after warm-up: cosine | linear | constant."""
    weight_decay: float = 0.1
    """AdamW weight decay for matrices (norms, biases and embeddings are not decayed)."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    """AdamW betas."""
    eps: float = 1e-8
    """AdamW epsilon."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value (0 disables)."""
    eval_interval: int = 100
    """Validation loss every this many steps (and at the end; 0 disables)."""
    eval_iters: int = 10
    """Validation batches per validation loss."""
    log_interval: int = 10
    """Write a metrics line every this many steps."""
    checkpoint_interval: int = 200
    """Atomic trainer checkpoint every this many steps (0: only the final model)."""
    keep_checkpoints: int = 3
    """How many of the newest checkpoints to keep."""
    seed: int = 1337
    """Seed of the model initialisation, the data sampler and dropout."""
    dtype: str = "auto"
    """auto (bf16 autocast on CUDA, fp32 on CPU) | float32 | bfloat16 | float16 (autocast dtype)."""
    compile: bool = False
    """Wrap the model in torch.compile."""
    chunked_loss: bool = False
    """Compute the loss of a native model a chunk of positions at a time (``cocattn.chunked_loss``):
    the full [batch, length, vocab] logits never exist. The same loss and gradients to float32
    rounding, not bit for bit; float32 without autocast only (otherwise the full logits)."""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N (under torchrun, cuda means cuda:LOCAL_RANK)."""
    distributed: str = "ddp"
    """Under torchrun: ddp | fsdp (FSDP2 fully_shard) | none (refuse to run distributed)."""
    threads: int | None = None
    """CPU threads for torch (None: torch's default)."""
    progress: bool = True
    """Show a progress bar (only when stderr is a terminal)."""
    tensorboard: bool = False
    """Also write TensorBoard scalars to run_dir/tensorboard (needs the tensorboard package)."""
    init_from: str | None = None
    """Continue training a saved model instead of a new one (``--init-from``): a Hugging Face
    causal-LM directory (e.g. the output of ``cocattn convert llama``; the final model is then
    saved with ``save_pretrained``) or a cocattn model directory (its architecture is kept). Only
    ``model.max_seq_len`` (the training length) is read from the model section. The data
    directory's tokenizer must be the model's: same vocabulary (``tokenizer.json`` of the model
    directory compared token by token; without one, the same number of tokens)."""
    stage: int | None = None
    """Staged continued training (paper §3.2), with ``init_from`` only: 1, the T projections only;
    2, the Q, T and V projections; 3 or null, every weight. Stages 1-2 need a CoCA model."""

    def validate(self) -> None:
        positive_ints = ("batch_size", "grad_accum", "steps", "eval_iters", "log_interval", "keep_checkpoints")
        for name in positive_ints:
            value = getattr(self, name)
            check(value >= 1, f"train.{name}", value, "an integer >= 1")
        for name in ("warmup", "eval_interval", "checkpoint_interval", "seed"):
            value = getattr(self, name)
            check(value >= 0, f"train.{name}", value, "an integer >= 0")
        check(
            self.batch_size % self.grad_accum == 0,
            "train.batch_size",
            self.batch_size,
            f"a multiple of train.grad_accum={self.grad_accum}",
        )
        check(self.warmup <= self.steps, "train.warmup", self.warmup, f"at most train.steps={self.steps}")
        check(self.lr > 0 and math.isfinite(self.lr), "train.lr", self.lr, "a positive number")
        check(0 <= self.min_lr <= self.lr, "train.min_lr", self.min_lr, f"between 0 and train.lr={self.lr}")
        check(self.weight_decay >= 0, "train.weight_decay", self.weight_decay, "a number >= 0")
        check(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "train.betas",
            self.betas,
            "two numbers in [0, 1), e.g. [0.9, 0.95]",
        )
        check(self.eps > 0, "train.eps", self.eps, "a positive number")
        check(self.grad_clip >= 0, "train.grad_clip", self.grad_clip, "a number >= 0 (0 disables clipping)")
        check_choice("train.schedule", self.schedule, SCHEDULES)
        check_choice("train.dtype", self.dtype, DTYPES)
        check_choice("train.distributed", self.distributed, DISTRIBUTED)
        check(
            self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda") or self.device == "mps",
            "train.device",
            self.device,
            "auto, cpu, cuda, cuda:N or mps",
        )
        check(self.threads is None or self.threads >= 1, "train.threads", self.threads, "null or an integer >= 1")
        check(
            self.init_from is None or self.init_from.strip() != "",
            "train.init_from",
            self.init_from,
            "null or a model directory",
        )
        check(self.stage is None or self.stage in (1, 2, 3), "train.stage", self.stage, "null, 1, 2 or 3")
        check(
            self.stage is None or self.init_from is not None,
            "train.stage",
            self.stage,
            "null when train.init_from is null (stages continue training a saved model; pass --init-from DIR)",
        )


@dataclass
class RunConfig:
    """A whole run: the model shape, the data, the training settings and (optional) evaluation."""

    model: dict[str, Any]
    """GPTConfig fields (``vocab_size: null`` takes the size of the data directory's tokenizer).
    With ``train.init_from`` only ``max_seq_len`` is used: the model comes from that directory."""
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: dict[str, Any] = field(default_factory=dict)
    """Settings for the evaluation / reproduce stages, passed through as given."""
    name: str = ""
    """Preset or run name (recorded with results)."""
    description: str = ""

    def model_config(self, vocab_size: int | None = None) -> GPTConfig:
        """The ``GPTConfig``; ``vocab_size`` fills a ``null`` vocabulary size."""
        from cocattn.model import GPTConfig

        values = dict(self.model)
        if values.get("vocab_size") is None:
            if vocab_size is None:
                raise bad_value("model.vocab_size", None, "an integer (or a data directory whose tokenizer gives it)")
            values["vocab_size"] = int(vocab_size)
        return GPTConfig.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "model": dict(self.model),
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
            "eval": dict(self.eval),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        """Build and validate a run config from a (parsed YAML/JSON) dict."""
        if not isinstance(d, dict):
            raise bad_value("config", d, "a mapping with sections model, data, train, eval")
        for key in d:
            if key not in SECTIONS:
                raise unknown_key("the run config", str(key), SECTIONS)
        if "model" not in d or not isinstance(d["model"], dict):
            raise bad_value("model", d.get("model"), "a mapping of GPTConfig fields (model: {...})")
        run = cls(
            model=_model_section(d["model"]),
            data=_section(DataConfig, d.get("data") or {}, "data"),
            train=_section(TrainConfig, d.get("train") or {}, "train"),
            eval=_eval_section(d.get("eval")),
            name=str(d.get("name") or ""),
            description=str(d.get("description") or ""),
        )
        run.validate()
        return run

    def validate(self) -> None:
        self.data.validate()
        self.train.validate()
        where = _non_finite(self.to_dict())  # inf / NaN: not JSON, so the run could not be saved
        if where is not None:
            raise bad_value(where[0], where[1], "a finite number")
        max_len = self.model.get("max_seq_len")
        if self.data.retrieval_fraction > 0 and isinstance(max_len, int):
            check(max_len >= 32, "model.max_seq_len", max_len, "at least 32 when data.retrieval_fraction > 0")

    def save(self, path: str | os.PathLike) -> None:
        """Write the config as JSON atomically."""
        from cocattn import files

        files.write_json(path, self.to_dict())


# ---------------------------------------------------------------------------------------------
# Sections and type coercion


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # a hint that cannot be resolved: fall back to the defaults' types
        return {f.name: Any for f in dataclasses.fields(cls)}


def coerce(name: str, value: Any, hint: Any) -> Any:
    """Coerce ``value`` to the type ``hint`` (int, float, bool, str, list[...], dict, Optional)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(name, value, arg)
            except ValueError:
                pass
        raise bad_value(name, value, " or ".join(_type_name(a) for a in args))
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise bad_value(name, value, "true or false")
    if hint is int:
        if isinstance(value, bool):
            raise bad_value(name, value, "an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, (float, str)):
            try:
                number = float(value)
            except ValueError:
                raise bad_value(name, value, "an integer") from None
            if math.isfinite(number) and number == int(number):
                return int(number)
        raise bad_value(name, value, "an integer")
    if hint is float:
        if isinstance(value, bool):
            raise bad_value(name, value, "a number")
        if isinstance(value, (int, float, str)):
            try:
                return float(value)
            except (ValueError, OverflowError):  # not a number, or an integer past float's range
                pass
        raise bad_value(name, value, "a number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise bad_value(name, value, "a string")
    if origin in (list, tuple) or hint in (list, tuple):
        if isinstance(value, str):
            try:
                value = loads_yaml(value, name)
            except yaml.YAMLError:
                raise bad_value(name, value, "a list, e.g. [0.9, 0.95]") from None
        if not isinstance(value, (list, tuple)):
            raise bad_value(name, value, "a list")
        inner = args[0] if args else Any
        return [coerce(f"{name}[{i}]", v, inner) for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise bad_value(name, value, "a mapping")
        return dict(value)
    return value


def _type_name(hint: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}.get(
        hint, str(hint)
    )


_Section = TypeVar("_Section", bound="DataclassInstance")


def _section(cls: type[_Section], values: Any, where: str) -> _Section:
    if not isinstance(values, dict):
        raise bad_value(where, values, f"a mapping of {where} settings")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in names:
            raise unknown_key(f"section {where!r}", str(key), names)
        kwargs[key] = coerce(f"{where}.{key}", value, hints.get(key, Any))
    return cls(**kwargs)


def _model_section(values: dict[str, Any]) -> dict[str, Any]:
    """Coerce model fields with GPTConfig's types and validate them with ``GPTConfig.from_dict``."""
    try:
        from cocattn.model import GPTConfig
    except ImportError:  # pragma: no cover - the model module is part of the package
        return dict(values)
    hints = _hints(GPTConfig)
    names = [f.name for f in dataclasses.fields(GPTConfig)]
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in names:
            raise unknown_key("section 'model'", str(key), names)
        if key == "vocab_size" and (value is None or str(value).lower() in ("null", "none", "auto")):
            out[key] = None
            continue
        out[key] = coerce(f"model.{key}", value, hints.get(key, Any))
    vocab_from_data = "vocab_size" in out and out["vocab_size"] is None
    probe = dict(out, vocab_size=256) if vocab_from_data else out
    full = GPTConfig.from_dict(probe).to_dict()  # validates (unknown keys, ranges, choices)
    if vocab_from_data:
        full["vocab_size"] = None
    return full


def _non_finite(value: Any, path: str = "") -> tuple[str, float] | None:
    """``(dotted key, value)`` of the first infinite or NaN float inside ``value``, else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        found = _non_finite(item, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}".lstrip("."))
        if found is not None:
            return found
    return None


def _eval_section(values: Any) -> dict[str, Any]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise bad_value("eval", values, "a mapping of evaluation settings")
    try:  # passed through as given, so at least it must be savable (no self-references, e.g. YAML `&a [*a]`)
        json.dumps(values)
    except (ValueError, TypeError, RecursionError) as err:
        raise bad_value("eval", values, f"JSON-like settings ({err})") from None
    return dict(values)


# ---------------------------------------------------------------------------------------------
# Files, presets and overrides


def preset_names() -> list[str]:
    """Names of the presets shipped in ``cocattn/configs``."""
    folder = resources.files("cocattn") / "configs"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_path(name: str) -> Path:
    """Path of a shipped preset."""
    check_choice("config", name, preset_names())
    return Path(str(resources.files("cocattn") / "configs" / f"{name}.yaml"))


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a YAML or JSON config file into a dict (no validation)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: not UTF-8 text ({err})"
        ) from None
    try:
        data = loads_json(text, str(path)) if path.suffix == ".json" else loads_yaml(text, str(path))
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping with sections {', '.join(SECTIONS[2:])}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'train.lr=3e-4'`` → ``(['train', 'lr'], 3e-4)`` (the value parsed as YAML)."""
    if "=" not in text:
        raise bad_value("override", text, "section.key=value, e.g. train.lr=3e-4")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) < 2 or not all(parts):
        raise bad_value("override", text, "section.key=value, e.g. train.lr=3e-4")
    try:
        value = loads_yaml(raw, f"override {text[:60]!r}") if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads 5e4 (no dot) as a string
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            pass
    return parts, value


def apply_overrides(d: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of the config dict with ``section.key=value`` overrides applied."""
    import copy

    out = copy.deepcopy(d)
    for text in overrides:
        parts, value = parse_override(text)
        if parts[0] not in SECTIONS:
            raise unknown_key("the run config", parts[0], SECTIONS)
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise bad_value("override", text, f"a key inside a mapping ({part!r} is not one)")
            node = child
        node[parts[-1]] = value
    return out


def load_config(name_or_path: str | os.PathLike | dict, overrides: Iterable[str] = ()) -> RunConfig:
    """Load a preset (by name), a YAML/JSON file (by path) or a dict, apply overrides, validate."""
    if isinstance(name_or_path, dict):
        d = name_or_path
    elif isinstance(name_or_path, RunConfig):
        d = name_or_path.to_dict()
    elif not isinstance(name_or_path, (str, os.PathLike)):
        raise bad_value("config", name_or_path, "a preset name, a config file path or a mapping")
    else:
        text = os.fspath(name_or_path)
        if Path(text).is_file():
            d = read_config_file(text)
        elif "/" in text or text.endswith((".yaml", ".yml", ".json")):
            raise FileNotFoundError(f"config file {text} does not exist")
        else:
            d = read_config_file(preset_path(text))
            d.setdefault("name", text)
    return RunConfig.from_dict(apply_overrides(d, overrides))


# ------------------------------------------------------------------------------------------------
# the eval section (cocattn reproduce)


@dataclass
class EvalConfig:
    """The ``eval`` section of a run configuration: what ``cocattn reproduce`` evaluates (and
    ``--plan`` counts); read from the preset, then overrides (:func:`eval_config`)."""

    kinds: list[str] = field(default_factory=lambda: ["rope", "coca", "coca-strict", "alibi"])
    """Attention kinds trained and compared (nope is cheap to add: ``eval.kinds=[...]``)."""
    multiples: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    """Evaluation lengths as multiples of the training length."""
    factors: list[float] = field(default_factory=lambda: [2.0, 4.0, 8.0])
    """Dynamic NTK factors evaluated besides the plain model (rotary kinds only)."""
    documents: int = 10
    """Held-out long documents for perplexity."""
    doc_tokens: int | None = None
    """Documents truncated to this many tokens (default: the longest length)."""
    stride: int | None = None
    """Sliding-window stride (default: the training length, as the paper's 512)."""
    batch_tokens: int | None = None
    """Perplexity windows, and passkey prompts of one token length, batched up to this many tokens
    (speed only; default one at a time)."""
    dtype: str = "float32"
    """Evaluation precision: ``float32``, or ``bfloat16`` / ``float16`` autocast (weights stay float32);
    ``auto`` = bfloat16 autocast on a GPU, float32 on CPU."""
    passkey_cases: int = 10
    """Passkey prompts per length."""
    passkey_new_tokens: int = 8
    """Tokens generated per passkey prompt."""
    retrieval_tasks: list[str] = field(default_factory=list)
    """Retrieval-suite tasks evaluated (docs/RETRIEVAL.md), e.g. ``[niah_single, niah_multikey]``;
    empty: none. Lengths shorter than a task's fixed text are left unmeasured, and said so."""
    retrieval_cases: int = 20
    """Cases per retrieval task and length."""
    data_preset: str = "pypi"
    """``cocattn data build`` preset used when no data directory is given."""
    vocab_size: int = 4096
    """Tokenizer size of the data build."""
    eval_documents: int = 100
    """Held-out documents the data build sets aside."""
    confidence: float = 0.95
    """Level of every confidence interval in the results and the report (``ci95``, the verdict)."""
    ci_resamples: int = 2000
    """Bootstrap resamples of the perplexity intervals and ratios (over documents)."""
    jobs: int | None = None
    """Kinds trained (and evaluated) at once, each in its own process with ``cores // jobs``
    threads; null: all of them on CPU (small models gain little from a second thread, and
    twice the work from a second process), one at a time on a GPU (cocattn.pipeline.workers)."""

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "EvalConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in values.items() if k in names}
        ignored = set(values) - names - {"lengths"}
        for key in ignored:
            raise unknown_key("eval (reproduce settings)", key, names | {"lengths"})
        s = cls(**known)
        for kind in s.kinds:
            check_choice("eval.kinds", kind, KINDS)
        check(all(isinstance(m, int) and m >= 1 for m in s.multiples), "eval.multiples", s.multiples, "integers >= 1")
        check(all(f > 1 for f in s.factors), "eval.factors", s.factors, "numbers > 1")
        check(s.documents >= 1, "eval.documents", s.documents, "an integer >= 1")
        check(s.passkey_cases >= 1, "eval.passkey_cases", s.passkey_cases, "an integer >= 1")
        check(s.retrieval_cases >= 1, "eval.retrieval_cases", s.retrieval_cases, "an integer >= 1")
        if s.retrieval_tasks:
            from cocattn.tasks.ruler import parse_tasks

            parse_tasks(list(s.retrieval_tasks))
        check_choice("eval.dtype", s.dtype, ("auto", "float32", "bfloat16", "float16"))
        check(
            s.jobs is None or (isinstance(s.jobs, int) and s.jobs >= 1), "eval.jobs", s.jobs, "null or an integer >= 1"
        )
        check(
            s.batch_tokens is None or (isinstance(s.batch_tokens, int) and s.batch_tokens >= 1),
            "eval.batch_tokens",
            s.batch_tokens,
            "null or a positive integer",
        )
        check_ci_options(s.confidence, s.ci_resamples, names=("eval.confidence", "eval.ci_resamples"))
        return s


def eval_config(run_config: RunConfig) -> EvalConfig:
    values = dict(run_config.eval or {})
    lengths = values.pop("lengths", None)
    settings = EvalConfig.from_dict(values)
    l0 = run_config.model.get("max_seq_len")
    if lengths and "multiples" not in (run_config.eval or {}) and l0:
        settings.multiples = [max(1, int(n) // int(l0)) for n in lengths]
    return settings


def eval_scalings(kind: str, factors: Iterable[float]) -> list[dict[str, Any] | None]:
    """The plain model (None), then dynamic NTK at each factor for a rotary kind."""
    if kind not in ROTARY_KINDS:
        return [None]
    return [None] + [{"rope_type": "dynamic", "factor": float(f)} for f in factors]


def scaling_slug(scaling: dict[str, Any] | None) -> str:
    """``plain`` or e.g. ``dynamic4``: the scaling's part of a result file name."""
    return "plain" if scaling is None else f"{scaling['rope_type']}{scaling['factor']:g}"
