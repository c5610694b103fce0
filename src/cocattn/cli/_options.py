"""Parsing shared by sub-commands: repeated ``KEY=VALUE`` flags."""

from __future__ import annotations


def key_values(items: list[str], flag: str, example: str, words: tuple[str, ...] = ()) -> dict:
    """``KEY=VALUE`` items as a dict: true/false, integers, floats, and the given ``words``."""
    from cocattn._checks import bad_value

    options: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise bad_value(flag, item, f"KEY=VALUE (e.g. {example})")
        if value.lower() in ("true", "false"):
            options[key] = value.lower() == "true"
        elif value in words:
            options[key] = value
        else:
            try:
                options[key] = int(value)
            except ValueError:
                try:
                    options[key] = float(value)
                except ValueError:
                    accepted = "a number or true/false" + (f" or one of {list(words)}" if words else "")
                    raise bad_value(flag, item, f"{accepted} as the value") from None
    return options
