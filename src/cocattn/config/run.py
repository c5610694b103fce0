"""A whole run's configuration (:class:`RunConfig`): the sections ``model``, ``data``, ``train`` and
``eval`` built from a parsed mapping, validated, and recorded back as that mapping."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

from cocattn._checks import bad_value, check, unknown_key
from cocattn.config.coerce import build_section, coerce, type_hints
from cocattn.config.evaluation import EvalConfig
from cocattn.config.sections import DataConfig, TrainConfig
from cocattn.model import GPTConfig

__all__ = ["RunConfig", "SECTIONS", "eval_config"]

SECTIONS = ("name", "description", "model", "data", "train", "eval")


@dataclass
class RunConfig:
    """A whole run: the model shape, the data, the training settings and (optional) evaluation."""

    model: GPTConfig
    """The model's shape and attention. With ``train.init_from`` only ``max_seq_len`` is used: the
    model comes from that directory."""
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Settings for the evaluation / reproduce stages (:func:`eval_config` checks them)."""
    name: str = ""
    """Preset or run name (recorded with results)."""
    description: str = ""
    vocab_from_data: bool = False
    """``model.vocab_size: null``: the data directory's tokenizer gives the vocabulary size
    (:meth:`model_config`); ``model.vocab_size`` then holds GPTConfig's default, not the model's."""

    def model_config(self, vocab_size: int | None = None) -> GPTConfig:
        """The ``GPTConfig`` (a copy); ``vocab_size`` fills a ``null`` vocabulary size."""
        if not self.vocab_from_data:
            return dataclasses.replace(self.model)
        if vocab_size is None:
            raise bad_value("model.vocab_size", None, "an integer (or a data directory whose tokenizer gives it)")
        return dataclasses.replace(self.model, vocab_size=int(vocab_size))

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a mapping of its sections (what :meth:`save` writes, :meth:`from_dict` reads)."""
        model = self.model.to_dict()
        if self.vocab_from_data:
            model["vocab_size"] = None
        return {
            "name": self.name,
            "description": self.description,
            "model": model,
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
            "eval": self.eval.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Build and validate a run config from a (parsed YAML/JSON) dict."""
        if not isinstance(d, dict):
            raise bad_value("config", d, "a mapping with sections model, data, train, eval")
        for key in d:
            if key not in SECTIONS:
                raise unknown_key("the run config", str(key), SECTIONS)
        if "model" not in d or not isinstance(d["model"], dict):
            raise bad_value("model", d.get("model"), "a mapping of GPTConfig fields (model: {...})")
        model, vocab_from_data = _model_section(d["model"])
        run = cls(
            model=model,
            data=build_section(DataConfig, d.get("data") or {}, "data"),
            train=build_section(TrainConfig, d.get("train") or {}, "train"),
            eval=EvalConfig.from_dict(d.get("eval")),
            name=str(d.get("name") or ""),
            description=str(d.get("description") or ""),
            vocab_from_data=vocab_from_data,
        )
        run.validate()
        return run

    def validate(self) -> None:
        self.data.validate()
        self.train.validate()
        where = _non_finite(self.to_dict())  # inf / NaN: not JSON, so the run could not be saved
        if where is not None:
            raise bad_value(where[0], where[1], "a finite number")
        max_len = self.model.max_seq_len
        if self.data.retrieval_fraction > 0:
            check(max_len >= 32, "model.max_seq_len", max_len, "at least 32 when data.retrieval_fraction > 0")

    def save(self, path: str | os.PathLike) -> None:
        """Write the config as JSON atomically."""
        from cocattn import files

        files.write_json(path, self.to_dict())


def eval_config(run_config: RunConfig) -> EvalConfig:
    """The checked ``eval`` settings of ``run_config`` (``lengths`` read against its training length).

    Returns:
        EvalConfig: a copy; ``ValueError`` naming a setting whose value is not valid.
    """
    return run_config.eval.resolved(run_config.model.max_seq_len)


def _model_section(values: dict[str, Any]) -> tuple[GPTConfig, bool]:
    """``(GPTConfig, vocab_from_data)``: model fields coerced with GPTConfig's types and validated by
    it; a ``null`` (or ``auto``) vocab_size is left to the data."""
    hints = type_hints(GPTConfig)
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
    if vocab_from_data:
        del out["vocab_size"]  # GPTConfig's default until the data gives it
    return GPTConfig.from_dict(out), vocab_from_data  # validates (unknown keys, ranges, choices)


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
