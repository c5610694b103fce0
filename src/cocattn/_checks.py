"""Argument checks shared by the whole package.

Every user-facing error names the argument, the value it got and what is accepted, so that a
wrong setting fails at once with a message a person can act on.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable

from cocattn.errors import InputError


def bad_value(arg: str, value: Any, accepted: str) -> InputError:
    """An :class:`~cocattn.errors.InputError` (a ValueError) of the form
    ``arg=value is not valid: expected <accepted>``."""
    shown = repr(value)
    if len(shown) > 200:
        shown = shown[:197] + "..."
    return InputError(f"{arg}={shown} is not valid: expected {accepted}")


def check(condition: bool, arg: str, value: Any, accepted: str) -> None:
    """Raise :func:`bad_value` unless ``condition`` holds."""
    if not condition:
        raise bad_value(arg, value, accepted)


def check_choice(arg: str, value: Any, choices: Iterable[str]) -> None:
    """Raise unless ``value`` is one of ``choices``; suggest the closest ones."""
    choices = list(choices)
    if value in choices:
        return
    close = difflib.get_close_matches(str(value), choices, n=3)
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    raise bad_value(arg, value, "one of " + ", ".join(map(repr, choices)) + hint)


def check_lengths_and_cases(lengths: Any, cases: Any) -> None:
    """The prompt evaluators' shared options: ``lengths`` a non-empty list of positive integers,
    ``cases`` a positive integer."""
    check(
        len(lengths) > 0 and all(isinstance(n, int) and n > 0 for n in lengths),
        "lengths",
        lengths,
        "a non-empty list of positive integers",
    )
    check(isinstance(cases, int) and cases > 0, "cases", cases, "a positive integer")


def unknown_key(where: str, key: str, valid: Iterable[str]) -> InputError:
    """Error for an unknown configuration key, naming the closest valid keys."""
    valid = sorted(valid)
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
    hint = f"; closest valid: {', '.join(close)}" if close else ""
    return InputError(f"unknown key {key!r} in {where}{hint}. Valid keys: {', '.join(valid)}")


def check_ci_options(
    confidence: Any, resamples: Any, *, names: tuple[str, str] = ("confidence", "ci_resamples")
) -> None:
    """Reject a confidence level outside (0, 1) or a non-positive number of resamples, naming the
    argument as the caller spells it (``--confidence``, ``eval.ci_resamples``, ...)."""
    check(
        isinstance(confidence, (int, float)) and not isinstance(confidence, bool) and 0.0 < confidence < 1.0,
        names[0],
        confidence,
        "a number strictly between 0 and 1 (e.g. 0.95)",
    )
    check(
        isinstance(resamples, int) and not isinstance(resamples, bool) and resamples >= 1,
        names[1],
        resamples,
        "a positive integer (bootstrap resamples, e.g. 2000)",
    )


def positive_int(text: str) -> int:
    """argparse ``type=``: an integer >= 1 (0 is refused rather than silently meaning "default")."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not valid: expected a positive integer (omit the option for the default)"
        )
    return value
