"""The pieces of the evaluation report page: stylesheet, escaping, number cells, SVG bar charts.

Kept apart from :mod:`sealion_vl.eval.report` (which reads the output folders) so the page's
look can change without touching the data handling. Everything here returns HTML strings; every
string that came from an output folder goes through :func:`esc`, because folders are untrusted
(a model's reply may hold ``<script>``). The page carries a Content-Security-Policy that forbids
scripts and every external load, as a second line of defence behind the escaping.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from typing import Any

# No script, no remote anything: styles inline, images only as data: URLs.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

# Colour-blind-friendly palette (Okabe-Ito), cycled when there are more models.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]

MAX_TEXT = 4000  # characters of a prompt/response shown per example item

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1b1f24;
 background:#fafbfc}
main{max-width:1200px;margin:0 auto;padding:1.5rem}
h1{font-size:1.6rem;margin:.2rem 0 1rem}h2{border-bottom:2px solid #d0d7de;padding-bottom:.3rem;
 margin-top:2.2rem}h3{margin:1.4rem 0 .5rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;background:#fff;font-size:.92rem}
th,td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#eef1f4}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.best{font-weight:700;background:#e6f4ea}.se{color:#57606a;font-size:.85em}
.missing{color:#8c959f}.swatch{display:inline-block;width:.8em;height:.8em;margin-right:.35em;
 border-radius:2px;vertical-align:baseline}
.chart{background:#fff;border:1px solid #d0d7de;margin:.5rem 0 1rem;max-width:100%}
.pos{color:#1a7f37}.neg{color:#cf222e}
.item{background:#fff;border:1px solid #d0d7de;border-left:5px solid #8c959f;margin:.5rem 0;
 padding:.4rem .7rem}.item.correct{border-left-color:#1a7f37}.item.wrong{border-left-color:#cf222e}
.item pre,footer pre{white-space:pre-wrap;word-break:break-word;background:#f6f8fa;
 padding:.4rem;margin:.2rem 0;max-height:18rem;overflow:auto;font-size:.85rem}
.badge{display:inline-block;padding:0 .4rem;border-radius:3px;color:#fff;font-size:.8rem}
.badge.correct{background:#1a7f37}.badge.wrong{background:#cf222e}.badge.other{background:#57606a}
footer{margin-top:2.5rem;border-top:2px solid #d0d7de;padding-top:.5rem}
.note{color:#57606a;font-size:.9rem}
"""


def esc(value: Any) -> str:
    """HTML-escape anything (quotes included, so it is safe in attributes too)."""
    return html.escape("" if value is None else str(value), quote=True)


def num(value: Any) -> float | None:
    """A finite number from untrusted JSON, or None (bools, strings, NaN and inf are not scores)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def fmt(value: float | None, digits: int = 2) -> str:
    """A score as text; an absent score as an em dash."""
    return "—" if value is None else f"{value:.{digits}f}"


def score_cell(
    value: float | None, se: float | None, *, best: bool = False, attrs: str = ""
) -> str:
    """One table cell: the value, then ``± stderr`` when the folder had standard errors."""
    if value is None:
        return f'<td class="num missing"{attrs}>—</td>'
    se_html = f' <span class="se">± {fmt(se)}</span>' if se is not None else ""
    cls = "num best" if best else "num"
    return f'<td class="{cls}"{attrs}>{fmt(value)}{se_html}</td>'


def swatch(index: int) -> str:
    """The small colour square that ties a model's name to its bars."""
    return f'<span class="swatch" style="background:{PALETTE[index % len(PALETTE)]}"></span>'


def bar_chart(
    lang: str, tasks: Sequence[str], models: Sequence[str], values: dict[tuple[str, str], float]
) -> str:
    """A grouped bar chart as inline SVG: one group per task, one bar per model that has a score.

    ``values`` maps (model, task) to the headline score. The axis runs from 0 to 100, or higher
    when a score exceeds 100 (RefCLIPScore can); negative scores are drawn as zero-height bars
    but keep their value in the tooltip and ``data-value``.
    """
    bar_w, gap, left, top, plot_h = 16, 26, 56, 40, 200
    bottom = 24 + int(3.5 * max((len(t) for t in tasks), default=0))  # rotated task names
    top_value = max([100.0, *values.values()]) if values else 100.0
    top_value = math.ceil(top_value / 20) * 20
    group_w = max(len(models), 1) * bar_w
    width = max(left + len(tasks) * (group_w + gap) + gap, 260)
    height = top + plot_h + bottom
    parts = [
        f'<svg class="chart" data-lang="{esc(lang)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Headline scores, language {esc(lang)}">'
    ]
    for tick in range(0, int(top_value) + 1, 20):
        y = top + plot_h - tick / top_value * plot_h
        parts.append(
            f'<line x1="{left}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e1e4e8"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#57606a">{tick}</text>'
        )
    for t_index, task in enumerate(tasks):
        x0 = left + gap + t_index * (group_w + gap)
        for m_index, model in enumerate(models):
            value = values.get((model, task))
            if value is None:
                continue
            h = max(value, 0.0) / top_value * plot_h
            x = x0 + m_index * bar_w
            colour = PALETTE[m_index % len(PALETTE)]
            parts.append(
                f'<rect class="bar" data-model="{esc(model)}" data-task="{esc(task)}" '
                f'data-value="{value!r}" x="{x}" y="{top + plot_h - h:.3f}" '
                f'width="{bar_w - 2}" height="{h:.3f}" fill="{colour}">'
                f"<title>{esc(model)} · {esc(task)}: {fmt(value)}</title></rect>"
            )
            vx, vy = x + bar_w / 2 + 3, top + plot_h - h - 3  # the value, written upwards
            parts.append(
                f'<text x="{vx:.1f}" y="{vy:.1f}" font-size="9" fill="#57606a" '
                f'transform="rotate(-90 {vx:.1f} {vy:.1f})">{fmt(value, 1)}</text>'
            )
        cx, cy = x0 + group_w / 2, top + plot_h + 12
        parts.append(
            f'<text x="{cx:.1f}" y="{cy}" font-size="11" text-anchor="end" fill="#1b1f24" '
            f'transform="rotate(-35 {cx:.1f} {cy})">{esc(task)}</text>'
        )
    parts.append(
        f'<line x1="{left}" x2="{width}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#57606a"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def page(title: str, body: str, footer: str) -> str:
    """The whole document around the body sections."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{esc(title)}</h1>{body}<footer>{footer}</footer></main></body></html>\n"
    )


def show(value: Any) -> str:
    """Any item field as display text (JSON for non-strings), cut to MAX_TEXT characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f" … [{len(text)} characters]"


def diagnostics_section(run: Any, examples: int) -> str:
    """One model's SEA-HELM vs robust extraction table plus a few disagreement examples.

    ``run`` is a :class:`sealion_vl.eval.report.ModelRun` (typed loosely to avoid an import
    cycle); its diagnostics.json is untrusted, so wrong shapes are skipped, not fatal.
    """
    rows, details = [], []
    for task, per_lang in run.diagnostics.items():
        if not isinstance(per_lang, dict):
            continue
        for lang, diag in per_lang.items():
            if not isinstance(diag, dict):
                continue
            metrics = run.metrics(str(lang), str(task))
            acc, r_acc = num(metrics.get("accuracy")), num(diag.get("robust_accuracy"))
            norm = num(metrics.get("normalized_accuracy"))
            r_norm = num(diag.get("robust_normalized_accuracy"))
            delta = r_norm - norm if r_norm is not None and norm is not None else None
            cls = "" if not delta else (' class="pos"' if delta > 0 else ' class="neg"')
            dis = diag.get("disagreements")
            dis = [d for d in dis if isinstance(d, dict)] if isinstance(dis, list) else []
            rows.append(
                f'<tr data-task="{esc(task)}" data-lang="{esc(lang)}"><td>{esc(task)}</td>'
                f'<td>{esc(lang)}</td><td class="num">{fmt(acc)}</td><td class="num">{fmt(r_acc)}'
                f'</td><td class="num">{fmt(norm)}</td><td class="num">{fmt(r_norm)}</td>'
                f'<td class="num"><span{cls}>{"" if delta is None else f"{delta:+.2f}"}</span>'
                f'</td><td class="num">{len(dis)}</td>'
                f'<td class="num">{esc(diag.get("errors", ""))}</td></tr>'
            )
            for d in dis[:examples]:
                details.append(
                    f"<tr><td>{esc(task)}</td><td>{esc(lang)}</td><td>{esc(d.get('run'))}</td>"
                    f"<td>{esc(d.get('id'))}</td><td>{esc(show(d.get('extracted')))}</td>"
                    f"<td>{esc(show(d.get('robust_extracted')))}</td>"
                    f"<td>{esc(show(d.get('gold')))}</td></tr>"
                )
    if not rows:
        return f"<h3>{esc(run.name)}</h3><p class='note'>No diagnostics.json in this folder.</p>"
    table = (
        f'<table class="diagnostics" data-model="{esc(run.name)}"><tr><th>task</th><th>lang</th>'
        "<th>accuracy (SEA-HELM)</th><th>accuracy (robust)</th><th>normalised (SEA-HELM)</th>"
        "<th>normalised (robust)</th><th>Δ normalised</th><th>disagreements listed</th>"
        f"<th>errors</th></tr>{''.join(rows)}</table>"
    )
    if details:
        table += (
            "<table class='disagreements'><tr><th>task</th><th>lang</th><th>run</th><th>id</th>"
            "<th>SEA-HELM extracted</th><th>robust extracted</th><th>gold</th></tr>"
            f"{''.join(details)}</table>"
        )
    return f"<h3>{esc(run.name)}</h3>{table}"
