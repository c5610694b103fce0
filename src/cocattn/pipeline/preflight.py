"""What ``cocattn reproduce`` checks before any work, and what ``--plan`` refuses the same way: the
whole plan (:func:`check_plan`: every evaluation length holds the passkey prompt) and the finished
stages in ``--out`` (:func:`check_stages`: built with this run's settings, else refused naming the
setting). docs/TRAINING.md, "Checks before any work", has the details."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cocattn import files
from cocattn._checks import bad_value
from cocattn.config import EvalConfig, RunConfig, eval_config, load_config

__all__ = ["check_plan", "check_stages", "record_eval_stage", "default_data_dir", "STAGES_FILE"]

STAGES_FILE = "stages.json"
# settings that change how a run is watched, not what it computes
_UNTRACKED_TRAIN = frozenset(
    {"progress", "threads", "tensorboard", "compile", "device", "log_interval", "keep_checkpoints"}
)
_UNTRACKED_EVAL = frozenset({"jobs", "batch_tokens"})  # how fast, not what is measured


def default_data_dir(settings: EvalConfig) -> Path:
    """Where ``reproduce`` builds (or finds) the data of a preset without ``--data``."""
    root = Path(os.environ.get("COCATTN_CACHE") or Path.home() / ".cache" / "cocattn")
    return root / "data" / f"{settings.data_preset}-v{settings.vocab_size}"


def data_dir_for(cfg: RunConfig, data_dir: str | os.PathLike | None) -> Path:
    """The data directory a run uses: ``--data``, else ``data.dir``, else :func:`default_data_dir`."""
    return Path(data_dir or cfg.data.dir or default_data_dir(eval_config(cfg)))


def _shortest_passkey(data_dir: Path | None, length: int, settings: EvalConfig) -> tuple[int, str]:
    """Fewest tokens the passkey prompts at ``length`` need, and how that was counted."""
    from cocattn.evaluate.passkey import shortest_prompt

    if data_dir is not None and (Path(data_dir) / "tokenizer.json").is_file():
        from cocattn.data.read.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(data_dir)

        def encode(text: str) -> list[int]:
            return list(tokenizer.encode(text, add_special_tokens=False).ids)

        return shortest_prompt(encode, length, settings.passkey_cases), f"with the tokenizer of {data_dir}"
    # shortest_prompt reads only how many tokens encode gives: here, words
    words = shortest_prompt(str.split, length, settings.passkey_cases)  # type: ignore[arg-type]
    return words, "at least one token per word"


def check_plan(cfg: RunConfig, data_dir: str | os.PathLike | None) -> EvalConfig:
    """Refuse a run whose evaluation cannot run: an evaluation length (the training length times
    ``eval.multiples``) too short for the passkey prompt without filler, counted with the data's
    tokenizer (before the data exists, one token per word: a lower bound).

    Returns:
        EvalConfig: the run's checked evaluation settings.
    """
    settings = eval_config(cfg)
    l0 = int(cfg.model.max_seq_len)
    for multiple in sorted(settings.multiples):
        n = l0 * multiple
        shortest, how = _shortest_passkey(Path(data_dir) if data_dir else None, n, settings)
        if n < shortest:
            raise bad_value(
                "model.max_seq_len",
                l0,
                f"a training length whose evaluation lengths hold the passkey prompt: {l0} × {multiple} = {n} "
                f"tokens, but the prompt without filler takes {shortest} ({how}); raise model.max_seq_len or "
                "drop the small eval.multiples",
            )
    return settings


def _differences(recorded: dict[str, Any], planned: dict[str, Any], sections: tuple[str, ...]) -> list[str]:
    """``section.key: recorded → planned`` for every tracked setting that differs."""
    out = []
    for section in sections:
        old, new = recorded.get(section) or {}, planned.get(section) or {}
        for key in sorted(set(old) | set(new)):
            if (section, key) == ("data", "dir") or key in {"train": _UNTRACKED_TRAIN, "eval": _UNTRACKED_EVAL}.get(
                section, ()
            ):
                continue
            if section == "model" and key == "vocab_size" and new.get(key) is None:
                continue  # from the data: the data stage's own business
            if old.get(key) != new.get(key):
                out.append(f"{section}.{key} {old.get(key)!r} → {new.get(key)!r}")
    return out


def _refuse(where: Path, changes: list[str], out: Path) -> None:
    raise bad_value(
        "reproduce",
        str(out),
        f"the settings {where} was built with, or another --out: {'; '.join(changes[:6])}"
        f"{' …' if len(changes) > 6 else ''}. A finished stage is never rebuilt with other settings behind "
        f"your back; use another --out, or remove {out / 'runs'} and {out / 'results'} (and {out / STAGES_FILE}) "
        "to train and evaluate again",
    )


def _eval_record(cfg: RunConfig, settings: EvalConfig) -> dict[str, Any]:
    return {"eval": {**cfg.to_dict()["eval"], "max_seq_len": int(cfg.model.max_seq_len)}}


def check_stages(out: str | os.PathLike, preset: str, overrides: list[str], cfg: RunConfig) -> None:
    """Refuse a rerun whose finished (or started) stages in ``out`` were built with other settings."""
    out = Path(out)
    settings = eval_config(cfg)
    for kind in settings.kinds:
        run_dir = out / "runs" / kind
        try:
            recorded = files.load_json(run_dir / "config.json")
        except (OSError, ValueError):
            continue  # not started: nothing to compare
        planned = load_config(preset, list(overrides) + [f"model.attention={kind}"]).to_dict()
        changes = _differences(recorded if isinstance(recorded, dict) else {}, planned, ("model", "data", "train"))
        if changes:
            _refuse(run_dir, changes, out)
    try:
        stages = files.load_json(out / STAGES_FILE)
    except (OSError, ValueError):
        return
    changes = _differences(stages if isinstance(stages, dict) else {}, _eval_record(cfg, settings), ("eval",))
    if changes and any((out / "results").glob("*.json")):
        _refuse(out / "results", changes, out)


def record_eval_stage(out: str | os.PathLike, cfg: RunConfig) -> None:
    """Record the settings the evaluation stage runs with (``OUT/stages.json``)."""
    files.write_json(Path(out) / STAGES_FILE, _eval_record(cfg, eval_config(cfg)))
