"""The HTML report: built from fake output folders in the documented shape, rendered in Chromium.

The browser tests load the page from file:// in Debian's chromium through Playwright and check
what a reader sees: the numbers in the tables, one bar per model per task (heights to scale),
model replies shown as text and never run, no request leaving the page, a non-blank screenshot.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from sealion_vl.errors import EvalDataError
from sealion_vl.eval.report import build_report
from tests.fixtures.browser import launch_chromium

PWNED = "<script>window.pwned=1</script>"
GEMMA = "aisingapore/Gemma-SEA-LION-v4-4B-VL"
QWEN = 'Qwen-SEA-LION <8B> & "friends"'  # attribute- and markup-breaking on purpose
SCORED = "scored-replies"  # an `eval score` folder: no config.json, named after the folder

# (model, lang, task) -> (headline value, stderr or None): what the tables must show.
EXPECTED = {
    (GEMMA, "id", "cvqa"): (48.3, 1.25),
    (GEMMA, "id", "world_cuisine_task1"): (40.0, 2.5),
    (GEMMA, "id", "world_cuisine_task2"): (35.5, None),
    (GEMMA, "id", "sea_ifeval"): (70.0, 0.5),
    (GEMMA, "ta", "marvl"): (10.0, 3.0),
    (QWEN, "id", "cvqa"): (52.0, None),
    (QWEN, "id", "sea_ifeval"): (80.5, None),
    (QWEN, "id", "xm3600"): (112.4, None),
    (SCORED, "id", "cvqa"): (30.0, None),
}
TOTALS = {(GEMMA, "id"): 57.0, (GEMMA, "ta"): 10.0, (QWEN, "id"): 66.25, (SCORED, "id"): 30.0}


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def _mcq(norm: float, acc: float) -> dict:
    return {"accuracy": acc, "normalized_accuracy": norm, "macro_f1": acc - 1, "null_count": 0}


def _item(seed, task, lang, i, score, response="A", error=None) -> dict:
    return {
        "run": seed,
        "task": task,
        "lang": lang,
        "id": f"{task}-{i}",
        "prompt": f"Pertanyaan {i}? Jawab dengan A, B, C atau D.",
        "response": response,
        "extracted": None if error else response[:1],
        "gold": "A",
        "score": score,
        "error": error,
    }


def make_folders(root: Path) -> list[Path]:
    """Three output folders: a full 2-run folder, a partial one, an `eval score` one."""
    gemma = root / "gemma"
    results = {
        "id": {
            "vision": {
                "cvqa": _mcq(48.3, 61.2),
                "world_cuisine_task1": _mcq(40.0, 52.0),
                "world_cuisine_task2": _mcq(35.5, 48.4),
                "world_cuisine": 37.75,
                "total": 44.1,
            },
            "instruction-following": {"sea_ifeval": {"overall_lang_normalized_acc": 70.0}},
            "total": 57.0,
        },
        "ta": {"vision": {"marvl": _mcq(10.0, 55.0), "total": 10.0}, "total": 10.0},
        "total": 33.5,
    }
    stderr = {
        "id": {
            "vision": {"cvqa": {"normalized_accuracy": 1.25}, "world_cuisine_task1": {}},
            "instruction-following": {"sea_ifeval": {"overall_lang_normalized_acc": 0.5}},
            "total": 0.8,
        },
        "ta": {"vision": {"marvl": {"normalized_accuracy": 3.0}}, "total": 3.0},
        "total": 1.1,
    }
    stderr["id"]["vision"]["world_cuisine_task1"]["normalized_accuracy"] = 2.5
    _write(gemma / "results.json", results)
    _write(gemma / "results_stderr.json", stderr)
    _write(gemma / "runs" / "25008113" / "results.json", results)
    _write(
        gemma / "headline.json",
        {t: "normalized_accuracy" for t in ("cvqa", "world_cuisine_task1", "marvl")}
        | {"world_cuisine_task2": "normalized_accuracy"}
        | {"sea_ifeval": "overall_lang_normalized_acc"},
    )
    _write(
        gemma / "config.json",
        {
            "model": GEMMA,
            "endpoint": "http://127.0.0.1:9/v1",
            "api_key": "sk-do-not-show-123",
            "tasks": {"cvqa": ["id"], "marvl": ["ta"]},
            "runs": 2,
            "seeds": [25008113, 42008474],
            "generation": {"temperature": 0.0, "max_tokens": 32},
        },
    )
    _write(
        gemma / "diagnostics.json",
        {
            "cvqa": {
                "id": {
                    "robust_accuracy": 66.0,
                    "robust_normalized_accuracy": 54.67,
                    "disagreements": [
                        {
                            "run": 25008113,
                            "id": "cvqa-77",
                            "extracted": None,
                            "robust_extracted": "<b>C</b>",
                            "gold": "C",
                        }
                    ],
                    "errors": 1,
                }
            },
            "marvl": {"ta": {"robust_accuracy": 55.0}},  # keys may be missing
        },
    )
    lines = [_item(25008113, "cvqa", "id", 0, 0, response=PWNED)]
    lines += [_item(25008113, "cvqa", "id", i, i % 2) for i in range(1, 40)]
    lines += [_item(42008474, "sea_ifeval", "id", i, i % 3 == 0) for i in range(10)]
    lines += [_item(42008474, "marvl", "ta", 1, None, response=None, error="broken image")]
    text = "\n".join(json.dumps(x) for x in lines) + '\n{"truncated": \n'
    (gemma / "items.jsonl").write_text(text, encoding="utf-8")

    qwen = root / "qwen"
    _write(qwen / "config.json", {"model": QWEN, "runs": 1})
    _write(
        qwen / "results.json",
        {
            "id": {
                "vision": {"cvqa": _mcq(52.0, 64.0), "xm3600": {"refclipscore": 112.4}},
                "instruction-following": {"sea_ifeval": {"overall_lang_normalized_acc": 80.5}},
                "total": 66.25,
            },
            "total": 66.25,
        },
    )
    _write(qwen / "headline.json", {"cvqa": "normalized_accuracy", "xm3600": "refclipscore"})

    scored = root / SCORED
    _write(scored / "results.json", {"id": {"vision": {"cvqa": _mcq(30.0, 47.5)}, "total": 30.0}})
    return [gemma, qwen, scored]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    out = build_report(make_folders(root), root / "out" / "report.html", examples=3)
    assert out == root / "out" / "report.html"
    return out


def test_written_atomically_and_self_contained(report):
    html = report.read_text(encoding="utf-8")
    assert [p.name for p in report.parent.iterdir()] == ["report.html"]  # no temp file left
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html.lower()  # the reply is escaped, and we ship no script
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing remote
    assert "sk-do-not-show-123" not in html and "[redacted]" in html


def test_examples_are_sampled_per_task_and_lang(report):
    html = report.read_text(encoding="utf-8")

    def count(kind: str, task: str) -> int:
        return html.count(f'<div class="item {kind}" data-model="{GEMMA}" data-task="{task}"')

    # cvqa/id has 20 correct and 20 wrong items: three of each are shown.
    assert (count("correct", "cvqa"), count("wrong", "cvqa")) == (3, 3)
    assert (count("correct", "sea_ifeval"), count("wrong", "sea_ifeval")) == (3, 3)
    assert count("wrong", "marvl") == 1 and "broken image" in html
    assert "1 unreadable line(s) skipped" in html


def test_examples_zero_and_duplicate_model_names(tmp_path):
    gemma = make_folders(tmp_path)[0]
    out = build_report([gemma, gemma], tmp_path / "r.html", examples=0, title="T & <t>")
    html = out.read_text(encoding="utf-8")
    assert '<div class="item' not in html
    assert "<title>T &amp; &lt;t&gt;</title>" in html
    names = set(re.findall(r'<tr data-model="([^"]+)"', html))
    assert len(names) == 2 and all(n.startswith(GEMMA + " (gemma)") for n in names)


def test_folder_without_results_is_refused_and_old_report_kept(tmp_path):
    good = make_folders(tmp_path)[0]
    out = build_report([good], tmp_path / "r.html")
    before = out.read_bytes()
    empty = tmp_path / "not-an-eval"
    empty.mkdir()
    with pytest.raises(EvalDataError, match="not-an-eval.*results.json"):
        build_report([good, empty], out)
    (empty / "results.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(EvalDataError, match="not-an-eval.*JSON"):
        build_report([good, empty], out)
    with pytest.raises(EvalDataError, match="at least one"):
        build_report([], out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["r.html"]


# ---------------------------------------------------------------------------------------------
# In the browser


@pytest.fixture(scope="module")
def browser_page(report):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        requests, console_errors = [], []
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
        page.on("pageerror", lambda e: console_errors.append(str(e)))
        page.goto(report.as_uri(), wait_until="load")
        page.wait_for_load_state("networkidle")
        yield page, requests, console_errors
        browser.close()


def test_page_loads_offline_without_errors(browser_page, report):
    page, requests, console_errors = browser_page
    assert requests == [report.as_uri()]
    assert console_errors == []
    assert page.title().startswith("SEA-HELM evaluation: " + GEMMA)


def test_tables_show_every_model_and_task_with_the_right_numbers(browser_page):
    page = browser_page[0]
    for (model, lang), total in TOTALS.items():
        cell = page.locator(f"table.overview tr[data-model='{_css(model)}'] td[data-lang='{lang}']")
        assert cell.inner_text().split(" ±")[0] == f"{total:.2f}"
    gemma_overall = page.locator(f"table.overview tr[data-model='{GEMMA}'] td[data-lang='total']")
    assert gemma_overall.inner_text() == "33.50 ± 1.10"
    for model in (GEMMA, QWEN, SCORED):
        assert page.locator(f"table.tasks th:has-text('{_css(model)}')").count() == 2
    for (model, lang, task), (value, se) in EXPECTED.items():
        cell = page.locator(
            f"table.tasks[data-lang='{lang}'] tr[data-task='{task}'] td[data-model='{_css(model)}']"
        )
        assert cell.inner_text() == f"{value:.2f}" + (f" ± {se:.2f}" if se else "")
    # A task a model was not run on is an explicit dash, not a zero.
    wc = f"table.tasks[data-lang='id'] tr[data-task='world_cuisine_task1'] td[data-model='{QWEN}']"
    assert page.locator(wc).inner_text() == "—"
    # The best model of a row is highlighted: Qwen on cvqa in id.
    best = page.locator("table.tasks[data-lang='id'] tr[data-task='cvqa'] td.best")
    assert best.get_attribute("data-model") == QWEN
    # Diagnostics: SEA-HELM vs robust normalised accuracy and the delta.
    row = page.locator(f"table.diagnostics[data-model='{GEMMA}'] tr[data-task='cvqa']")
    assert row.locator("td").all_inner_texts()[2:9] == [
        "61.20", "66.00", "48.30", "54.67", "+6.37", "1", "1"
    ]  # fmt: skip
    assert "<b>C</b>" in page.locator("table.disagreements").inner_text()


def test_charts_have_one_bar_per_model_per_task_to_scale(browser_page):
    page = browser_page[0]
    for lang in ("id", "ta"):
        bars = page.eval_on_selector_all(
            f"svg.chart[data-lang='{lang}'] rect.bar",
            "els => els.map(e => [e.dataset.model, e.dataset.task, +e.dataset.value,"
            " e.getBBox().height, e.getBBox().x])",
        )
        expected = {(m, t): v for (m, l_, t), (v, _se) in EXPECTED.items() if l_ == lang}
        assert sorted((m, t) for m, t, *_ in bars) == sorted(expected)  # one bar each, no more
        assert {(m, t): v for m, t, v, *_ in bars} == pytest.approx(expected)
        per_unit = {round(h / v, 3) for _m, _t, v, h, _x in bars}
        assert len(per_unit) == 1 and per_unit.pop() > 0  # heights proportional to scores
    # Within a task's group the bars stand in model order, side by side.
    xs = page.eval_on_selector_all(
        "svg.chart[data-lang='id'] rect.bar[data-task='cvqa']",
        "els => els.map(e => [e.dataset.model, e.getBBox().x])",
    )
    assert [m for m, _x in sorted(xs, key=lambda p: p[1])] == [GEMMA, QWEN, SCORED]


def test_model_reply_with_script_is_text_not_code(browser_page):
    page = browser_page[0]
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.evaluate("document.querySelectorAll('script').length") == 0
    responses = page.locator("pre.response").all_inner_texts()
    assert PWNED in responses
    assert page.locator(f"table.overview th:has-text('{_css(QWEN)}')").inner_text().endswith(QWEN)


def test_full_page_screenshot_is_not_blank(browser_page):
    from PIL import Image, ImageStat

    png = browser_page[0].screenshot(full_page=True)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.height > 900  # the full page, not just the viewport
    assert max(ImageStat.Stat(image.convert("L")).var) > 200
    colours = {c for _n, c in image.getcolors(maxcolors=1 << 20)}
    # The first two models' bar colours are on the page (the charts rendered).
    assert (0x00, 0x72, 0xB2) in colours and (0xE6, 0x9F, 0x00) in colours


def _css(text: str) -> str:
    """Escape a model name for use inside a quoted CSS attribute selector."""
    return text.replace("\\", "\\\\").replace("'", "\\'")
