"""The lab's studies (``extrapolation``, ``learning``, ``capacity``, ``remedies``; docs/LAB.md): a
grid of *units*, one attention kind x width x task setting x seed, each a model trained by
:func:`cocattn.lab.fit.fit` and scored at 1x .. 16x its training length, plain and with every
requested RoPE scaling (rotary kinds only). Each unit writes ``units/<name>.json`` as it finishes,
so a killed study resumes and a finished one is summarised again from its files alone.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cocattn._checks import bad_value, check, check_choice
from cocattn.attention import KINDS
from cocattn.attention.coca_options import CocaOptions
from cocattn.attention.kinds import is_coca, is_rope_free
from cocattn.lab.fit import Recipe, batch_seed, fit
from cocattn.lab.remedies import RELEASED, REMEDIES
from cocattn.lab.score import model_predictions, score_predictions
from cocattn.tasks.synthetic import TaskSpec, generate, make_task, min_length
from cocattn.model import GPTConfig
from cocattn.rope import ROPE_TYPES, rope_parameters
from cocattn.safeparse import loads_json

__all__ = ["STUDIES", "Study", "make_study", "parse_scaling", "unit_names", "run_unit", "UNITS_DIR"]

STUDIES = ("extrapolation", "learning", "capacity", "remedies")
UNITS_DIR = "units"
DEFAULT_KINDS = ("rope", "coca", "coca-strict", "alibi")


@dataclass(frozen=True)
class Study:
    """Everything a study's numbers depend on (recorded in ``lab.json``)."""

    study: str
    task: TaskSpec
    kinds: tuple[str, ...] = DEFAULT_KINDS
    seeds: int = 5
    widths: tuple[int, ...] = (64,)
    pairs: tuple[int, ...] = ()
    multiples: tuple[int, ...] = (1, 2, 4, 8, 16)
    scalings: tuple[str, ...] = ("plain", "dynamic:2", "dynamic:4", "dynamic:8")
    n_layer: int = 2
    n_head: int = 4
    mlp_ratio: float = 4.0
    init_std: float = 0.08
    """Weight init std for every kind alike. 0.08 rather than the GPT default 0.02: at 0.02 CoCA's
    cubic score starts flat and CoCA-Strict stays below 0.2 in-window after 1,000 steps (docs/LAB.md)."""
    eval_cases: int = 200
    recipe: Recipe = field(default_factory=Recipe)
    coca: dict[str, Any] = field(default_factory=dict)
    """CoCA's training options for every CoCA model (fields of :class:`CocaOptions`; ``--coca``)."""
    remedies: tuple[str, ...] = ()
    """Named option sets (:data:`cocattn.lab.remedies.REMEDIES`), each a model per CoCA kind and seed."""
    diagnostics: bool = False
    """Record :func:`cocattn.lab.diagnostics.diagnose` at every curve check."""

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["task"], data["recipe"] = self.task.to_dict(), self.recipe.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Study":
        fields = dict(data)
        fields["task"] = TaskSpec(**data["task"])
        recipe = dict(data["recipe"])
        recipe["betas"] = tuple(recipe["betas"])
        fields["recipe"] = Recipe(**recipe)
        for name in ("kinds", "widths", "pairs", "multiples", "scalings", "remedies"):
            if name in fields:
                fields[name] = tuple(fields[name])
        return cls(**fields)


def parse_scaling(text: str, train_length: int = 64) -> dict[str, Any] | None:
    """``plain`` (None) or ``TYPE:FACTOR`` (e.g. ``dynamic:4``) as ``rope_parameters``, checked."""
    if text == "plain":
        return None
    rope_type, _, factor = str(text).partition(":")
    accepted = (
        "'plain' or TYPE:FACTOR with TYPE one of "
        + ", ".join(t for t in ROPE_TYPES if t not in ("default", "longrope", "llama3"))
        + " (e.g. 'dynamic:4')"
    )
    if rope_type not in ROPE_TYPES or rope_type in ("default", "longrope", "llama3"):
        raise bad_value("--rope", text, accepted)
    try:
        value = float(factor)
    except ValueError:
        raise bad_value("--rope", text, accepted) from None
    check(value > 1.0, "--rope", text, "a factor > 1 (e.g. 'dynamic:4')")
    params = {"rope_type": rope_type, "factor": value, "original_max_position_embeddings": train_length}
    rope_parameters(params)  # the registry's own checks
    return params


def _positive_ints(name: str, values: Any) -> tuple[int, ...]:
    values = tuple(values)
    check(
        len(values) > 0 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values),
        name,
        list(values),
        "one or more positive integers",
    )
    return values


def make_study(study: str, **options: Any) -> Study:
    """A checked study with the defaults of its name; ``options`` are :class:`Study` fields (``task``
    may be a task name and ``task_options`` its settings; ``recipe_options`` change fields of the
    study's default :class:`Recipe`). Every refusal names the value."""
    check_choice("study", study, STUDIES)
    task_options = dict(options.pop("task_options", {}) or {})
    recipe_options = dict(options.pop("recipe_options", {}) or {})
    task_name = options.pop("task", None) or ("mqar" if study == "capacity" else "copy")
    defaults = _study_defaults(study)
    defaults.update({k: v for k, v in options.items() if v is not None})
    if recipe_options:
        defaults["recipe"] = dataclasses.replace(defaults.get("recipe", Recipe()), **recipe_options)
    if study == "capacity":
        task_options.setdefault("vocab_size", 128)  # 63 keys: room for every pair count
        task_options.setdefault("pairs", max(defaults.get("pairs") or (8,)))
    if task_name in ("copy", "copy-fixed"):
        task_options.setdefault("segment", 2)  # marker + 2 tokens: every kind learns it in the budget (docs/LAB.md)
    train_length = int(task_options.pop("train_length", defaults.pop("train_length", 64)))
    task = make_task(task_name, train_length=train_length, **task_options)
    s = Study(study=study, task=task, **defaults)
    _check_study(s)
    return s


def _study_defaults(study: str) -> dict[str, Any]:
    if study == "learning":
        return {"multiples": (1,), "scalings": ("plain",), "recipe": Recipe(curve_every=50), "diagnostics": True}
    if study == "remedies":
        return {
            "kinds": ("rope", "coca", "coca-strict"),
            "remedies": tuple(REMEDIES),
            "init_std": 0.02,
            "scalings": ("plain",),
            "recipe": Recipe(steps=600, curve_every=25),
            "diagnostics": True,
        }
    if study == "capacity":
        return {
            "widths": (16, 32, 64),
            "pairs": (2, 4, 8),
            "train_length": 32,
            "n_head": 2,
            "multiples": (1,),
            "scalings": ("plain",),
            "seeds": 3,
            "kinds": ("rope", "coca", "coca-strict"),
            "recipe": Recipe(steps=1000, curve_every=100),
        }
    return {}


def _check_study(s: Study) -> None:
    for kind in s.kinds:
        check_choice("--kinds", kind, KINDS)
    check(
        len(s.kinds) > 0 and len(set(s.kinds)) == len(s.kinds),
        "--kinds",
        list(s.kinds),
        "one or more distinct attention kinds",
    )
    check(isinstance(s.seeds, int) and s.seeds >= 1, "--seeds", s.seeds, "a positive integer")
    check(isinstance(s.init_std, (int, float)) and 0 < s.init_std < 10, "--init-std", s.init_std, "a number in (0, 10)")
    check(isinstance(s.eval_cases, int) and s.eval_cases >= 1, "--eval-cases", s.eval_cases, "a positive integer")
    for name in s.remedies:
        check_choice("--remedies", name, tuple(REMEDIES))
    try:
        CocaOptions(**s.coca)
    except TypeError:
        raise bad_value(
            "--coca", s.coca, f"settings among {[f.name for f in dataclasses.fields(CocaOptions)]}"
        ) from None
    _positive_ints("--widths", s.widths)
    _positive_ints("--multiples", s.multiples)
    check(1 in s.multiples, "--multiples", list(s.multiples), "a list that includes 1 (the training length)")
    for w in s.widths:
        check(
            w % s.n_head == 0 and (w // s.n_head) % 2 == 0,
            "--widths",
            w,
            f"a multiple of 2 x n_head={s.n_head} (an even head_dim)",
        )
    if s.pairs:
        _positive_ints("--pairs", s.pairs)
        check(s.task.name == "mqar", "--pairs", list(s.pairs), "pair counts only with the mqar task")
        for p in s.pairs:
            _check_pairs(s, p)
    scalings = [parse_scaling(x, s.task.train_length) for x in s.scalings]
    if any(x is not None for x in scalings) and all(is_rope_free(k) for k in s.kinds):
        raise bad_value(
            "--rope",
            list(s.scalings),
            f"no RoPE scaling for kinds {list(s.kinds)}: none of them has a rotary embedding ('plain' only)",
        )
    for m in s.multiples:
        min_length(s.task, s.task.train_length * m)


def _check_pairs(s: Study, pairs: int) -> None:
    spec = dataclasses.replace(s.task, pairs=pairs)
    make_task(spec.name, **{k: v for k, v in spec.to_dict().items() if k != "name"})


@dataclass(frozen=True)
class Unit:
    """One model of a study."""

    kind: str
    width: int
    pairs: int | None
    seed: int
    remedy: str = ""
    """A name of :data:`~cocattn.lab.remedies.REMEDIES` (CoCA kinds of a remedies study; "" otherwise)."""

    @property
    def name(self) -> str:
        pairs = f"-p{self.pairs}" if self.pairs is not None else ""
        remedy = f"-{self.remedy}" if self.remedy and self.remedy != RELEASED else ""
        return f"{self.kind}{remedy}-w{self.width}{pairs}-s{self.seed}"


def units(s: Study) -> list[Unit]:
    """The study's models, seeds innermost-last so that an interrupted study has whole kinds."""
    pairs: tuple[int | None, ...] = s.pairs or (None,)
    return [
        Unit(k, w, p, seed, r)
        for seed in range(s.seeds)
        for w in s.widths
        for p in pairs
        for k in s.kinds
        for r in (s.remedies if s.remedies and is_coca(k) else ("",))
    ]


def unit_names(s: Study) -> list[str]:
    return [u.name for u in units(s)]


def _model_config(s: Study, u: Unit) -> GPTConfig:
    coca = {**s.coca, **(REMEDIES[u.remedy] if u.remedy else {})}
    return GPTConfig(
        **{f"coca_{name}": value for name, value in coca.items()},
        vocab_size=s.task.vocab_size,
        n_layer=s.n_layer,
        n_head=s.n_head,
        n_embd=u.width,
        max_seq_len=s.task.train_length,
        attention=u.kind,
        mlp_ratio=s.mlp_ratio,
        init_std=s.init_std,
    )


def evaluate_unit(model: Any, s: Study, u: Unit, task: TaskSpec) -> list[dict[str, Any]]:
    """Score ``model`` at every multiple and scaling of the study (rotary kinds only get scalings)."""
    rows = []
    for text in s.scalings:
        scaling = parse_scaling(text, task.train_length)
        if scaling is not None and is_rope_free(u.kind):
            continue
        model.set_rope_parameters(scaling)
        for m in s.multiples:
            length = task.train_length * m
            batch = generate(task, length, s.eval_cases, batch_seed(u.seed, 2, length))
            scored = score_predictions(batch, model_predictions(model, batch))
            scored.pop("case_correct")
            rows.append({"scaling": text, "multiple": m, "length": length, **scored})
    model.set_rope_parameters(None)
    return rows


def run_unit(study: dict[str, Any], unit: dict[str, Any], out: str) -> dict[str, Any]:
    """Train and score one unit (a worker process's job); writes and returns its record."""
    from cocattn._malloc import keep_freed_memory

    keep_freed_memory()  # a spawned worker: glibc keeps freed blocks (no mmap churn per step)
    s = Study.from_dict(study)
    u = Unit(**unit)
    task = dataclasses.replace(s.task, pairs=u.pairs) if u.pairs is not None else s.task
    cpu0 = time.process_time()
    fitted = fit(
        _model_config(s, u), task, s.recipe, seed=u.seed, on_step=_progress_writer(out, u), diagnostics=s.diagnostics
    )
    record = {
        "unit": u.name,
        **dataclasses.asdict(u),
        "train_seconds": fitted.seconds,
        "final_loss": fitted.final_loss,
        "curve": fitted.curve,
        "results": evaluate_unit(fitted.model, s, u, task),
        "cpu_seconds": time.process_time() - cpu0,
        "threads": _threads(),
    }
    from cocattn import files

    files.write_json(Path(out) / UNITS_DIR / f"{u.name}.json", record)
    return record


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _progress_writer(out: str, u: Unit) -> Callable[[int, float], None]:
    """Every 50 steps, ``units/<name>.progress`` holds ``step loss`` (read by the parent)."""
    path = Path(out) / UNITS_DIR / f"{u.name}.progress"

    def on_step(step: int, loss: float) -> None:
        if step % 50 == 0:
            tmp = path.with_suffix(".progress.tmp")
            tmp.write_text(f"{step} {loss:.4f}\n")
            os.replace(tmp, path)

    return on_step


def load_units(out: Path) -> dict[str, dict[str, Any]]:
    """The finished units' records under ``out``, by name."""
    found = {}
    for path in sorted((out / UNITS_DIR).glob("*.json")):
        found[path.stem] = loads_json(path.read_text(), str(path))
    return found
