"""Small real models and texts shared by the evaluation tests (no downloads).

- ``text(n_words, seed)``: seeded pseudo-English;
- ``tokenizer()``: a byte-level BPE trained locally with ``tokenizers`` on a few KB of that text
  plus the passkey prompt's wording;
- ``llama(tok)``: a tiny random ``LlamaForCausalLM`` wrapped as an :class:`HFLanguageModel`;
- ``gpt(tok, attention)``: a tiny random cocattn ``GPT`` wrapped as a :class:`CocattnLanguageModel`.
"""

from __future__ import annotations

import functools
import random

import pytest
import torch

WORDS = (
    "the a of and to in is was he she it that with for as his her on be at by had not are but from "
    "or have an they which one you were all we when there can said who been has more if no out so what "
    "time up about into than them only other new some could these two may first then do any like my now "
    "over such our man me even most made after also did many before must through back years where much "
    "your way well down should because each just those people how too little state good very make world "
    "still own see men work long get here between both life being under never day same another know while "
    "last might us great old year off come since against go came right used take three"
).split()

PASSKEY_TEXT = (
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. "
    "I will quiz you about the important information there. The grass is green. The sky is blue. "
    "The sun is yellow. Here we go. There and back again. The passkey is 12345. Remember it. "
    "12345 is the passkey. What is the passkey? The passkey is 67890. 0123456789"
)


def text(n_words: int, seed: int = 0) -> str:
    """Seeded pseudo-English: sentences of 5-14 words."""
    rng = random.Random(seed)
    out, count = [], 0
    while count < n_words:
        k = rng.randint(5, 14)
        words = [rng.choice(WORDS) for _ in range(k)]
        out.append(" ".join(words).capitalize() + ".")
        count += k
    return " ".join(out)


@functools.lru_cache(maxsize=None)
def tokenizer():
    """A byte-level BPE (vocabulary 300) trained here in well under a second."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([text(3000, seed=s) for s in range(3)] + [PASSKEY_TEXT] * 20, trainer=trainer)
    return tok


def hf_tokenizer():
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tokenizer(), eos_token="<|endoftext|>")


def llama(training_length: int = 64, seed: int = 0, layers: int = 2):
    """A tiny random LLaMA (hidden 32, 4 heads, 2 KV heads) as an HFLanguageModel."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from cocattn.evaluate.lm_hf import HFLanguageModel

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=tokenizer().get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=training_length,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        attn_implementation="eager",
    )
    model = LlamaForCausalLM(cfg)
    # larger weights than the default init so that attention is far from uniform and scaling shows
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(8)
            layer.self_attn.k_proj.weight.mul_(8)
    return HFLanguageModel(model, hf_tokenizer(), name="tiny-llama")


def gpt(attention: str = "rope", training_length: int = 64, seed: int = 0):
    """A tiny random cocattn GPT as a CocattnLanguageModel (skips until cocattn.model exists)."""
    model_mod = pytest.importorskip("cocattn.model")
    from cocattn.evaluate.lm_native import CocattnLanguageModel

    torch.manual_seed(seed)
    cfg = model_mod.GPTConfig(
        vocab_size=tokenizer().get_vocab_size(),
        n_layer=2,
        n_head=4,
        n_embd=32,
        max_seq_len=training_length,
        attention=attention,
    )
    model = model_mod.GPT(cfg)
    with torch.no_grad():  # sharper attention, as above
        for block in model.blocks:
            for name in ("q_proj", "k_proj", "t_proj"):
                proj = getattr(block.attn, name, None)
                if proj is not None:
                    proj.weight.mul_(8)
    return CocattnLanguageModel(model, tokenizer(), name=f"tiny-{attention}")


def save_cli_models(root):
    """A native CoCA checkpoint (``root/gpt``), a Hugging Face LLaMA (``root/hf``) and two
    documents (``root/docs.jsonl``): what the CLI tests load in their own processes."""
    import json

    from cocattn.checkpoint import save_model

    save_model(root / "gpt", gpt("coca", training_length=32).module, tokenizer())
    hf = llama(training_length=32)
    hf.module.save_pretrained(root / "hf")
    hf.tokenizer.save_pretrained(root / "hf")
    docs = root / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": i, "text": text(300, seed=i)}) + "\n" for i in range(2)))
    return root
