"""Tasks as data: shipped task.yaml files, prompts as SEA-HELM writes them, labels, loaders."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from sealion_vl.errors import EvalDataError
from sealion_vl.eval.task import available_tasks, load_task
from tests.fixtures.eval_data import WC_ODD_LANG, write_fixture_datasets

EXPECTED_LANGS = {
    "xm3600": ["en", "id", "th", "vi", "tl", "zh"],
    "cvqa": ["id", "ta", "tl", "zh", "ms", "jv", "su"],
    "marvl": ["id", "ta", "zh"],
    "world_cuisine_task1": ["en", "id", "th", "tl", "zh", "jv", "su"],
    "world_cuisine_task2": ["en", "id", "th", "tl", "zh", "jv", "su"],
    "sea_ifeval": ["en", "id", "vi", "th", "tl", "jv", "su", "ta", "ms", "my", "lo", "km"],
}


@pytest.fixture(scope="module", autouse=True)
def _private_datasets_cache(tmp_path_factory):
    """Keep the ``datasets`` caches of these throwaway copies out of the user's cache."""
    import datasets

    saved = datasets.config.HF_DATASETS_CACHE
    datasets.config.HF_DATASETS_CACHE = tmp_path_factory.mktemp("hf-datasets-cache")
    yield
    datasets.config.HF_DATASETS_CACHE = saved


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return write_fixture_datasets(tmp_path_factory.mktemp("eval-data"))


def _raw(data_root: Path, repo: str, config: str, split: str) -> list[dict]:
    """Rows read straight from the fixture's parquet with pyarrow, independent of our code."""
    import pyarrow.parquet as pq

    return pq.read_table(data_root / repo / config / split / "0000.parquet").to_pylist()


def test_every_shipped_task_validates_and_loads():
    tasks = available_tasks()
    assert set(EXPECTED_LANGS) <= set(tasks)
    for name, langs in EXPECTED_LANGS.items():
        task = load_task(name)
        assert task.name == name and task.languages == langs
        assert task.scorer in {"mcq", "refclipscore", "ifeval"}
        assert task.default_group is (name != "sea_ifeval")
        header = (task.folder / "task.yaml").read_text(encoding="utf-8")
        assert header.startswith("#") and "Run: sealion-vl eval run" in header
        assert "Source: SEA-HELM" in header
        prints = {task.fingerprint(lang) for lang in langs}
        assert len(prints) == len(langs)  # per-language spec is part of the fingerprint
        assert task.fingerprint(langs[0]) == load_task(name).fingerprint(langs[0])
    # SEA-HELM's task_config.yaml `vision` group, per language
    assert load_task("cvqa").default_group_languages == ["id", "ta", "tl", "zh", "ms"]
    assert load_task("marvl").default_group_languages == ["id", "ta"]
    assert load_task("xm3600").default_group_languages == EXPECTED_LANGS["xm3600"]
    for wc in ("world_cuisine_task1", "world_cuisine_task2"):
        assert load_task(wc).default_group_languages == ["en", "id", "th", "tl", "zh"]
    assert load_task("sea_ifeval").default_group_languages == []
    assert load_task("world_cuisine_task1").aggregation_group == "world_cuisine"
    assert load_task("cvqa").aggregation_group is None


def test_cvqa_prompt_labels_and_subset(data_root):
    task = load_task("cvqa")
    docs = task.load_docs("id", data_dir=data_root)
    assert [d["ID"] for d in docs] == [f"id_{i:04d}" for i in range(10)]  # Subset filter, order
    doc = docs[0]
    item = task.item(doc, "id")
    o = doc["Options"]
    assert item.prompt == (
        "Jawablah hanya dengan menggunakan format berikut ini:\n"
        '"Jawaban: ANSWER"\n'
        "Ganti ANSWER dengan pilihan yang telah dipilih. Gunakan huruf A, B, C, atau D saja "
        "sebagai jawabannya.\n\n"
        f"Pertanyaan: {doc['Question']}\nA: {o[0]}\nB: {o[1]}\nC: {o[2]}\nD: {o[3]}"
    )
    assert item.gold == "ABCD"[doc["Label"]] and item.labels == ["A", "B", "C", "D"]
    assert item.answer_tag == "Jawaban:" and item.max_tokens == 32
    assert item.images == [doc["image"]] and item.images[0][:4] == b"\x89PNG"
    assert "image" not in item.doc and json.loads(json.dumps(item.doc))["ID"] == "id_0000"
    assert item.meta == {"category": "Food", "subset": "('Indonesian', 'Indonesia')"}
    # a reply-file doc without its image still gives the same item, image-less
    bare = task.item({k: v for k, v in doc.items() if k != "image"}, "id")
    assert bare.images == [] and bare.prompt == item.prompt
    zh = task.item(task.load_docs("zh", data_dir=data_root, limit=1)[0], "zh")
    assert zh.prompt.startswith('仅使用以下格式回答:\n"答案: ANSWER"\n')
    assert "\n\n問題: " in zh.prompt


def test_cvqa_hidden_labels_are_refused_naming_rows(tmp_path):
    root = write_fixture_datasets(tmp_path, n=5, hidden_labels=True)
    task = load_task("cvqa")
    with pytest.raises(EvalDataError) as err:
        task.items("ms", data_dir=root)
    msg = str(err.value)
    assert "'cvqa' [ms]" in msg and "2 of 5 rows" in msg
    assert "ms_0001 (-1)" in msg and "ms_0003 (-1)" in msg and "ms_0000" not in msg
    doc = task.load_docs("ms", data_dir=root)[1]
    with pytest.raises(EvalDataError, match="ms_0001"):
        task.item(doc, "ms")  # never silently "D"
    with pytest.raises(EvalDataError, match="Label"):
        task.validate([{"ID": "x", "Options": ["a"] * 4}], "ms")  # missing label


def test_xm3600_tl_uses_fil_split_and_keeps_the_trailing_space(data_root):
    task = load_task("xm3600")
    item = task.items("tl", data_dir=data_root, limit=2)[1]
    assert item.prompt == (
        "Gumawa ng image caption na isang pangungusap lamang para sa ibinigay na lawaran. \n\n"
        "Pakisagot gamit ang sumusunod na format:\n"
        '"Caption: CAPTION"\n'
        "Palitan ang CAPTION gamit ang image caption na ginawa mo."
    )
    assert item.gold == ["fil caption 1 a", "fil caption 1 b"] and item.labels == []
    assert item.max_tokens == 1024 and len(item.images) == 1
    zh = task.items("zh", data_dir=data_root, limit=1)[0]
    assert zh.prompt.endswith('"说明：CAPTION"\n将 CAPTION 替换为您的图片说明。')
    assert zh.answer_tag == "说明："


def test_marvl_zh_t2s_native_words_and_two_images(data_root):
    task = load_task("marvl")
    docs = task.load_docs("zh", data_dir=data_root, limit=2)
    assert docs[0]["hypothesis"] == "兩張圖片中都有龍，這是第0個。"  # public row unchanged
    item = task.item(docs[0], "zh")
    assert item.prompt == (
        "根据图片，所给的假设是正确还是错误？\n\n"
        "请使用以下格式提供你的答案：\n"
        '"答案： ANSWER"\n'
        "将 ANSWER 替换为 正确 或 错误。\n\n"
        "假设：\n两张图片中都有龙，这是第0个。"
    )
    assert (item.gold, task.item(docs[1], "zh").gold) == ("正确", "错误")
    assert item.answer_tag == "答案：" and item.labels == ["正确", "错误"]
    assert item.images == [docs[0]["left_img"], docs[0]["right_img"]]
    assert item.images[1][:4] == b"\x89PNG"
    assert not any(k.endswith("_img") for k in item.doc)  # all image columns gone
    ta = task.items("ta", data_dir=data_root, limit=1)[0]
    assert "“பதில்: ANSWER”" in ta.prompt and ta.gold == "உண்மை"
    idi = task.items("id", data_dir=data_root, limit=2)[1]
    assert idi.gold == "Salah" and idi.prompt.endswith("\n\nHipotesis:\n" + idi.doc["hypothesis"])


def _reorder_directly(raw: list[dict], types: list[int]) -> list[tuple]:
    rng = np.random.default_rng(3722236)
    out = []
    for t in types:
        sub = [r for r in raw if r["prompt_type"] == t]
        idx = [0, 1, 2, 3, 4] * -(-len(sub) // 5)
        rng.shuffle(idx)
        for r, i in zip(sub, idx[: len(sub)], strict=True):
            opts = list(r["options"])
            opts.insert(i, opts.pop(r["mcq_answer_index"]))
            out.append((r["qa_id"], opts, i))
    return out


@pytest.mark.parametrize(
    ("name", "types"), [("world_cuisine_task1", [1, 3, 4]), ("world_cuisine_task2", [2])]
)
def test_world_cuisines_reordering_matches_numpy(data_root, name, types):
    task = load_task(name)
    config = name.removeprefix("world_cuisine_")
    raw = [
        r
        for r in _raw(data_root, "worldcuisines/vqa-v1.1", config, "test_large")
        if r["lang"] == "zh_cn"
    ]
    docs = task.load_docs("zh", data_dir=data_root)
    assert len(raw) % 5 == 0 and len(docs) == len(raw)
    # SEA-HELM's own construction when sizes are multiples of 5: [0..4] * (n // 5)
    rng = np.random.default_rng(3722236)
    sea = []
    for t in types:
        idx = [0, 1, 2, 3, 4] * (sum(r["prompt_type"] == t for r in raw) // 5)
        rng.shuffle(idx)
        sea += idx
    assert [d["mcq_answer_index"] for d in docs] == sea
    assert [(d["qa_id"], d["options"], d["mcq_answer_index"]) for d in docs] == (
        _reorder_directly(raw, types)
    )
    by_id = {r["qa_id"]: r for r in raw}
    for d in docs:  # the correct answer text is unchanged, only moved
        assert d["options"][d["mcq_answer_index"]] == by_id[d["qa_id"]]["answer"]
    item = task.item(docs[0], "zh")
    o = docs[0]["options"]
    assert item.prompt == (
        "仅使用以下格式回答:\n"
        '"答案: ANSWER"\n'
        "将 ANSWER 替换为您选择的答案。使用字母 A、B、C、D 或 E 作为答案。\n\n"
        f"问题: {docs[0]['question']}\nA: {o[0]}\nB: {o[1]}\nC: {o[2]}\nD: {o[3]}\nE: {o[4]}"
    )
    assert item.gold == "ABCDE"[docs[0]["mcq_answer_index"]]
    assert item.images[0][:3] == b"\xff\xd8\xff"  # re-encoded as JPEG, as SEA-HELM sends it
    assert item.meta["prompt_type"] == types[0] and "image" not in item.doc


def test_world_cuisines_subset_not_a_multiple_of_five(data_root):
    task = load_task("world_cuisine_task1")
    raw = [
        r
        for r in _raw(data_root, "worldcuisines/vqa-v1.1", "task1", "test_large")
        if r["lang"] == WC_ODD_LANG
    ]
    assert len(raw) % 5 != 0
    docs = task.load_docs("jv", data_dir=data_root)  # SEA-HELM crashes here
    assert [(d["qa_id"], d["options"], d["mcq_answer_index"]) for d in docs] == (
        _reorder_directly(raw, [1, 3, 4])
    )
    limited = task.load_docs("en", data_dir=data_root, limit=7)  # limit on raw rows first
    assert len(limited) == 7 and [d["prompt_type"] for d in limited] == [1, 1, 1, 3, 3, 4, 4]
    bad = dict(docs[0], mcq_answer_index=7)
    with pytest.raises(EvalDataError, match="mcq_answer_index"):
        task.item(bad, "jv")


def test_sea_ifeval_prompt_is_the_text(data_root):
    task = load_task("sea_ifeval")
    docs = task.load_docs("th", data_dir=data_root, limit=3)
    item = task.item(docs[2], "th")
    assert item.prompt == "[th] Tulis tentang kota nomor 2, starting with the word halo."
    assert item.gold is None and item.labels == [] and item.answer_tag == ""
    assert item.max_tokens == 4096 and item.images == []
    assert item.meta == {"category": "startend", "subcategory": "startend:first_word"}
    assert item.doc["kwargs"][0]["first_word"] == "halo"
    assert task.version == "1.1"


USER_YAML = """# my task
name: my_echo
version: 3
competency: custom
scorer: mcq
metric: accuracy
source: {path: aisingapore/Instruction-Following-IFEval, config: "{lang}", split: eval}
id_column: id
fields: {text: "prompts[0].text"}
languages:
  ms:
    max_tokens: 8
    labels: [Y, N]
    prompt_template: {preamble: "Say {answer_tag}", task_template: "{text}!", answer_tag: "Ans:"}
"""
USER_HOOKS = """
def to_fields(task, doc, lang):
    return {"gold": "Y", "meta": {"who": "user"}}

def score(items, responses, **kw):
    return {"n": len(items), "hits": sum(r == i.gold for i, r in zip(items, responses))}
"""


def test_user_task_dir_with_hooks_score(tmp_path, data_root):
    folder = tmp_path / "mine" / "my_echo"
    folder.mkdir(parents=True)
    (folder / "task.yaml").write_text(USER_YAML)
    (folder / "hooks.py").write_text(USER_HOOKS)
    assert "my_echo" not in available_tasks()
    found = available_tasks([tmp_path / "mine"])
    assert found["my_echo"] == folder and "cvqa" in found
    task = load_task("my_echo", [tmp_path / "mine"])
    items = task.items("ms", data_dir=data_root, limit=2)
    assert items[0].prompt == "Say Ans:\n\n[ms] Tulis tentang kota nomor 0, 5+ words.!"
    assert items[0].gold == "Y" and items[0].meta == {"who": "user"}
    assert task.score_hook()(items, ["Y", "N"]) == {"n": 2, "hits": 1}
    assert load_task(folder).name == "my_echo" and load_task("cvqa").score_hook() is None
    before = task.fingerprint("ms")
    (folder / "hooks.py").write_text(USER_HOOKS + "\n# changed\n")
    assert load_task(folder).fingerprint("ms") != before  # hooks source is fingerprinted


def test_unknown_task_language_and_bad_specs(tmp_path, data_root):
    with pytest.raises(EvalDataError, match="unknown task 'nope'.*cvqa.*xm3600"):
        load_task("nope")
    with pytest.raises(EvalDataError, match="no language 'fr'.*id, ta, zh"):
        load_task("marvl").items("fr", data_dir=data_root)
    with pytest.raises(EvalDataError, match="does not exist"):
        available_tasks([tmp_path / "missing"])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "task.yaml").write_text("name: bad\nversion: 1\n")
    with pytest.raises(EvalDataError, match="invalid task spec"):
        load_task(bad)


def test_missing_dataset_names_both_places(tmp_path):
    with pytest.raises(EvalDataError) as err:
        load_task("cvqa").load_docs("id", data_dir=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "afaji" / "cvqa") in msg and "missing" in msg
    assert "Hugging Face hub/cache 'afaji/cvqa'" in msg and "huggingface-cli download" in msg


def test_fixture_is_deterministic(tmp_path):
    def digest(root: Path) -> dict:
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    a = digest(write_fixture_datasets(tmp_path / "a", n=3))
    assert a == digest(write_fixture_datasets(tmp_path / "b", n=3))
    assert a != digest(write_fixture_datasets(tmp_path / "c", n=3, seed=1))


SHARED_HOOKS = """
def to_fields(task, doc, lang):
    return {"gold": task.spec.params["answer"]}

def score(items, responses, *, lang, task):
    return {"task": task.name, "hits": sum(r == i.gold for i, r in zip(items, responses))}
"""


def test_task_folders_naming_a_shared_hooks_module(tmp_path, data_root, monkeypatch):
    import sys

    from sealion_vl.eval.scoring import score_task

    lib, mine = tmp_path / "lib", tmp_path / "mine"
    lib.mkdir()
    (lib / "sealion_test_shared_hooks.py").write_text(SHARED_HOOKS)
    monkeypatch.syspath_prepend(str(lib))
    monkeypatch.delitem(sys.modules, "sealion_test_shared_hooks", raising=False)

    def write(name: str, answer: str) -> None:
        (mine / name).mkdir(parents=True, exist_ok=True)
        spec = f"name: {name}\nhooks: sealion_test_shared_hooks\nparams: {{answer: {answer}}}"
        (mine / name / "task.yaml").write_text(USER_YAML.replace("name: my_echo", spec))

    write("echo_y", "Y")
    write("echo_n", "N")
    try:
        tasks = {n: load_task(n, [mine]) for n in ("echo_y", "echo_n")}
        items = {n: t.items("ms", data_dir=data_root, limit=2) for n, t in tasks.items()}
        assert [it.gold for it in items["echo_y"]] == ["Y", "Y"]
        assert [it.gold for it in items["echo_n"]] == ["N", "N"]
        assert (
            items["echo_n"][0].prompt == "Say Ans:\n\n[ms] Tulis tentang kota nomor 0, 5+ words.!"
        )
        ts = score_task(tasks["echo_n"], "ms", items["echo_n"], ["N", "Y"])  # task bound
        assert ts == {"task": "echo_n", "hits": 1}
        # the module's source is fingerprinted: editing it changes every task naming it
        before = {n: t.fingerprint("ms") for n, t in tasks.items()}
        assert before == {n: load_task(n, [mine]).fingerprint("ms") for n in tasks}
        (lib / "sealion_test_shared_hooks.py").write_text(SHARED_HOOKS + "\n# changed\n")
        after = {n: load_task(n, [mine]).fingerprint("ms") for n in tasks}
        assert all(after[n] != before[n] for n in tasks)
        # a gold outside the label words is refused by the generic check, naming the rows
        write("echo_y", "Z")
        with pytest.raises(EvalDataError, match=r"'echo_y' \[ms\]: 2 of 2 rows .*\['Y', 'N'\]"):
            load_task("echo_y", [mine]).items("ms", data_dir=data_root, limit=2)
        # a folder hooks.py next to a named module is ambiguous; a bad module name is named
        (mine / "echo_n" / "hooks.py").write_text(USER_HOOKS)
        with pytest.raises(EvalDataError, match="keep one of them"):
            load_task("echo_n", [mine])
        write("echo_y", "Y")
        text = (mine / "echo_y" / "task.yaml").read_text()
        (mine / "echo_y" / "task.yaml").write_text(text.replace("hooks: sealion_test", "hooks: no"))
        with pytest.raises(EvalDataError, match="hooks module 'no_shared_hooks' failed to load"):
            load_task("echo_y", [mine])
    finally:
        sys.modules.pop("sealion_test_shared_hooks", None)
