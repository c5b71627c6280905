"""nano's model card, written from the evaluation the build just ran (never by hand)."""

from __future__ import annotations

from pathlib import Path

from sealion_vl.nano.evaluate import far_above_chance, summary

LANG_ORDER = ("en", "id", "ms", "tl", "vi", "th", "my", "ta")


def _lang_table(tasks: dict, general: dict | None = None) -> list[str]:
    langs = [lang for lang in LANG_ORDER if any(lang in v for v in tasks.values())]
    head = "| task (chance) | " + " | ".join(langs) + " |"
    lines = [head, "|" + "---|" * (len(langs) + 1)]
    for bucket in sorted(tasks):
        cells = []
        for lang in langs:
            c = tasks[bucket].get(lang)
            cells.append(f"{c['accuracy']:.0f} (n={c['n']})" if c else "–")
        chance = next(iter(tasks[bucket].values()))["chance"]
        lines.append(f"| {bucket} ({chance:.0f}) | " + " | ".join(cells) + " |")
    return lines


def _stage_table(general: dict, final: dict, *, anchor: dict, show_n: bool = False) -> list[str]:
    """General (stage 1) vs final accuracy per task, for the tasks of ``anchor`` (a summary)."""
    lines = ["| task | general (stage 1) | final (stage 3) | chance |", "|---|---|---|---|"]
    for bucket in sorted(anchor):
        g = general.get(bucket, {}).get("accuracy", 0.0)
        f = final.get(bucket, {}).get("accuracy", 0.0)
        label = f"{bucket} (n={anchor[bucket]['n']})" if show_n else bucket
        lines.append(f"| {label} | {g:.1f} | {f:.1f} | {anchor[bucket]['chance']:.0f} |")
    return lines


def _by_kind(by_kind: dict) -> list[str]:
    """MCQ by question and MARVL by hypothesis (all languages): where the misses are."""
    if not by_kind:
        return []
    lines = ["## MCQ by question, MARVL by hypothesis (final model, all languages)", ""]
    for bucket, kinds in by_kind.items():
        cells = ", ".join(f"{k} {c['accuracy']:.0f} (n={c['n']})" for k, c in kinds.items())
        lines.append(f"- {bucket}: {cells}")
    return [*lines, ""]


def _other_builds(builds: list[dict]) -> str:
    """Every other timed build of byte-identical weights: a machine's speed varies by the hour.

    Why: nano's card states the training time of one run, and a shared 2-core VM can run a
    quarter slower one hour than the next. A rebuild that reproduces the weights byte for
    byte is the same work, so its clock belongs on the card beside this one.
    """
    return "".join(
        f" The same weights (byte for byte) were also built at {b['commit']} on {b['date']}: "
        f"{sum(b['train_seconds'].values()) / 60:.1f} min of training, "
        f"{b['total_seconds'] / 60:.1f} min for the whole build"
        + (f" ({b['why']})" if b.get("why") else "")
        + "."
        for b in builds
    )


def write_card(path: Path, result: dict) -> None:
    """Render ``result`` (from ``build_nano``) as a Markdown model card."""
    final, general = result["final"], result["general"]
    fs, gs = summary(final), summary(general)
    sea = [lang for lang in LANG_ORDER if lang != "en"]

    def sea_acc(res: dict) -> float:
        n = c = 0
        for langs in res["tasks"].values():
            for lang in sea:
                if lang in langs:
                    n += langs[lang]["n"]
                    c += langs[lang]["correct"]
        return 100.0 * c / max(1, n)

    plan = result["plan"]
    lines = [
        "# sealion-vl nano",
        "",
        "A demonstration vision-language model **trained on synthetic data only**. It is "
        "**not** a SEA-LION release and knows nothing beyond its toy world: coloured shapes, "
        "the flags of the eleven Southeast-Asian countries and seven tropical fruits, asked "
        "about in English, Indonesian, Malay, Tagalog, Vietnamese, Thai, Burmese and Tamil. "
        "It ships inside sealion-vl so every command works offline, and it is the end-to-end "
        "proof that the toolkit's own recipes train a VLM that really sees.",
        "",
        "- Architecture: Gemma3ForConditionalGeneration (SigLIP vision tower, 64x64 images, "
        "16 soft tokens per image), Gemma 3 chat format and special tokens, byte-level BPE "
        "tokenizer trained on the synthetic corpus (combining marks split with their "
        "letters, so Thai, Burmese and Tamil words are whole tokens).",
        f"- Size preset: `{plan['size']}`; data: "
        + (f"{plan['n_warmup']} text-only warm-up + " if "n_warmup" in plan else "")
        + f"{plan['n_general']} general + {plan['n_sea']} SEA training items, "
        f"{plan['n_heldout']} held-out SEA items (disjoint images).",
        "- Recipe: stage 0 warm-up (text only: find a named option, answer its letter) → "
        "stage 1 general SFT (English shape scenes: VQA, captions, MCQ with "
        "answer tags) → stage 2 SEA continued pre-training "
        "on captions → stage 3 SEA SFT (short-answer VQA, CVQA-style MCQ with answer tags, "
        "MARVL-style two-image true/false, tool calls). Recipes: "
        "`src/sealion_vl/train/recipes/nano-{warmup,general,cpt,sft}.yaml`"
        + (
            "; precision "
            + ", ".join(f"{k} {v}" for k, v in result["precision"].items())
            + " (bf16: autocast, fp32 weights)."
            if "precision" in result
            else "."
        ),
        f"- Reproduce: `sealion-vl nano build OUT` (seed {plan['seed']}). Training time on "
        "the 2-core CPU machine it was built on: "
        + ", ".join(f"{k} {v / 60:.1f} min" for k, v in result["train_seconds"].items())
        + f"; {sum(result['train_seconds'].values()) / 60:.1f} min of training"
        + (
            f", {result['total_seconds'] / 60:.1f} min for the whole build (data, tokenizer, "
            "training, evaluation)."
            if "total_seconds" in result
            else "."
        )
        + _other_builds(result.get("other_builds", [])),
        "",
        "## Held-out accuracy (%, greedy), final model",
        "",
        *_lang_table(final["tasks"]),
        "",
        "Chance (in brackets) is a uniform guess over the world's answers: 7 colours, 3 "
        "shapes, counts 1-4 (fruits 1-3), 11 flags and capitals, 7 fruits, 4 MCQ options, "
        "true/false. nano answers an MCQ with the option's text, then the tag and the "
        "letter; the letter is read after the language's answer tag as SEA-HELM does. It "
        "answers a MARVL pair with the facts it compared (counts or names), then the "
        "true/false word on the last line, which is what is scored. A reply without a "
        "readable answer counts as wrong. Per-language cells are small "
        "(n in brackets): read the per-task totals below for the overall picture.",
        "",
        "## General model vs SEA-trained model",
        "",
        *_stage_table(gs, fs, anchor=fs),
    ]
    good = [b for b in sorted(fs) if far_above_chance(fs[b]["accuracy"], fs[b]["chance"])]
    weak = [b for b in sorted(fs) if b not in good]
    lines += [
        f"| all SEA-language items | {sea_acc(general):.1f} | {sea_acc(final):.1f} | |",
        "",
        "**Far above chance** (at least halfway from chance to 100%, all languages together): "
        + (", ".join(good) or "none")
        + ". **Not yet**: "
        + (
            ", ".join(
                f"{b} ({fs[b]['accuracy']:.0f} vs chance {fs[b]['chance']:.0f})" for b in weak
            )
            + ". nano is a few million parameters trained for minutes on a CPU; tasks in "
            "this list are learned partly or not at all within that budget (measured, not "
            "hidden)."
            if weak
            else "none."
        ),
        "",
        *_by_kind(final.get("by_kind", {})),
        "## Captions (chrF++ against the reference caption)",
        "",
        "| lang | general | final |",
        "|---|---|---|",
    ]
    for lang, c in final["captions"].items():
        g = general["captions"].get(lang, {}).get("chrf++", 0.0)
        lines.append(f"| {lang} | {g:.1f} | {c['chrf++']:.1f} |")
    if "warmup" in result:
        w = summary(result["warmup"]).get("lookup")
        if w:
            lines += [
                "",
                "## Stage 0 warm-up (text-only option lookup, held-out)",
                "",
                f'"Which option is X?" with four options: {w["accuracy"]:.1f}% of {w["n"]} '
                f"(chance {w['chance']:.0f}%), before the model has seen an image.",
            ]
    english = result.get("english_scenes")
    if english:
        eg, ef = summary(english["general"]), summary(english["final"])
        lines += [
            "",
            "## English shape scenes (general held-out split)",
            "",
            "What stage 1 alone learned, and what the final model kept.",
            "",
            *_stage_table(eg, ef, anchor=eg, show_n=True),
        ]
        caps_g, caps_f = english["general"]["captions"], english["final"]["captions"]
        if "en" in caps_g:
            lines.append(
                f"| caption chrF++ | {caps_g['en']['chrf++']:.1f} | "
                f"{caps_f.get('en', {}).get('chrf++', 0.0):.1f} | |"
            )
    lines += ["", "Licence: Apache-2.0 (weights and synthetic data generated by sealion-vl).", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
