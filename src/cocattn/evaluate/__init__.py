"""Length-extrapolation evaluation for cocattn checkpoints and Hugging Face causal LMs: the model
interface (:mod:`.protocol`, :func:`load_lm`), perplexity, passkey, the retrieval suite
(:mod:`.retrieval`), sweeps over RoPE scalings, attention and RoPE-anomaly analyses, the result
records (:mod:`.results`) and their intervals, and the evaluators' options as the commands pass
them (:mod:`.suite`). Protocols: docs/EVAL.md and docs/RETRIEVAL.md.
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
