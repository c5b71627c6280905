"""The demonstrations' section of nano's card, written from the demos' saved results.

Why a marked block: the card is written by ``nano build`` (its own numbers), the
demonstrations by ``nano demo ... --card CARD``. Each demo owns one block between HTML
comment markers, replaced in place when the demo is rerun. What a block shows is also saved
beside the card (``demos.json``: finding, table, flags), so the card stays a pure rendering
of saved results: ``nano build`` re-applies the saved blocks when it rewrites the card
(:func:`apply_saved`), and a test re-renders the shipped card from ``eval.json`` plus
``demos.json``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

SAVED = "demos.json"
#: The result keys a block shows (all that is saved beside the card).
SHOWN = ("finding", "table", "smoke", "minutes")

HEADING = "## The adapt recipe on nano (merge, distil, RL)"
INTRO = (
    "Each result below is measured with `sealion-vl eval run` (one greedy run unless it says "
    "otherwise) on held-out "
    "nano task folders and reproduced by the one command under it, which starts from the "
    "shipped nano and writes every checkpoint, eval folder and the numbers to its work folder. "
    "Settings were chosen on validation splits drawn with another seed, never on the items "
    "reported."
)


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- demo:{name} -->", f"<!-- /demo:{name} -->"


def block(name: str, result: dict) -> str:
    """One demo's block: its title, finding, table, and the command that reproduces it."""
    from sealion_vl.nano.demos import DEMOS

    start, end = _markers(name)
    lines = [start, f"### {name}: {DEMOS[name]}", ""]
    if result.get("finding"):
        lines += [result["finding"].strip(), ""]
    lines += [result["table"].strip(), ""]
    command = f"sealion-vl nano demo {name} WORK" + (" --smoke" if result.get("smoke") else "")
    minutes = result.get("minutes")
    took = f" (about {minutes:.0f} min of training on a 2-core CPU)" if minutes else ""
    lines += [
        f"Reproduce: `{command}`{took}; the numbers, the eval folders and the "
        f"`sealion-vl eval run` commands behind them land in `WORK/{name}.json`.",
        end,
    ]
    return "\n".join(lines)


def update_card(card: Path, name: str, result: dict, *, save: bool = True) -> Path:
    """Put (or replace) demo ``name``'s block in ``card``, and (``save``) what it shows in
    ``demos.json`` beside it; both written atomically."""
    card = Path(card)
    if not card.is_file():
        raise FileNotFoundError(f"no model card at {card}")
    if save:
        saved_path = card.with_name(SAVED)
        saved = json.loads(saved_path.read_text(encoding="utf-8")) if saved_path.is_file() else {}
        saved[name] = {k: result[k] for k in SHOWN if k in result}
        _write(saved_path, json.dumps(saved, indent=1, ensure_ascii=False) + "\n")
    text = card.read_text(encoding="utf-8")
    new = block(name, result)
    start, end = _markers(name)
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: new, text)
    else:
        if HEADING not in text:
            text = _before_licence(text, f"{HEADING}\n\n{INTRO}\n")
        # after the heading's last block (or its intro)
        head = text.index(HEADING)
        nxt = text.find("\n## ", head + len(HEADING))
        lic = text.find("\nLicence:", head)
        cut = min(x for x in (nxt, lic, len(text)) if x != -1)
        text = text[:cut].rstrip("\n") + "\n\n" + new + "\n" + text[cut:]
    _write(card, text)
    return card


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _before_licence(text: str, section: str) -> str:
    at = text.find("\nLicence:")
    if at == -1:
        return text.rstrip("\n") + "\n\n" + section
    return text[:at].rstrip("\n") + "\n\n" + section + text[at:]


def apply_saved(card: Path, saved: Path) -> None:
    """Re-apply the blocks saved in ``saved`` (a ``demos.json``) to ``card``, in order."""
    if not Path(saved).is_file():
        return
    for name, shown in json.loads(Path(saved).read_text(encoding="utf-8")).items():
        update_card(card, name, shown, save=False)
