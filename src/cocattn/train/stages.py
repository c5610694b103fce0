"""The paper's three stages of continued training after dropping CoCA into a pretrained model
(§3.2, LLaMA-7B): 1, the T projection only; 2, the Q, T and V projections; 3, all weights.

Works on any model whose attention layers name their projections ``q_proj``, ``t_proj`` and
``v_proj``: :class:`~cocattn.hf.CocaLlamaForCausalLM` and the native :class:`cocattn.model.GPT`
with CoCA attention. It needs torch only (no transformers), so the trainer freezes a native model
without importing transformers. (Until 0.1.0 this was ``cocattn.hf.stages``; the old names warn.)
"""

from __future__ import annotations

from torch import nn

from cocattn._checks import bad_value, check_choice

__all__ = ["STAGES", "trainable_parameters_for_stage", "stage_of_parameter"]

# Projection module names trained in each stage (None: every weight).
STAGES: dict[int, tuple[str, ...] | None] = {1: ("t_proj",), 2: ("q_proj", "t_proj", "v_proj"), 3: None}


# Parameters that belong to an attention layer itself rather than to a projection, and the
# projection they train with: CoCA's per-head score scale is a factor on Q (``coca_score_scale``).
TRAINS_WITH = {"score_log_scale": "q_proj"}


def stage_of_parameter(name: str, stage: int) -> bool:
    """Whether the parameter called ``name`` trains in ``stage``."""
    modules = STAGES[stage]
    if modules is None:
        return True
    parts = name.split(".")
    if parts[-1] in TRAINS_WITH:
        return TRAINS_WITH[parts[-1]] in modules
    return any(part in modules for part in parts[:-1])


def trainable_parameters_for_stage(model: nn.Module, stage: int) -> list[nn.Parameter]:
    """Set ``requires_grad`` for ``stage`` (1, 2 or 3) on every parameter of ``model`` and return
    the trainable ones (give them to the optimiser).

    Frozen parameters get no gradient, so no optimiser step (weight decay included) moves them.
    A model without T projections (not CoCA) is refused for stages 1 and 2.
    """
    check_choice("stage", str(stage), [str(s) for s in STAGES])
    stage = int(stage)
    names = [name for name, _ in model.named_parameters()]
    if STAGES[stage] is not None and not any(".t_proj." in f".{n}" for n in names):
        raise bad_value("model", type(model).__name__, f"a CoCA model with t_proj projections for stage {stage}")
    trainable = []
    for name, param in model.named_parameters():
        param.requires_grad_(stage_of_parameter(name, stage))
        if param.requires_grad:
            trainable.append(param)
    return trainable
