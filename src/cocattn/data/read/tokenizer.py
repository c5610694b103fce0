"""Byte-level BPE tokenizer trained with ``tokenizers`` on the training split only.

Training is deterministic: the same texts in the same order give byte-identical
``tokenizer.json`` across processes and thread counts (checked by the tests).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from cocattn._checks import check
from cocattn.safeparse import loads_json

if TYPE_CHECKING:
    from tokenizers import Tokenizer

EOT = "<|endoftext|>"
MIN_VOCAB = 256 + 1 + 1  # the 256 bytes, the end-of-text token, at least one merge
MAX_VOCAB = 1 << 20


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2, *, split_digits: bool = False
) -> Tokenizer:
    """Train a byte-level BPE (GPT-2 style pre-tokenisation, no prefix space) with ``EOT`` as
    its only special token (id 0); return a ``tokenizers.Tokenizer``.

    ``split_digits``: every digit is a token of its own, as in LLaMA's and SmolLM's tokenizers
    (``" 12345"`` → ``" "``, ``"1"``, …, ``"5"``). A plain BPE cuts numbers into pieces that
    depend on the number (``" 12"`` ``"3"`` ``"4"`` ``"5"`` but ``" 4"`` ``"8"`` ``"2"`` ``"13"``),
    so copying a number is a different token sequence for every number."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    check(
        isinstance(vocab_size, int) and MIN_VOCAB <= vocab_size <= MAX_VOCAB,
        "vocab_size",
        vocab_size,
        f"an integer in [{MIN_VOCAB}, {MAX_VOCAB}]",
    )
    check(isinstance(split_digits, bool), "split_digits", split_digits, "true or false")
    tokenizer = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.pre_tokenizer = (
        pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
        if split_digits
        else byte_level
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def eot_id(tokenizer: Tokenizer) -> int:
    """Id of the end-of-text token; a ValueError if the tokenizer has none."""
    token_id = tokenizer.token_to_id(EOT)
    if token_id is None:
        raise ValueError(f"the tokenizer has no {EOT!r} token (not built by cocattn data?)")
    return token_id


def load_tokenizer(data_dir: str | os.PathLike) -> Tokenizer:
    """The ``tokenizer.json`` of a data directory (or a path to the file itself)."""
    from tokenizers import Tokenizer

    path = Path(data_dir)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (build the data with `cocattn data build`)")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as err:  # tokenizers raises its own Exception type
        raise ValueError(f"{path} is not a valid tokenizers JSON file (corrupt or truncated?): {err}") from None


def pretrained_tokenizer(path: str | os.PathLike) -> tuple[Tokenizer, str, str]:
    """A pretrained model's tokenizer (``tokenizer.json`` of a Hugging Face model directory, or the
    file itself) and its end-of-text token: ``(tokenizer, eot_token, sha256 of the file)``.

    The end-of-text token is ``<|endoftext|>`` when the vocabulary has it (GPT-2, SmolLM), else the
    ``eos_token`` of ``tokenizer_config.json`` beside the file (LLaMA's ``</s>``)."""
    import json

    from cocattn.files import sha256_file

    given = Path(path)
    file = given / "tokenizer.json" if given.is_dir() else given
    if not file.is_file():
        raise FileNotFoundError(
            f"tokenizer={str(given)!r}: {file} does not exist (expected a model directory "
            "with tokenizer.json, or a tokenizer.json file)"
        )
    tokenizer = load_tokenizer(file)
    if tokenizer.token_to_id(EOT) is not None:
        return tokenizer, EOT, sha256_file(file)
    eos = None
    config = file.parent / "tokenizer_config.json"
    if config.is_file():
        try:
            eos = loads_json(config.read_text(encoding="utf-8"), str(config)).get("eos_token")
        except (json.JSONDecodeError, AttributeError):
            eos = None
        if isinstance(eos, dict):  # AddedToken serialisation
            eos = eos.get("content")
    if not isinstance(eos, str) or tokenizer.token_to_id(eos) is None:
        raise ValueError(
            f"tokenizer={str(given)!r} is not usable: it has no {EOT!r} token and no eos_token in "
            f"{config} that its vocabulary holds (documents must be separated by an end-of-text token)"
        )
    return tokenizer, eos, sha256_file(file)
