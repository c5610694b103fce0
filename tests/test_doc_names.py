"""Every ``cocattn.…`` name that README.md, CONTRIBUTING.md and docs/*.md mention, dotted or in a
``from cocattn… import …`` line, exists: a module that moved or a name that was removed shows up
here, not in a reader's traceback."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [p for p in (ROOT / "README.md", ROOT / "CONTRIBUTING.md") if p.exists()] + sorted((ROOT / "docs").glob("*.md"))
DOTTED = re.compile(r"(?<![\w.\-/])cocattn((?:\.[A-Za-z_]\w*)+)(?![\w/-])")
FROM_IMPORT = re.compile(r"from (cocattn(?:\.\w+)*) import (\([\w,\s]+\)|[\w, ]+)")


def mentioned_names(text: str) -> set[str]:
    """``{"cocattn.a.b", ...}``: the dotted names in ``text`` and the names its imports bring in."""
    names = {"cocattn" + m.group(1) for m in DOTTED.finditer(text)}
    for m in FROM_IMPORT.finditer(text):
        names |= {f"{m.group(1)}.{n}" for n in re.split(r"[,\s()]+", m.group(2)) if n}
    return names


def resolves(dotted: str) -> bool:
    """Whether ``dotted`` is a module under cocattn or an attribute reached from the longest one."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_the_checker_tells_a_real_name_from_a_missing_one():
    text = (
        "see `cocattn.attention.coca_attention` and\nfrom cocattn.rope import (\n    register_rope_type,\n    nope)\n"
    )
    assert mentioned_names(text) == {
        "cocattn.attention.coca_attention",
        "cocattn.rope",
        "cocattn.rope.register_rope_type",
        "cocattn.rope.nope",
    }
    assert resolves("cocattn.attention.coca_attention") and resolves("cocattn.tasks.depth")
    assert not resolves("cocattn.rope.nope") and not resolves("cocattn.no_such_module.x")


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_cocattn_name_a_page_mentions_exists(page):
    missing = sorted(n for n in mentioned_names(page.read_text(encoding="utf-8")) if not resolves(n))
    assert not missing, f"{page.relative_to(ROOT)} mentions names that do not exist: {missing}"
