"""Filler text to hide needles in: ``repeat`` (the paper's sentences) or ``corpus`` (held-out
documents), and the offsets after its whole sentences where needles may go."""

from __future__ import annotations

import random
import re
from typing import Sequence

from cocattn._checks import check, check_choice
from cocattn.tasks.passkey import FILLER

__all__ = ["HAYSTACKS", "Haystack", "sentence_boundaries"]

HAYSTACKS = ("repeat", "corpus")

_SENTENCE_END = re.compile(r"[.!?](?=\s)")
_MAX_GAP = 200  # characters without a sentence end get word boundaries, so depths stay fine-grained


class Haystack:
    """Filler text to hide needles in: ``repeat`` (the paper's sentences) or ``corpus`` (documents)."""

    def __init__(self, kind: str = "repeat", documents: Sequence[str] | None = None):
        check_choice("haystack", kind, HAYSTACKS)
        self.kind = kind
        self.documents: list[str] = []
        if kind == "corpus":
            check(
                documents is not None and len(documents) > 0,
                "documents",
                documents,
                "held-out documents for haystack='corpus' (e.g. --data DIR)",
            )
            self.documents = [" ".join(d.split()) for d in documents or ()]
            self.documents = [d for d in self.documents if d]
            check(len(self.documents) > 0, "documents", "<all empty>", "documents with text")

    def text(self, rng: random.Random, chars: int) -> tuple[str, str, int]:
        """At least ``chars`` characters of filler, a label of where it starts, and how many of its
        first characters are fresh (the rest reuses documents already read: the corpus ran out)."""
        if self.kind == "repeat":
            reps = chars // len(FILLER) + 2
            text = " ".join([FILLER] * reps)
            return text, "repeat", len(text)
        first = rng.randrange(len(self.documents))
        doc = self.documents[first]
        match = _SENTENCE_END.search(doc, rng.randrange(len(doc)))  # begin at a sentence start
        start = match.end() + 1 if match and match.end() + 1 < len(doc) else 0
        parts, size, i, fresh = [doc[start:]], len(doc) - start, first, None
        while size < chars:  # continue into the next documents, reusing them if they run out
            i = (i + 1) % len(self.documents)
            if i == first and fresh is None:
                fresh = size
            parts.append(self.documents[i])
            size += len(parts[-1]) + 1
        text = " ".join(parts)
        return text, f"document {first} from character {start}", len(text) if fresh is None else fresh


def sentence_boundaries(text: str) -> list[int]:
    """Where needles may go in ``text``: the character offsets just after each whole sentence, plus
    word ends every ~200 characters in long runs without a sentence end.

    Returns:
        list[int]: increasing offsets into ``text``, each < ``len(text)``.
    """
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    out, last = [], 0
    for end in ends + [len(text)]:
        while end - last > _MAX_GAP:  # a long run: word boundaries every ~_MAX_GAP characters
            space = text.rfind(" ", last + 1, last + _MAX_GAP)
            if space <= last:
                space = text.find(" ", last + _MAX_GAP)
                if space == -1 or space >= end:
                    break
            out.append(space)
            last = space
        if end < len(text):
            out.append(end)
            last = end
    return out
