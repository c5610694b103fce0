"""The evaluators' keyword arguments from one place (``cocattn.evaluate.suite``): defaults equal to
the evaluators' own, and the values ``cocattn eval`` and ``cocattn reproduce`` each pass."""

from __future__ import annotations

import inspect

import pytest

from cocattn.cli import build_parser
from cocattn.cli.eval import _options, _passkey_fields, _ppl_fields
from cocattn.config import EvalConfig
from cocattn.evaluate.passkey import evaluate_passkey
from cocattn.evaluate.perplexity import evaluate_perplexity
from cocattn.evaluate.retrieval import evaluate_retrieval
from cocattn.evaluate.suite import SuiteOptions, reproduce_options


@pytest.mark.parametrize(
    "method, evaluator",
    [("perplexity", evaluate_perplexity), ("passkey", evaluate_passkey), ("retrieval", evaluate_retrieval)],
)
def test_every_default_is_the_evaluators_own(method, evaluator):
    kwargs = getattr(SuiteOptions(), method)()
    params = inspect.signature(evaluator).parameters
    assert set(kwargs) <= set(params)
    assert kwargs == {name: params[name].default for name in kwargs}


def test_reproduce_passes_its_eval_settings_and_skips_what_cannot_be_measured():
    settings = EvalConfig(batch_tokens=4096, passkey_cases=7, passkey_new_tokens=9, retrieval_cases=11)
    settings.confidence, settings.ci_resamples = 0.9, 500
    options = reproduce_options(settings, [128, 256, 512], 128)
    assert options.perplexity() == {
        "stride": 128,
        "max_tokens": 513,
        "batch_size": 1,
        "batch_tokens": 4096,
        "max_memory": None,
        "too_long": "skip",
        "confidence": 0.9,
        "ci_resamples": 500,
    }
    assert options.passkey() == {
        "cases": 7,
        "max_new_tokens": 9,
        "seed": 0,
        "max_memory": None,
        "batch_tokens": 4096,
        "confidence": 0.9,
    }
    assert options.retrieval()["cases"] == 11 and options.retrieval()["too_short"] == "skip"
    settings.stride, settings.doc_tokens = 64, 1000
    assert reproduce_options(settings, [128], 128).perplexity()["stride"] == 64
    assert reproduce_options(settings, [128], 128).perplexity()["max_tokens"] == 1000


def test_the_command_line_passes_its_options_and_the_paper_preset():
    args = build_parser().parse_args(
        ["eval", "sweep", "CKPT", "--preset", "paper", "--cases", "5", "--max-new-tokens", "7", "--seed", "3"]
        + ["--batch-tokens", "2048", "--max-memory", "1GB", "--skip-too-long", "--confidence", "0.9"]
    )
    options = _options(args, **_ppl_fields(args), **_passkey_fields(args))
    assert options.perplexity() == {
        "stride": 512,
        "max_tokens": 32768,
        "batch_size": 1,
        "batch_tokens": 2048,
        "max_memory": 10**9,
        "too_long": "skip",
        "confidence": 0.9,
        "ci_resamples": 2000,
    }
    assert options.passkey() == {
        "cases": 5,
        "max_new_tokens": 7,
        "seed": 3,
        "max_memory": 10**9,
        "batch_tokens": 2048,
        "confidence": 0.9,
    }
