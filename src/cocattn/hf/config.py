"""``CocaLlamaConfig``: a LLaMA configuration whose attention is CoCA (model type ``coca_llama``).

Everything of :class:`transformers.LlamaConfig` applies unchanged (sizes, GQA, ``rope_parameters``
with any scaling transformers names); ``coca_variant`` picks the CoCA score:

- ``"slack"``: the paper's eq. 10 and its released code (the headline tables);
- ``"strict"``: the paper's eq. 7-9, purely relative in m - n.

CoCA ties each rotary plane of T to one number, so ``head_dim`` must be even. The ``coca_*``
fields are CoCA's training options, as in cocattn's ``GPTConfig``
(:class:`cocattn.attention.coca_options.CocaOptions`): ``coca_tau``, ``coca_t_init_std``,
``coca_q_init_std``, ``coca_t_bias``, ``coca_score_scale``, ``coca_t_lr_mult``.
"""

from __future__ import annotations

from typing import Any, cast

from huggingface_hub.dataclasses import strict
from transformers import LlamaConfig

from cocattn._checks import check, check_choice
from cocattn.attention.coca_options import CocaOptions
from cocattn.attention.kinds import VARIANTS

COCA_VARIANTS = VARIANTS  # CoCA's variants, from the kinds registry


@strict
class CocaLlamaConfig(LlamaConfig):
    """LLaMA configuration with the key projection replaced by CoCA's T projection."""

    model_type = "coca_llama"
    base_model_tp_plan = {
        "layers.*.self_attn.q_proj": "colwise",
        "layers.*.self_attn.t_proj": "colwise",
        "layers.*.self_attn.v_proj": "colwise",
        "layers.*.self_attn.o_proj": "rowwise",
        "layers.*.mlp.gate_proj": "colwise",
        "layers.*.mlp.up_proj": "colwise",
        "layers.*.mlp.down_proj": "rowwise",
    }

    coca_variant: str = "slack"
    coca_tau: str = "relu"
    coca_t_init_std: float | None = None
    coca_q_init_std: float | None = None
    coca_t_bias: float | None = None
    coca_score_scale: float | None = None
    coca_t_lr_mult: float = 1.0

    def __post_init__(self, **kwargs: Any) -> None:
        check_choice("coca_variant", self.coca_variant, COCA_VARIANTS)
        CocaOptions.from_prefixed(self)  # checks the coca_* fields
        super().__post_init__(**kwargs)
        check(
            cast(int, self.head_dim) % 2 == 0,  # set by LlamaConfig.__post_init__
            "head_dim",
            self.head_dim,
            "an even number (CoCA ties the two halves of each rotary plane of T)",
        )

    @property
    def coca_options(self) -> CocaOptions:
        """The ``coca_*`` fields as :class:`~cocattn.attention.coca_options.CocaOptions`."""
        return CocaOptions.from_prefixed(self)
