"""A synthetic Southeast-Asian world for training and evaluating the tiny "nano" VLM.

Deterministic from a seed; 64x64 Pillow drawings with no text in them:

* shape scenes: 1-4 circles / squares / triangles of one colour (7 colours);
* the flags of the 11 SEA countries, with size, position, wave and brightness variation;
* tropical fruits: 1-3 durians, mangosteens, rambutans, bananas, dragon fruits, coconuts or
  mangoes.

For each image: one caption per language, and conversation items of these kinds: ``caption``
("Describe the image."), ``vqa`` (short answers), ``mcq`` (CVQA shape, per-language answer
tag), ``marvl`` (two images + a hypothesis, native true/false word), ``toolcall`` (Gemma 3
``tool_code`` weather call for the capital of the flag's country), and the training-only
``multi`` (every question of one image) and ``marvl_multi`` (every hypothesis of one pair).
Plus one text-only kind, ``lookup`` ("Which option is Blue?" + options A-D): the warm-up
part, which teaches the option match an MCQ letter needs before any image is seen.
Languages: en, id, ms, tl, vi, th, my, ta; the words and templates live in ``lang/*.yaml``.

Example::

    from sealion_vl.nano.synth import generate
    generate("data/sea-train", part="sea", split="train", n=20000, seed=0)
    generate("data/sea-heldout", part="sea", split="heldout", n=2000, seed=0)
"""

from sealion_vl.nano.synth.draw import SIZE, render_fruit, render_scene
from sealion_vl.nano.synth.flags import flag_image, render_flag
from sealion_vl.nano.synth.generate import (
    EXAMPLE,
    PART_KINDS,
    PARTS,
    SPLITS,
    WEIGHTS,
    example_image,
    generate,
    plan,
)  # fmt: skip
from sealion_vl.nano.synth.items import KINDS, LETTERS, Item, build, render, tool_call
from sealion_vl.nano.synth.world import (
    CAPITALS,
    COLOUR_RGB,
    COLOURS,
    COUNTRIES,
    COUNTS,
    FRUITS,
    HYPOTHESES,
    LANGUAGES,
    QUESTION_KINDS,
    SHAPES,
    TOOL_NAME,
    TOOL_SYSTEM,
    caption,
    country_in_sentence,
    lang,
    number,
    words,
)  # fmt: skip

__all__ = [
    "CAPITALS", "COLOURS", "COLOUR_RGB", "COUNTRIES", "COUNTS", "EXAMPLE", "FRUITS",
    "HYPOTHESES", "KINDS", "LANGUAGES", "LETTERS", "PARTS", "PART_KINDS", "QUESTION_KINDS",
    "SHAPES", "SIZE", "SPLITS", "TOOL_NAME", "TOOL_SYSTEM", "WEIGHTS", "Item", "build",
    "caption", "country_in_sentence", "example_image", "flag_image", "generate", "lang",
    "number", "plan", "render", "render_flag", "render_fruit", "render_scene", "tool_call",
    "words",
]  # fmt: skip
