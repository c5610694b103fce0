"""Length-extrapolation evaluation for cocattn checkpoints and Hugging Face causal LMs.

- :mod:`.protocol`: the interface every evaluator uses (``LanguageModel``);
- :mod:`.lm`: ``load_lm``, a model directory through its adapter (:mod:`.lm_native`, :mod:`.lm_hf`);
- :mod:`.perplexity`: sliding-window, token-weighted perplexity;
- :mod:`.passkey`: the paper's passkey retrieval;
- :mod:`.retrieval`: the RULER-style retrieval suite (tasks in :mod:`cocattn.tasks.ruler`);
- :mod:`.sweep`: both over RoPE scalings;
- :mod:`.attention`, :mod:`.rope_anomaly`: attention at extrapolated lengths, the RoPE anomaly;
- :mod:`.results`: the result JSON schema that ``cocattn report`` and ``cocattn reproduce`` read.
"""

from cocattn.evaluate.documents import load_documents
from cocattn.evaluate.lm import load_lm
from cocattn.evaluate.lm_hf import HFLanguageModel
from cocattn.evaluate.lm_native import CocattnLanguageModel
from cocattn.evaluate.passkey import build_prompt, evaluate_passkey
from cocattn.evaluate.perplexity import evaluate_perplexity, window_plan
from cocattn.evaluate.protocol import LanguageModel
from cocattn.evaluate.results import SCHEMA, read_results, write_results
from cocattn.evaluate.retrieval import effective_length, evaluate_retrieval
from cocattn.evaluate.scaling import DEFAULT_SWEEP, parse_scaling, scaling_name
from cocattn.evaluate.sweep import evaluate_sweep

__all__ = [
    "LanguageModel",
    "CocattnLanguageModel",
    "HFLanguageModel",
    "load_lm",
    "load_documents",
    "evaluate_perplexity",
    "window_plan",
    "evaluate_passkey",
    "build_prompt",
    "evaluate_sweep",
    "evaluate_retrieval",
    "effective_length",
    "parse_scaling",
    "scaling_name",
    "DEFAULT_SWEEP",
    "read_results",
    "write_results",
    "SCHEMA",
]
