"""The synthetic world's concepts and their words in each language, loaded from YAML.

``world.yaml`` holds the language-independent concepts (colours with their RGB, shapes,
fruits, countries with capitals and flag ratios, the weather tool). ``lang/<code>.yaml``
holds one language's words and templates:

* ``answer_tag`` (e.g. ``"Jawapan:"``), ``true_word`` / ``false_word`` (MARVL answers),
  ``numbers`` (the forms of 1-4, used both in answers and captions);
* ``colours``: ``{name: {word, adj}}``: ``word`` is the answer form, ``adj`` the form inside
  a caption; ``shapes`` / ``fruits``: ``{name: {word, one, many}}``: the answer form and the
  caption forms after the number 1 and after 2-4; ``countries``: ``{name: word}`` (the answer
  form) and optional ``country_forms`` (the form inside a sentence, e.g. "the Philippines");
* ``captions``: one template per image kind (``scene``: ``{n} {colour} {shape}``; ``flag``:
  ``{country}``; ``fruit``: ``{n} {fruit}``); exactly one, so every image has one reference;
* ``questions``: 2 paraphrases per question kind (:data:`QUESTION_KINDS`);
  ``mcq_instruction``, ``lookup_question``, ``marvl_question`` and the MARVL ``hypotheses``
  (:data:`HYPOTHESES`).

The tables are validated when first loaded, so a missing translation fails loudly.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

_HERE = Path(__file__).parent
QUESTION_KINDS = (
    "describe", "colour", "count", "shape", "flag", "fruit", "fruit_count", "weather",
)  # fmt: skip
HYPOTHESES = (
    "more_shapes", "same_flag", "left_fruit", "right_flag_of", "same_colour", "same_fruit",
)  # fmt: skip
_LANG_KEYS = (
    "code", "name", "answer_tag", "true_word", "false_word", "numbers", "colours", "shapes",
    "fruits", "countries", "captions", "questions", "mcq_instruction", "lookup_question",
    "marvl_question", "hypotheses",
)  # fmt: skip


@cache
def world() -> dict[str, Any]:
    """The parsed ``world.yaml``."""
    return yaml.safe_load((_HERE / "world.yaml").read_text(encoding="utf-8"))


LANGUAGES: tuple[str, ...] = tuple(world()["languages"])
COLOURS: tuple[str, ...] = tuple(world()["colours"])
COLOUR_RGB: dict[str, tuple[int, int, int]] = {k: tuple(v) for k, v in world()["colours"].items()}
SHAPES: tuple[str, ...] = tuple(world()["shapes"])
FRUITS: tuple[str, ...] = tuple(world()["fruits"])
COUNTRIES: tuple[str, ...] = tuple(world()["countries"])
CAPITALS: dict[str, str] = {k: v["capital"] for k, v in world()["countries"].items()}
FLAG_RATIO: dict[str, float] = {k: float(v["ratio"]) for k, v in world()["countries"].items()}
COUNTS: tuple[int, ...] = (1, 2, 3, 4)
TOOL_NAME: str = world()["tool"]["name"]
TOOL_SYSTEM: str = world()["tool"]["system"]


@cache
def lang(code: str) -> dict[str, Any]:
    """One language's table (validated); raises ``ValueError`` for an unknown code."""
    if code not in LANGUAGES:
        raise ValueError(f"unknown language {code!r}; the synthetic world has {LANGUAGES}")
    path = _HERE / "lang" / f"{code}.yaml"
    table = yaml.safe_load(path.read_text(encoding="utf-8"))
    _validate(table, path)
    return table


def _validate(t: dict, path: Path) -> None:
    def need(cond: bool, what: str) -> None:
        if not cond:
            raise ValueError(f"{path}: {what}")

    missing = [k for k in _LANG_KEYS if k not in t]
    need(not missing, f"missing keys {missing}")
    need(len(t["numbers"]) == len(COUNTS), "numbers must list the forms of 1-4")
    for group, names, fields in (
        ("colours", COLOURS, ("word", "adj")),
        ("shapes", SHAPES, ("word", "one", "many")),
        ("fruits", FRUITS, ("word", "one", "many")),
    ):
        for name in names:
            entry = t[group].get(name)
            need(isinstance(entry, dict), f"{group}.{name} is missing")
            need(all(entry.get(f) for f in fields), f"{group}.{name} needs {fields}")
    need(all(t["countries"].get(c) for c in COUNTRIES), "a country name is missing")
    need(all(t["captions"].get(k) for k in ("scene", "flag", "fruit")), "captions incomplete")
    for k in QUESTION_KINDS:
        q = t["questions"].get(k)
        need(isinstance(q, list) and q and all(q), f"questions.{k} must be a non-empty list")
    need(all(t["hypotheses"].get(k) for k in HYPOTHESES), "hypotheses incomplete")


def words(code: str, group: str) -> dict[str, str]:
    """Answer words of a group (``colours``, ``shapes``, ``fruits``, ``countries``) by name."""
    table = lang(code)[group]
    return {k: (v if isinstance(v, str) else v["word"]) for k, v in table.items()}


def country_in_sentence(code: str, country: str) -> str:
    """A country's name as it reads inside a sentence ("the flag of the Philippines")."""
    t = lang(code)
    return (t.get("country_forms") or {}).get(country) or t["countries"][country]


def number(code: str, n: int) -> str:
    """How ``n`` (1-4) is written in language ``code``."""
    return lang(code)["numbers"][n - 1]


def caption(code: str, facts: dict) -> str:
    """The one reference caption of an image (``facts`` from a ``render_*`` function)."""
    t = lang(code)
    kind = facts["kind"]
    if kind == "flag":
        return t["captions"]["flag"].format(country=country_in_sentence(code, facts["country"]))
    n = facts["count"]
    form = "one" if n == 1 else "many"
    if kind == "scene":
        return t["captions"]["scene"].format(
            n=number(code, n),
            colour=t["colours"][facts["colour"]]["adj"],
            shape=t["shapes"][facts["shape"]][form],
        )
    if kind == "fruit":
        return t["captions"]["fruit"].format(
            n=number(code, n), fruit=t["fruits"][facts["fruit"]][form]
        )
    raise ValueError(f"no caption template for image kind {kind!r}")
