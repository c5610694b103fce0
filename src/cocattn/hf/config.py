"""``CocaLlamaConfig``: a LLaMA configuration whose attention is CoCA (model type ``coca_llama``).

Everything of :class:`transformers.LlamaConfig` applies unchanged (sizes, GQA, ``rope_parameters``
with any scaling transformers names); ``coca_variant`` picks the CoCA score:

- ``"slack"``: the paper's eq. 10 and its released code (the headline tables);
- ``"strict"``: the paper's eq. 7-9, purely relative in m - n.

CoCA ties each rotary plane of T to one number, so ``head_dim`` must be even.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import LlamaConfig

from cocattn._checks import check, check_choice
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

    def __post_init__(self, **kwargs) -> None:
        check_choice("coca_variant", self.coca_variant, COCA_VARIANTS)
        super().__post_init__(**kwargs)
        check(
            self.head_dim % 2 == 0,
            "head_dim",
            self.head_dim,
            "an even number (CoCA ties the two halves of each rotary plane of T)",
        )
