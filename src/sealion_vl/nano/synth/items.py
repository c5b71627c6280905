"""One training/evaluation item of each kind: its images, prompt, gold answer and meta.

Every builder takes an ``rng`` (``random.Random``), a language code, and for MCQ / MARVL the
label the item must have (so the caller can balance labels exactly), and returns an
:class:`Item`. Paths and ids are the caller's business (see ``generate``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from PIL import Image

from sealion_vl.families import get_adapter
from sealion_vl.nano.synth.draw import render_fruit, render_scene
from sealion_vl.nano.synth.flags import render_flag
from sealion_vl.nano.synth.world import (
    CAPITALS,
    COLOURS,
    COUNTRIES,
    COUNTS,
    FRUITS,
    HYPOTHESES,
    TOOL_NAME,
    TOOL_SYSTEM,
    caption,
    country_in_sentence,
    lang,
    number,
    words,
)  # fmt: skip

KINDS = ("caption", "vqa", "multi", "mcq", "marvl", "marvl_multi", "toolcall", "lookup")
#: Kinds that only training splits hold: a multi-turn item has no single gold reply to score.
TRAIN_ONLY_KINDS = ("multi", "marvl_multi")
LETTERS = "ABCD"
IMAGE_KINDS = ("scene", "flag", "fruit")
# Questions that can be asked about each image kind.
_QUESTIONS = {"scene": ("colour", "count", "shape"), "flag": ("flag",),
              "fruit": ("fruit", "fruit_count")}  # fmt: skip
# MCQ needs 4 options, and there are only 3 shapes.
_MCQ_QUESTIONS = {**_QUESTIONS, "scene": ("colour", "count")}


@dataclass
class Item:
    """What a builder returns. ``images`` are ``(image, facts)`` pairs in prompt order."""

    images: list[tuple[Image.Image, dict]]
    prompt: str
    answer: str
    meta: dict = field(default_factory=dict)
    system: str | None = None
    followups: list[tuple[str, str]] = field(default_factory=list)  # later (prompt, answer) turns


def render(rng: random.Random, kind: str, **facts) -> tuple[Image.Image, dict]:
    """An image of ``kind`` (``scene``, ``flag``, ``fruit``) with optional fixed facts."""
    if kind == "scene":
        return render_scene(rng, **facts)
    if kind == "fruit":
        return render_fruit(rng, **facts)
    country = facts.get("country") or rng.choice(COUNTRIES)
    return render_flag(country, rng), {"kind": "flag", "country": country}


def _gold(code: str, question: str, facts: dict) -> str:
    """The answer word of ``question`` about an image with ``facts``, in language ``code``."""
    if question in ("count", "fruit_count"):
        return number(code, facts["count"])
    group, key = {
        "colour": ("colours", "colour"), "shape": ("shapes", "shape"),
        "flag": ("countries", "country"), "fruit": ("fruits", "fruit"),
    }[question]  # fmt: skip
    return words(code, group)[facts[key]]


def _pick_image(rng: random.Random, part: str) -> str:
    return "scene" if part == "general" else rng.choice(IMAGE_KINDS)


def caption_item(rng: random.Random, code: str, part: str) -> Item:
    """Asks to describe the image; the answer is its one reference caption."""
    image = render(rng, _pick_image(rng, part))
    prompt = rng.choice(lang(code)["questions"]["describe"])
    return Item([image], prompt, caption(code, image[1]), {"question": "describe"})


def vqa_item(rng: random.Random, code: str, part: str) -> Item:
    """A short-answer question (colour / count / shape / flag / fruit / fruit_count)."""
    image = render(rng, _pick_image(rng, part))
    question = rng.choice(_QUESTIONS[image[1]["kind"]])
    prompt = rng.choice(lang(code)["questions"][question])
    return Item([image], prompt, _gold(code, question, image[1]), {"question": question})


def multi_item(rng: random.Random, code: str, part: str) -> Item:
    """Every question its image supports, one per turn in random order (sometimes "describe").

    Why: a tiny vision tower learns shape and count only from the answers that need them;
    asking all of an image's questions gives three times the signal per image drawn and
    encoded, for a few text tokens more (the image is encoded once per conversation).
    """
    image = render(rng, _pick_image(rng, part))
    questions = list(_QUESTIONS[image[1]["kind"]])
    rng.shuffle(questions)
    if rng.random() < 0.3 or len(questions) == 1:
        questions.insert(rng.randrange(len(questions) + 1), "describe")
    table = lang(code)["questions"]
    turns = [
        (
            rng.choice(table[q]),
            caption(code, image[1]) if q == "describe" else _gold(code, q, image[1]),
        )
        for q in questions
    ]
    (prompt, answer), *rest = turns
    return Item([image], prompt, answer, {"questions": questions}, followups=rest)


def _option_pool(code: str, question: str) -> list[str]:
    """Every answer ``question`` can have in language ``code``: where MCQ options come from."""
    if question in ("count", "fruit_count"):
        return [number(code, n) for n in COUNTS]
    group = {"colour": "colours", "flag": "countries", "fruit": "fruits"}[question]
    return list(words(code, group).values())


def _tagged_options(
    code: str, first_line: str, options: list[str], label: int
) -> tuple[str, str, dict]:
    """Prompt (first line, options A-D, instruction), reply and meta shared by MCQ and lookup.

    The reply names the option before its letter: "<option>\n<tag> <letter>". Why: picking
    the letter then needs only a match of the word just written against the option lines
    (an induction-style copy a tiny model learns). A bare "<tag> <letter>" needs the answer,
    the match and the copy in one token; nano never learned that (text-only, 300 steps from
    scratch: chance; with the word first: 51% and rising). SEA-HELM reads the letter after
    the tag, so the reply scores the same.
    """
    t = lang(code)
    lines = [first_line]
    lines += [f"{letter}. {option}" for letter, option in zip(LETTERS, options, strict=True)]
    lines.append(t["mcq_instruction"])
    gold, letter = options[label], LETTERS[label]
    meta = {"options": options, "label": label, "letter": letter, "tag": t["answer_tag"],
            "gold": gold}  # fmt: skip
    return "\n".join(lines), f"{gold}\n{t['answer_tag']} {letter}", meta


def mcq_item(rng: random.Random, code: str, part: str, label: int) -> Item:
    """CVQA shape: a question about the image, options A-D in the language, tagged reply."""
    image = render(rng, _pick_image(rng, part))
    facts = image[1]
    question = rng.choice(_MCQ_QUESTIONS[facts["kind"]])
    correct = _gold(code, question, facts)
    pool = _option_pool(code, question)
    distractors = rng.sample([w for w in pool if w != correct], 3)
    options = distractors[:label] + [correct] + distractors[label:]
    first = rng.choice(lang(code)["questions"][question])
    prompt, answer, meta = _tagged_options(code, first, options, label)
    return Item([image], prompt, answer, {"question": question, **meta})


def lookup_item(rng: random.Random, code: str, part: str, label: int) -> Item:
    """Text only: "Which option is <word>?" + options A-D, tagged reply.

    Why: the letter of an MCQ reply needs an attention head that finds the word just written
    among the option lines (a content match). nano's MCQ items alone never formed one: the
    image questions already work, but image MCQ at 15% of stage 1 stayed at chance after
    1000 steps. On this pure lookup task a nano trained from scratch forms the match after a
    plateau of about 250 steps (400 steps: 99.5-100% held-out; text only, so cheap), and MCQ
    training builds on it.
    """
    question = rng.choice(("colour", "count", "flag", "fruit"))
    options = rng.sample(_option_pool(code, question), len(LETTERS))
    first = lang(code)["lookup_question"].format(word=options[label])
    prompt, answer, meta = _tagged_options(code, first, options, label)
    return Item([], prompt, answer, meta)


_SAME = {  # concept -> (image kind, fact compared, its values)
    "same_flag": ("flag", "country", COUNTRIES),
    "same_colour": ("scene", "colour", COLOURS),
    "same_fruit": ("fruit", "fruit", FRUITS),
}


def _other(rng: random.Random, values, not_this):
    return rng.choice([v for v in values if v != not_this])


def _counts(rng: random.Random, more: bool) -> tuple[int, int]:
    """Left and right counts; the left has more exactly when ``more``."""
    if more:
        right = rng.choice(COUNTS[:-1])
        return rng.choice([c for c in COUNTS if c > right]), right
    left = rng.choice(COUNTS)
    return left, rng.choice([c for c in COUNTS if c >= left])


def _same_or_not(rng: random.Random, values, same: bool):
    a = rng.choice(values)
    return a, a if same else _other(rng, values, a)


def _marvl_pair(rng: random.Random, concept: str, label: bool) -> tuple[list, dict]:
    """Left and right images for a hypothesis ``concept`` whose truth is ``label``."""
    fmt: dict = {}
    if concept == "more_shapes":
        left, right = _counts(rng, label)
        pair = [render(rng, "scene", count=left), render(rng, "scene", count=right)]
    elif concept in ("same_flag", "same_colour", "same_fruit"):
        kind, key, values = _SAME[concept]
        a, b = _same_or_not(rng, values, label)
        pair = [render(rng, kind, **{key: a}), render(rng, kind, **{key: b})]
    elif concept == "left_fruit":
        left = render(rng, "fruit" if label else rng.choice(("scene", "flag")))
        pair = [left, render(rng, rng.choice(IMAGE_KINDS))]
    elif concept == "right_flag_of":
        country = rng.choice(COUNTRIES)
        fmt["country"] = country
        if label:
            right = render(rng, "flag", country=country)
        elif rng.random() < 0.8:  # mostly another flag: the hard negative
            right = render(rng, "flag", country=_other(rng, COUNTRIES, country))
        else:
            right = render(rng, rng.choice(("scene", "fruit")))
        pair = [render(rng, rng.choice(IMAGE_KINDS)), right]
    else:
        raise ValueError(f"unknown MARVL concept {concept!r}; expected one of {HYPOTHESES}")
    return pair, fmt


def _hypothesis(code: str, concept: str, fmt: dict) -> str:
    words_in = {k: country_in_sentence(code, v) for k, v in fmt.items()}
    return lang(code)["hypotheses"][concept].format(**words_in)


def _name(code: str, facts: dict) -> str:
    """The word for what one image shows: its country, its fruit, or (a scene) its colour."""
    return _gold(code, {"flag": "flag", "fruit": "fruit", "scene": "colour"}[facts["kind"]], facts)


def _verdict(
    code: str, concept: str, left: dict, right: dict, label: bool, named: str | None = None
) -> str:
    """A MARVL reply: the facts the hypothesis compares, then the true/false word.

    "3, 2\nBenar" for "the left image has more shapes"; "Vietnam, Laos\nSalah" for "the
    right image shows the flag of Vietnam" (``named``: the country the hypothesis names,
    then the right image's). Why: nano (v9) judged the hypotheses that compare two images
    below chance (more_shapes 32%, right_flag_of 39%) while it reads one image's count and
    flag at 96%. Writing the facts first turns one hard step (look at both images, compare,
    answer) into steps it can do: read each image, then compare two words just written, the
    same split that taught it MCQ letters (v12, facts first: more_shapes 75%, same_flag
    87%). With only the right flag written, right_flag_of stayed at 33%: matching a written
    word against the hypothesis is the lookup nano is weak at, so the named country is
    copied into the facts too. The scorer reads the last line.
    """
    if concept == "more_shapes":
        facts = f"{number(code, left['count'])}, {number(code, right['count'])}"
    elif concept == "left_fruit":
        facts = _name(code, left)
    elif concept == "right_flag_of":
        facts = f"{_gold(code, 'flag', {'country': named})}, {_name(code, right)}"
    else:  # same_flag, same_colour, same_fruit
        facts = f"{_name(code, left)}, {_name(code, right)}"
    t = lang(code)
    return f"{facts}\n{t['true_word'] if label else t['false_word']}"


def marvl_item(rng: random.Random, code: str, part: str, label: bool) -> Item:
    """MARVL shape: two images, a hypothesis in the language; reply: facts, true/false word."""
    t = lang(code)
    concept = rng.choice(HYPOTHESES)
    pair, fmt = _marvl_pair(rng, concept, label)
    hypothesis = _hypothesis(code, concept, fmt)
    answer = _verdict(code, concept, *(f for _, f in pair), label, fmt.get("country"))
    meta = {
        "concept": concept, "hypothesis": hypothesis, "label": label,
        "true_word": t["true_word"], "false_word": t["false_word"], **fmt,
    }  # fmt: skip
    return Item(pair, f"{hypothesis}\n{t['marvl_question']}", answer, meta)


def marvl_multi_item(rng: random.Random, code: str, part: str) -> Item:
    """One MARVL pair, then every hypothesis that applies to it, one per turn (training only).

    Why: a true/false answer is one bit, and a tiny model needs tens of thousands of them to
    learn to compare two images; asking all of a pair's hypotheses gives two or three bits
    per pair drawn and encoded. The pair is built from a coin flip per hypothesis, so every
    hypothesis is true exactly as often as false: a pair drawn for one hypothesis and judged
    on the others gave v5 nano turns that were 58% "false" (68% for right_flag_of),
    and it answered "false" to most SEA-language pairs. ``right_flag_of`` is asked only when
    the right image is a flag (a named other flag: the hard negative).
    """
    t = lang(code)
    flip = {c: rng.random() < 0.5 for c in HYPOTHESES}
    left = "fruit" if flip["left_fruit"] else rng.choice(("scene", "flag"))
    kinds = (left, left if rng.random() < 0.5 else rng.choice(IMAGE_KINDS))
    asked: list[dict] = []
    if kinds == ("scene", "scene"):
        counts = _counts(rng, flip["more_shapes"])
        colours = _same_or_not(rng, COLOURS, flip["same_colour"])
        facts = [{"count": n, "colour": c} for n, c in zip(counts, colours, strict=True)]
        asked += [{"concept": c, "label": flip[c]} for c in ("more_shapes", "same_colour")]
    elif kinds[0] == kinds[1]:
        concept = {"flag": "same_flag", "fruit": "same_fruit"}[kinds[0]]
        _, key, values = _SAME[concept]
        facts = [{key: v} for v in _same_or_not(rng, values, flip[concept])]
        asked.append({"concept": concept, "label": flip[concept]})
    else:
        facts = [{}, {}]
    pair = [render(rng, kind, **f) for kind, f in zip(kinds, facts, strict=True)]
    asked.append({"concept": "left_fruit", "label": kinds[0] == "fruit"})
    if kinds[1] == "flag":
        shown = pair[1][1]["country"]
        named = shown if flip["right_flag_of"] else _other(rng, COUNTRIES, shown)
        asked.append({"concept": "right_flag_of", "label": flip["right_flag_of"],
                      "country": named})  # fmt: skip
    rng.shuffle(asked)
    turns = [
        (
            _hypothesis(code, h["concept"], {"country": h["country"]} if "country" in h else {})
            + f"\n{t['marvl_question']}",
            _verdict(code, h["concept"], *(f for _, f in pair), h["label"], h.get("country")),
        )
        for h in asked
    ]
    (prompt, answer), *rest = turns
    return Item(pair, prompt, answer, {"hypotheses": asked}, followups=rest)


def tool_call(city: str) -> str:
    """The assistant reply calling the weather tool, written by the Gemma 3 adapter (the
    fenced ``tool_code`` format its reply parser reads back)."""
    return get_adapter("gemma3").format_tool_calls(
        [{"name": TOOL_NAME, "arguments": {"city": city}}]
    )


def toolcall_item(rng: random.Random, code: str, part: str) -> Item:
    """A flag + "weather in this country's capital?" -> ``get_weather(city=...)``."""
    image = render(rng, "flag")
    city = CAPITALS[image[1]["country"]]
    prompt = rng.choice(lang(code)["questions"]["weather"])
    meta = {"question": "weather", "tool": TOOL_NAME, "arguments": {"city": city}}
    return Item([image], prompt, tool_call(city), meta, system=TOOL_SYSTEM)


def build(kind: str, rng: random.Random, code: str, part: str, label=None) -> Item:
    """Dispatch to the builder of ``kind`` (one of :data:`KINDS`)."""
    if kind == "mcq":
        return mcq_item(rng, code, part, label)
    if kind == "marvl":
        return marvl_item(rng, code, part, label)
    if kind == "lookup":
        return lookup_item(rng, code, part, label)
    builder = {
        "caption": caption_item, "vqa": vqa_item, "multi": multi_item,
        "marvl_multi": marvl_multi_item, "toolcall": toolcall_item,
    }.get(kind)  # fmt: skip
    if builder is None:
        raise ValueError(f"unknown item kind {kind!r}; expected one of {KINDS}")
    return builder(rng, code, part)


__all__ = ["KINDS", "TRAIN_ONLY_KINDS", "Item", "build", "render", "tool_call"]
