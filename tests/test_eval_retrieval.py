"""The retrieval suite: prompts at exact token lengths for two tokenizers, needles where asked,
scoring on right, wrong and partly right answers (a scripted model that reads the prompt),
effective lengths on hand-made curves, per-case JSON round-trips, clear errors, and the CLI."""

from __future__ import annotations

import collections
import functools
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cocattn.evaluate.protocol import LanguageModel
from cocattn.evaluate.results import read_results, write_results
from cocattn.evaluate.retrieval import (
    DEFAULT_TOLERANCE,
    CaseRecord,
    Haystack,
    build_cwe_prompt,
    build_prompt,
    effective_length,
    evaluate_retrieval,
)
from cocattn.evaluate.stats import wilson_interval
from cocattn.tasks.ruler import KEY_WORDS, TASK_NAMES, parse_task, parse_tasks, sample_case, score_answer
from helpers.eval_models import text, tokenizer

PYPI_TOKENIZER = Path("/work/data/pypi/tokenizer.json")


@functools.lru_cache(maxsize=None)
def digit_tokenizer():
    """A second, different BPE built here: 600 tokens, digits split one by one, whitespace split."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(), pre_tokenizers.Digits(individual_digits=True)]
    )
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<unk>", "<|endoftext|>"],
        show_progress=False,
        initial_alphabet=list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,?:;=-'\"!\n"),
    )
    tok.train_from_iterator([text(4000, seed=s) for s in range(3)] + [" ".join(KEY_WORDS)] * 3, trainer=trainer)
    return tok


class ScriptedLM(LanguageModel):
    """A "model" with a real tokenizer whose reply is a function of the prompt text."""

    kind = "scripted"

    def __init__(self, tok, reply, training_length: int = 128, name: str = "scripted"):
        self.tok, self.reply, self.training_length, self.name = tok, reply, training_length, name
        self.scaling = None

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(list(ids))

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def dims(self) -> dict[str, int]:
        return {"params": 1, "vocab": self.tok.get_vocab_size(), "hidden": 1, "layers": 1, "heads": 1, "ffn": 1}

    def _apply_scaling(self, params) -> None:
        self.scaling = params

    def generate_greedy_batch(self, rows, max_new_tokens, *, stop_at_eos=True):
        return [self.encode(self.reply(self.decode(list(r))))[:max_new_tokens] for r in rows]


def _needles(prompt: str) -> dict[str, list[str]]:
    found = collections.defaultdict(list)
    for key, value in re.findall(r"One of the special numbers for (\w+) is (\d+)\.", prompt):
        found[key].append(value)
    return found


def _asked(prompt: str) -> list[str]:
    question = prompt.rsplit("\n", 1)[-1]
    keys = re.search(r"special numbers? for (.+?)\?", question).group(1)
    return re.split(r", | and ", keys)


def oracle(prompt: str) -> str:
    """Reads the prompt and answers it: what a perfect model says."""
    question = prompt.rsplit("\n", 1)[-1]
    if "special number" in question:
        values = _needles(prompt)
        return " " + ", ".join(v for k in _asked(prompt) for v in values[k]) + ".\n"
    if question.startswith("Which variables"):
        value = re.search(r"the value (\d+)\?", question).group(1)
        links = dict(re.findall(r"VAR (\w+) = VAR (\w+)\.", prompt))
        chain = [name for name, v in re.findall(r"VAR (\w+) = (\d+)\.", prompt) if v == value]
        while True:
            nxt = [a for a, b in links.items() if b == chain[-1]]
            if not nxt:
                break
            chain.append(nxt[0])
        return " " + ", ".join(chain) + ".\n"
    n = int(re.search(r"the (\d+) most common", question).group(1))
    words = re.findall(r"\d+\. (\w+)", prompt.split("\n")[1])
    return " " + ", ".join(w for w, _ in collections.Counter(words).most_common(n)) + ".\n"


def distractor(prompt: str) -> str:
    """Answers niah_multikey with the number of a key that was not asked."""
    asked = _asked(prompt)
    other = [v for k, vs in _needles(prompt).items() if k not in asked for v in vs]
    return " " + other[0] + ".\n"


def half_values(prompt: str) -> str:
    """Gives the first half of the asked key's values (niah_multivalue; the first half of the answer elsewhere)."""
    if "special number" not in prompt.rsplit("\n", 1)[-1]:
        items = oracle(prompt).strip(" .\n").split(", ")
        return " " + ", ".join(items[: len(items) // 2]) + ".\n"
    values = [v for k in _asked(prompt) for v in _needles(prompt)[k]]
    return " " + ", ".join(values[: len(values) // 2]) + ".\n"


def _tokenizers():
    out = [pytest.param(tokenizer(), id="bpe300"), pytest.param(digit_tokenizer(), id="bpe600-digits")]
    if PYPI_TOKENIZER.is_file():
        from tokenizers import Tokenizer

        out.append(pytest.param(Tokenizer.from_file(str(PYPI_TOKENIZER)), id="pypi-bpe4096"))
    return out


SPECS = {
    "niah_single": "niah_single",
    "niah_multikey": "niah_multikey",
    "niah_multivalue": "niah_multivalue",
    "niah_multiquery": "niah_multiquery",
    "vt": "vt",
    "cwe": "cwe:common=4:common_repeats=3",
}


def _build(lm, task: str, length: int, depth: float = 0.5, seed: int = 0, haystack=None):
    spec = parse_task(SPECS.get(task, task))
    rng = random.Random(seed)
    if spec.family == "cwe":
        return build_cwe_prompt(lm, spec, length, rng)
    return build_prompt(lm, sample_case(spec, rng, depth), length, haystack or Haystack(), rng)


# ---------------------------------------------------------------------------------------------
# Prompts


@pytest.mark.parametrize("tok", _tokenizers())
@pytest.mark.parametrize("task", TASK_NAMES)
@pytest.mark.parametrize("length", [384, 1000, 2500])
def test_prompt_hits_the_length_with_the_gold_answer(tok, task, length):
    lm = ScriptedLM(tok, oracle)
    for seed in range(3):
        prompt = _build(lm, task, length, depth=0.2 + 0.3 * seed, seed=seed)
        assert length - DEFAULT_TOLERANCE <= prompt.tokens <= length, (seed, prompt.tokens)
        assert prompt.ids == lm.encode(prompt.text)
        assert lm.decode(prompt.answer_ids).strip() == prompt.answer
        assert oracle(prompt.text).strip().rstrip(".") == prompt.answer  # the prompt holds the answer
        assert score_answer(oracle(prompt.text), prompt.expected, prompt.distractors)["correct"]


@pytest.mark.parametrize("tok", _tokenizers())
def test_needles_sit_at_the_requested_depths(tok):
    lm = ScriptedLM(tok, oracle)
    spec = parse_task("niah_single")
    positions = []
    for depth in (0.0, 0.25, 0.5, 0.75, 1.0):
        rng = random.Random(1)
        prompt = build_prompt(lm, sample_case(spec, rng, depth), 1500, Haystack(), rng)
        assert prompt.depth == pytest.approx(depth, abs=0.02)
        (position,) = prompt.needle_positions
        assert lm.decode(prompt.ids[position:]).lstrip().startswith("One of the special numbers for")
        positions.append(position)
    assert positions == sorted(positions) and positions[-1] - positions[0] > 1200
    # several needles: each at its recorded position and depth, in depth order; the anchor at the case's depth
    rng = random.Random(2)
    case = sample_case(parse_task("niah_multikey"), rng, 0.6)
    prompt = build_prompt(lm, case, 2000, Haystack(), rng)
    for needle, position in zip(case.needles, prompt.needle_positions):
        assert lm.decode(prompt.ids[position:]).lstrip().startswith(needle.text)
    assert prompt.needle_depths == sorted(prompt.needle_depths)
    assert prompt.depth == pytest.approx(0.6, abs=0.02)
    for needle, depth in zip(case.needles, prompt.needle_depths):
        assert depth == pytest.approx(needle.depth, abs=0.02)


def test_variable_chain_keeps_its_order():
    lm = ScriptedLM(tokenizer(), oracle)
    for seed in range(5):
        rng = random.Random(seed)
        case = sample_case(parse_task("vt:chains=2"), rng, 0.9)
        prompt = build_prompt(lm, case, 800, Haystack(), rng)
        chain = re.findall(r"VAR (\w+) = (?:VAR )?\w+\.", prompt.text)
        assert [c for c in chain if c in prompt.expected] == prompt.expected
        assert len(prompt.distractors) == 5 and oracle(prompt.text).strip(" .\n") == prompt.answer


def test_corpus_haystack_reads_the_documents():
    docs = [text(400, seed=s) for s in range(3)]
    lm = ScriptedLM(tokenizer(), oracle)
    hay = Haystack("corpus", docs)
    prompt = _build(lm, "niah_multikey", 1200, haystack=hay, seed=4)
    assert prompt.haystack.startswith("document ") and not prompt.haystack_wrapped
    filler = re.sub(r"One of the special numbers for \w+ is \d+\. ?", "", prompt.text.split("\n")[1])
    assert filler[:60] in " ".join(" ".join(d.split()) for d in docs + docs)
    assert 1200 - DEFAULT_TOLERANCE <= prompt.tokens <= 1200
    short = Haystack("corpus", ["Only a few words here. And a second sentence."])
    prompt = _build(lm, "niah_single", 600, haystack=short)
    assert prompt.haystack_wrapped and 600 - DEFAULT_TOLERANCE <= prompt.tokens <= 600


# ---------------------------------------------------------------------------------------------
# Scoring


def test_score_answer_right_wrong_partial_and_distractors():
    right = score_answer(" 12345, 67890.", ["12345", "67890"])
    assert right["correct"] and right["recall"] == 1.0 and right["found"] == [True, True]
    partial = score_answer(" 12345 and then nothing", ["12345", "67890"])
    assert not partial["correct"] and partial["recall"] == 0.5
    assert score_answer(" 123456", ["12345"])["recall"] == 0.0  # whole tokens only
    assert score_answer(" hsrel, TPUSC", ["HSREL", "TPUSC"])["correct"]  # case-insensitive
    assert not score_answer("\n\n 99999\n12345", ["12345"])["correct"]  # the first line of text is the answer
    spam = score_answer(" 12345, 22222, 33333", ["12345"], ["22222", "33333", "44444"])
    assert spam["recall"] == 1.0 and not spam["correct"] and spam["distractors_found"] == ["22222", "33333"]


def _evaluate(reply, tasks, lengths=(300, 600), cases=6, tok=None):
    lm = ScriptedLM(tok or tokenizer(), reply, training_length=300)
    return evaluate_retrieval(lm, tasks, list(lengths), cases=cases, progress=False)


def test_a_model_that_reads_the_prompt_scores_one_on_every_task():
    records = _evaluate(oracle, [SPECS[t] for t in TASK_NAMES], lengths=(800, 1200), cases=4)
    assert [r["task"] for r in records] == list(TASK_NAMES)
    for r in records:
        assert r["metric"] == "retrieval" and r["values"] == [1.0, 1.0], r["task"]
        d = r["details"]
        assert d["ci_low"][0] == pytest.approx(wilson_interval(d["successes"][0], d["trials"][0])[0])
        assert r["ci95"] == [list(wilson_interval(s, n)) for s, n in zip(d["successes"], d["trials"])]  # as passkey's
        assert all(c["correct"] and c["recall"] == 1.0 for rows in d["cases"] for c in rows)


def test_a_distractor_key_scores_zero_on_multikey():
    (record,) = _evaluate(distractor, "niah_multikey")
    assert record["values"] == [0.0, 0.0] and record["details"]["recall"] == [0.0, 0.0]
    assert record["ci95"][0] == pytest.approx(list(wilson_interval(0, 6))) and record["ci95"][0][1] > 0.3
    case = record["details"]["cases"][0][0]
    assert case["distractors_found"] and case["distractors_found"][0] in case["distractors"]
    assert not set(case["expected"]) & set(case["distractors"])
    assert record["details"]["ci_high"][0] == pytest.approx(wilson_interval(0, 6)[1])


def test_half_the_values_scores_zero_correct_and_half_recall_on_multivalue():
    (record,) = _evaluate(half_values, "niah_multivalue")
    assert record["values"] == [0.0, 0.0] and record["details"]["recall"] == [0.5, 0.5]
    (cwe,) = _evaluate(
        lambda p: " " + oracle(p).strip(" .\n").split(", ")[0] + ", nonsense\n",
        "cwe:common=4:common_repeats=3",
        lengths=(400,),
    )
    assert cwe["values"] == [0.25] and cwe["details"]["metric"] == "recall"  # cwe reports recall
    assert cwe["details"]["successes"] == [6] and cwe["details"]["trials"] == [24]


def test_cases_are_seeded_and_depths_stratified():
    one = _evaluate(oracle, "niah_multikey", lengths=(600,), cases=8)[0]["details"]["cases"][0]
    two = _evaluate(oracle, "niah_multikey", lengths=(600,), cases=8)[0]["details"]["cases"][0]
    assert [c["expected"] for c in one] == [c["expected"] for c in two]
    lm = ScriptedLM(tokenizer(), oracle, training_length=300)
    other = evaluate_retrieval(lm, "niah_multikey", [600], cases=8, seed=1, progress=False)[0]["details"]["cases"][0]
    assert [c["expected"] for c in one] != [c["expected"] for c in other]
    buckets = collections.Counter(min(3, int(c["depth"] * 4)) for c in one)
    assert sorted(buckets.values()) == [2, 2, 2, 2]


# ---------------------------------------------------------------------------------------------
# Effective length


def test_effective_length_on_hand_made_curves():
    lengths = [128, 256, 512, 1024, 2048]
    assert effective_length(lengths, [0.95, 0.9, 0.85, 0.5, 0.1], reference=1.0) == (512, 0.8)
    assert effective_length(lengths, [0.95, 0.5, 0.9, 0.9, 0.9], reference=1.0)[0] == 128  # must stay above
    assert effective_length(lengths, [0.7, 0.9, 0.9, 0.9, 0.9], reference=1.0)[0] is None  # fails at once
    assert effective_length(lengths, [0.9] * 5, reference=1.0)[0] == 2048
    assert effective_length(lengths, [0.45, 0.45, 0.41, 0.39, 0.3], reference=0.5)[0] == 512  # relative: 0.4
    assert effective_length(lengths, [0.9, 0.8, 0.7, 0.6, 0.5], reference=1.0, ratio=0.6)[0] == 512
    assert effective_length(lengths, [0.9] * 5, reference=None) == (None, None)
    assert effective_length(lengths[::-1], [0.1, 0.5, 0.85, 0.9, 0.95], reference=1.0)[0] == 512  # any order
    with pytest.raises(ValueError, match="ratio"):
        effective_length(lengths, [0.9] * 5, reference=1.0, ratio=1.5)


def test_effective_lengths_in_the_tables():
    from cocattn.report.retrieval import effective_rows, format_retrieval

    lm = ScriptedLM(tokenizer(), oracle, training_length=300)
    records = evaluate_retrieval(lm, "niah_single,niah_multikey", [300, 600, 1200], cases=20, progress=False)
    broken = ScriptedLM(
        tokenizer(),
        lambda p: oracle(p) if len(tokenizer().encode(p).ids) < 900 else " 0\n",
        training_length=300,
        name="forgetful",
    )
    records += evaluate_retrieval(broken, "niah_single", [300, 600, 1200], cases=20, progress=False)
    rows = {(r["model"], r["task"]): r for r in effective_rows(records)}
    assert rows[("scripted", "niah_single")]["effective_length"] == 1200
    assert rows[("scripted", "all tasks")]["effective_length"] == 1200
    assert rows[("forgetful", "niah_single")]["effective_length"] == 600
    assert rows[("forgetful", "niah_single")]["threshold"] == pytest.approx(0.8)
    table = format_retrieval(records)
    assert "| forgetful + none | niah_single | 1.00 (unscaled at 1×) | 0.80 | 600 |" in table
    assert "unweighted mean of the tasks' scores" in table and "Scoring: answer line" in table


# ---------------------------------------------------------------------------------------------
# Records


def test_case_records_round_trip_through_json(tmp_path):
    records = _evaluate(half_values, ["niah_multivalue", "vt"], lengths=(400,), cases=3)
    assert records[1]["details"]["recall"] == [pytest.approx(0.4)]  # 2 of 5 variables
    for rows in records[0]["details"]["cases"]:
        for row in rows:
            case = CaseRecord.from_dict(json.loads(json.dumps(row)))
            assert case.to_dict() == row and case.prompt_tokens + case.answer_tokens == case.tokens
            assert case.shortfall == case.length - case.tokens and len(case.needle_depths) == 4
    path = write_results(tmp_path / "r.json", records)
    back = read_results(path)
    assert back == json.loads(json.dumps(records))
    assert [r["task"] for r in back] == ["niah_multivalue", "vt"]
    csv = path.with_suffix(".csv").read_text()
    assert "retrieval:niah_multivalue" in csv and "retrieval:vt" in csv
    with pytest.raises(ValueError, match="without"):
        CaseRecord.from_dict({"task": "vt"})


# ---------------------------------------------------------------------------------------------
# Bad input


def test_unknown_task_names_the_closest():
    with pytest.raises(ValueError, match="niah_multikye.*did you mean 'niah_multikey'"):
        parse_task("niah_multikye")
    with pytest.raises(ValueError, match="niah_multikey option='key'.*did you mean 'keys'"):
        parse_task("niah_multikey:key=3")
    with pytest.raises(ValueError, match="niah_multikey:keys='x'.*an integer"):
        parse_task("niah_multikey:keys=x")
    with pytest.raises(ValueError, match="each task once"):
        parse_tasks("vt,vt")
    with pytest.raises(ValueError, match="queries=5.*at most keys=4"):
        parse_task("niah_multikey:queries=5")


def test_a_length_too_short_says_the_minimum():
    lm = ScriptedLM(tokenizer(), oracle)
    with pytest.raises(ValueError, match=r"length=60 .*an integer >= (\d+) for niah_multikey") as err:
        _build(lm, "niah_multikey", 60)
    minimum = int(re.search(r">= (\d+)", str(err.value)).group(1))
    prompt = _build(lm, "niah_multikey", minimum)  # the minimum itself works
    assert prompt.tokens == minimum
    with pytest.raises(ValueError, match=r"length=100 .*>= \d+ for cwe"):
        _build(lm, "cwe", 100)


def test_more_keys_than_fit_is_a_clear_error():
    with pytest.raises(ValueError, match=rf"keys=500 .*at most {len(KEY_WORDS)}"):
        parse_task("niah_multikey:keys=500")
    lm = ScriptedLM(tokenizer(), oracle)
    with pytest.raises(ValueError, match=r"length=400 .*niah_multikey.*fewer keys"):
        _build(lm, "niah_multikey:keys=60", 400)
    with pytest.raises(ValueError, match="haystack"):
        Haystack("essay")
    with pytest.raises(ValueError, match="documents"):
        Haystack("corpus", [])


# ---------------------------------------------------------------------------------------------
# The command, in a new process


def test_eval_retrieval_command_writes_results_and_report(tmp_path):
    from cocattn.checkpoint import save_model
    from helpers.eval_models import gpt

    save_model(tmp_path / "gpt", gpt("rope", training_length=64).module, tokenizer())
    out = tmp_path / "r.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "cocattn",
            "eval",
            "retrieval",
            str(tmp_path / "gpt"),
            "--tasks",
            "niah_single,niah_multikey",
            "--lengths",
            "300",
            "400",
            "--cases",
            "2",
            "--rope",
            "dynamic:2",
            "--out",
            str(out),
            "--no-progress",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "### niah_multikey" in run.stdout and "Effective length" in run.stdout and "Truncation" in run.stdout
    records = read_results(out)
    assert [(r["task"], r["scaling_name"], r["counts"]) for r in records] == [
        ("niah_single", "dynamic x2", [2, 2]),
        ("niah_multikey", "dynamic x2", [2, 2]),
    ]
    assert all(abs(c["tokens"] - c["length"]) <= 4 for r in records for rows in r["details"]["cases"] for c in rows)
    report = subprocess.run(
        [sys.executable, "-m", "cocattn", "report", str(out), "--out", str(tmp_path / "rep")],
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0, report.stderr
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Retrieval suite" in md and "retrieval_depth_gpt-dynamic-x2.png" in md
    assert (tmp_path / "rep" / "retrieval_niah-multikey.png").stat().st_size > 1000


def test_eval_retrieval_command_refuses_bad_input_before_loading(tmp_path, capsys):
    from cocattn.checkpoint import save_model
    from cocattn.cli import main
    from helpers.eval_models import gpt

    save_model(tmp_path / "gpt", gpt("rope", training_length=64).module, tokenizer())
    assert main(["eval", "retrieval", str(tmp_path / "gpt"), "--tasks", "niah_singel"]) == 2
    assert "did you mean 'niah_single'" in capsys.readouterr().err
    assert main(["eval", "retrieval", str(tmp_path / "gpt"), "--haystack", "corpus"]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["eval", "retrieval", str(tmp_path / "gpt"), "--threshold", "1.5"]) == 2
    assert "--threshold=1.5" in capsys.readouterr().err


def test_too_short_lengths_can_be_skipped_and_prompts_reused():
    lm = ScriptedLM(tokenizer(), oracle, training_length=300)
    with pytest.raises(ValueError, match="length=100"):
        evaluate_retrieval(lm, "niah_multikey", [100, 600], cases=2, progress=False)
    cache: dict = {}
    (record,) = evaluate_retrieval(
        lm, "niah_multikey", [100, 600], cases=2, progress=False, too_short="skip", prompt_cache=cache
    )
    assert record["values"] == [None, 1.0] and record["details"]["cases"][0] == []
    assert "100" in record["details"]["skipped"] and ">=" in record["details"]["skipped"]["100"]
    with lm.rope_scaling({"rope_type": "dynamic", "factor": 2.0}):
        pass
    (again,) = evaluate_retrieval(
        lm,
        "niah_multikey",
        [100, 600],
        cases=2,
        progress=False,
        too_short="skip",
        prompt_cache=cache,
        scaling={"rope_type": "dynamic", "factor": 2.0},
    )
    assert (
        len(cache) == 1 and again["details"]["cases"][1][0]["expected"] == record["details"]["cases"][1][0]["expected"]
    )
    from cocattn.report.retrieval import format_retrieval

    assert "not measured at 100" in format_retrieval([record, again])


def test_hugging_face_models_get_their_begin_token_and_a_record():
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    from helpers.eval_models import llama

    backend = tokenizer().from_str(tokenizer().to_str())  # a copy that prepends BOS, LLaMA-style
    backend.post_processor = TemplateProcessing(single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", 0)])
    lm = llama(training_length=64)
    lm.tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|endoftext|>")
    assert lm.begin_ids == [0]
    prompt = _build(lm, "niah_multikey", 500)
    assert prompt.ids[0] == 0 and 500 - DEFAULT_TOLERANCE <= prompt.tokens <= 500
    assert prompt.ids == [0] + lm.encode(prompt.text)
    (record,) = evaluate_retrieval(
        lm,
        "vt:hops=1",
        [300],
        cases=2,
        max_new_tokens=3,
        scaling={"rope_type": "dynamic", "factor": 2.0},
        progress=False,
    )
    assert record["kind"] == "hf" and record["scaling_name"] == "dynamic x2" and record["counts"] == [2]
    assert record["details"]["generation"].startswith("no-cache")  # exact under dynamic NTK
    assert [len(parse_tasks("all")), parse_tasks("all")[0].name] == [6, "niah_single"]
