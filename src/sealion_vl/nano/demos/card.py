"""The demonstrations' section of nano's card, written from the demos' saved results.

Why a marked block: the card is written by ``nano build`` (its own numbers), the
demonstrations by ``nano demo ... --card CARD``. Each demo owns one block between HTML
comment markers, replaced in place when the demo is rerun; ``nano build`` carries the blocks
over when it rewrites the card (:func:`carry_over`), so neither job erases the other's
numbers.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

HEADING = "## The adapt recipe on nano (merge, distil, RL)"
INTRO = (
    "Each result below is measured with `sealion-vl eval run` (one greedy run) on held-out "
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
    took = f" (about {minutes:.0f} min on a 2-core CPU)" if minutes else ""
    lines += [
        f"Reproduce: `{command}`{took}; the numbers, the eval folders and the "
        f"`sealion-vl eval run` commands behind them land in `WORK/{name}.json`.",
        end,
    ]
    return "\n".join(lines)


def update_card(card: Path, name: str, result: dict) -> Path:
    """Put (or replace) demo ``name``'s block in ``card``; written atomically."""
    card = Path(card)
    if not card.is_file():
        raise FileNotFoundError(f"no model card at {card}")
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
    tmp = card.with_name(f".{card.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, card)
    return card


def _before_licence(text: str, section: str) -> str:
    at = text.find("\nLicence:")
    if at == -1:
        return text.rstrip("\n") + "\n\n" + section
    return text[:at].rstrip("\n") + "\n\n" + section + text[at:]


def carry_over(old_card: Path, new_card: Path) -> None:
    """Copy the demonstrations' section of ``old_card`` (if any) into ``new_card``."""
    if not Path(old_card).is_file():
        return
    old = Path(old_card).read_text(encoding="utf-8")
    if HEADING not in old:
        return
    start = old.index(HEADING)
    lic = old.find("\nLicence:", start)
    nxt = old.find("\n## ", start + len(HEADING))
    end = min(x for x in (nxt, lic, len(old)) if x != -1)
    section = old[start:end].strip("\n") + "\n"
    text = Path(new_card).read_text(encoding="utf-8")
    if HEADING not in text:
        Path(new_card).write_text(_before_licence(text, section), encoding="utf-8")
