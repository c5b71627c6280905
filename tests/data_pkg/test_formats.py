"""Training data formats: JSONL, WebDataset shards and HF datasets into one Sample form."""

from __future__ import annotations

import gzip
import inspect
import io
import json
import tarfile

import datasets
import pytest
from PIL import Image

from sealion_vl.data import formats
from sealion_vl.data.formats import (
    REASONS,
    Sample,
    SkipReport,
    caption_to_messages,
    iter_samples,
    read_jsonl,
)
from sealion_vl.media import MediaLimits


def _png(size=(48, 40), colour=(200, 30, 30), fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, fmt)
    return buf.getvalue()


def _write_jsonl(path, rows, gz=False) -> None:
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows]
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)


def _turns(sample: Sample) -> list[tuple[str, list]]:
    """(role, [text or ("image", size)]) per turn: easy to compare."""
    return [
        (m.role, [p.text if p.type == "text" else (p.type, p.source.size) for p in m.parts])
        for m in sample.messages
    ]


def _run(source, **kw):
    report = kw.pop("report", None) or SkipReport()
    return list(iter_samples(source, report=report, **kw)), report


@pytest.fixture
def images(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    (d / "a.png").write_bytes(_png((48, 40)))
    (d / "b.jpg").write_bytes(_png((40, 56), fmt="JPEG"))
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    return d


A, B = ("image", (48, 40)), ("image", (40, 56))


# --------------------------------------------------------------------------- JSONL


def test_jsonl_conversations_all_styles(tmp_path, images):
    rows = [
        {  # OpenAI style, path relative to the JSONL's folder
            "id": "oai",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "imgs/a.png"}},
                        {"type": "text", "text": "Apa ini?"},
                    ],
                },
                {"role": "assistant", "content": "Nasi lemak."},
            ],
            "lang": "ms",
        },
        {  # HF style with an absolute path
            "id": "hf",
            "messages": [
                {"role": "user", "content": [{"type": "image", "path": str(images / "b.jpg")}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Satay."}]},
            ],
        },
        {  # bare placeholders filled from "images", in order
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image"},
                        {"type": "text", "text": "vs"},
                        {"type": "image"},
                    ],
                },
                {"role": "assistant", "content": "Same dish."},
            ],
            "images": ["imgs/b.jpg", "imgs/a.png"],
        },
    ]
    _write_jsonl(tmp_path / "conv.jsonl", rows)
    samples, report = _run(tmp_path / "conv.jsonl")
    assert report.total_skipped == 0 and report.yielded == 3
    assert [s.id for s in samples] == ["oai", "hf", "conv.jsonl:3"]
    assert all(s.kind == "conversation" for s in samples)
    assert _turns(samples[0]) == [
        ("system", ["Be brief."]),
        ("user", [A, "Apa ini?"]),
        ("assistant", ["Nasi lemak."]),
    ]
    assert samples[0].meta["lang"] == "ms" and samples[0].meta["line"] == 1
    assert _turns(samples[1]) == [("user", [B]), ("assistant", ["Satay."])]
    assert _turns(samples[2])[0] == ("user", [B, "vs", A])
    assert all(im.mode == "RGB" for s in samples for im in s.images)


def test_sharegpt_image_markers_placed_in_order(tmp_path, images):
    rows = [
        {
            "conversations": [
                {"from": "system", "value": "Jawab ringkas."},
                {"from": "human", "value": "<image>\nApa ini?"},
                {"from": "gpt", "value": "Rendang."},
                {"from": "human", "value": "Compare <image> and <image>."},
                {"from": "gpt", "value": "Both spicy."},
            ],
            "images": ["imgs/a.png", "imgs/b.jpg", "imgs/a.png"],
        },
        {  # LLaMA-Factory "messages" with <image> markers and a single "image"
            "messages": [
                {"role": "user", "content": "What is shown? <image>"},
                {"role": "assistant", "content": "A flag."},
            ],
            "image": "imgs/b.jpg",
        },
    ]
    _write_jsonl(tmp_path / "sg.jsonl", rows)
    (s1, s2), report = _run(tmp_path / "sg.jsonl")
    assert report.total_skipped == 0
    assert _turns(s1) == [
        ("system", ["Jawab ringkas."]),
        ("user", [A, "Apa ini?"]),
        ("assistant", ["Rendang."]),
        ("user", ["Compare", B, "and", A, "."]),
        ("assistant", ["Both spicy."]),
    ]
    assert _turns(s2) == [("user", ["What is shown?", B]), ("assistant", ["A flag."])]


def test_jsonl_captions_and_prompt(tmp_path, images):
    root = tmp_path / "elsewhere"
    root.mkdir()
    (root / "c.png").write_bytes(_png((30, 20)))
    rows = [
        {"id": "c1", "image": "c.png", "caption": "Pasar malam di Jakarta."},
        {"image_path": "c.png", "text": "A night market.", "lang": "en"},
        {"image_id": "x1", "image": "c.png", "captions": ["", "Chợ đêm.", "Phiên chợ."],
         "locale": "vi"},
    ]  # fmt: skip
    _write_jsonl(tmp_path / "cap.jsonl.gz", rows, gz=True)
    samples, report = _run(tmp_path / "cap.jsonl.gz", image_root=root, caption_prompt="Caption:")
    assert report.total_skipped == 0
    assert [s.id for s in samples] == ["c1", "cap.jsonl.gz:2", "cap.jsonl.gz:3"]
    assert all(s.kind == "caption" for s in samples)
    assert _turns(samples[0]) == [
        ("user", [("image", (30, 20)), "Caption:"]),
        ("assistant", ["Pasar malam di Jakarta."]),
    ]
    assert samples[1].meta["lang"] == "en"
    # a captions list gives one sample (first non-empty), the list is kept in meta
    assert _turns(samples[2])[1] == ("assistant", ["Chợ đêm."])
    assert samples[2].meta["locale"] == "vi" and samples[2].meta["image_id"] == "x1"
    assert samples[2].meta["captions"] == ["", "Chợ đêm.", "Phiên chợ."]
    # caption_to_messages is the same shape, without a prompt part when none is given
    msgs = caption_to_messages(Image.new("RGB", (4, 4)), "x")
    assert [(m.role, [p.type for p in m.parts]) for m in msgs] == [
        ("user", ["image"]),
        ("assistant", ["text"]),
    ]


def test_mixed_good_and_bad_rows_skipped_counted_listed(tmp_path, images):
    good = {"image": "imgs/a.png", "caption": "ok"}
    rows = [
        {**good, "id": "good-1"},
        "{not json",
        json.dumps(["a", "list"]),
        {"id": "unknown-shape", "question": "?"},
        {"id": "no-file", "image": "imgs/nope.png", "caption": "x"},
        {"id": "broken", "image": "imgs/broken.png", "caption": "x"},
        {"id": "url", "image": "https://example.com/a.png", "caption": "x"},
        {"id": "mismatch", "images": ["imgs/a.png"], "conversations": [
            {"from": "human", "value": "<image><image> two?"}, {"from": "gpt", "value": "y"}]},
        {"id": "raw-token", "image": "imgs/a.png", "caption": "a <start_of_image> b"},
        {"id": "blank", "image": "imgs/a.png", "caption": "  \n"},
        {"id": "no-answer", "messages": [{"role": "user", "content": "hi"}]},
        {"id": "long", "image": "imgs/a.png", "caption": "word " * 50},
        {"id": "bad-role", "messages": [{"role": "robot", "content": "x"}]},
        {"id": "no-video", "messages": [
            {"role": "user", "content": [{"type": "video", "path": "clips/nope.mp4"}]},
            {"role": "assistant", "content": "x"}]},
        {"id": "no-audio", "messages": [
            {"role": "user", "content": [{"type": "audio", "path": "clips/nope.wav"}]},
            {"role": "assistant", "content": "x"}]},
        {"id": "no-video-file-url", "messages": [
            {"role": "user", "content": [{"type": "video", "url": "file:///nope/clip.mp4"}]},
            {"role": "assistant", "content": "x"}]},
        {**good, "id": "good-2"},
        {"id": "video-ok", "messages": [
            {"role": "user", "content": [{"type": "video", "path": "clips/ok.mp4"}]},
            {"role": "assistant", "content": "fine"}]},
    ]  # fmt: skip
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "ok.mp4").write_bytes(b"not decoded here")
    _write_jsonl(tmp_path / "mixed.jsonl", rows)
    samples, report = _run(
        tmp_path / "mixed.jsonl",
        max_tokens=20,
        count_tokens=lambda s: sum(len(m.text.split()) for m in s.messages),
    )
    assert [s.id for s in samples] == ["good-1", "good-2", "video-ok"]
    assert samples[0].meta["num_tokens"] == 1
    expected = {
        "bad_record": ["mixed.jsonl:2", "mixed.jsonl:3", "unknown-shape", "bad-role"],
        "missing_image": ["no-file", "url"],
        "corrupt_image": ["broken"],
        "image_token_mismatch": ["mismatch", "raw-token"],
        "empty_text": ["blank", "no-answer"],
        "too_long": ["long"],
        "missing_media": ["no-video", "no-audio", "no-video-file-url"],
    }
    assert {r: report.ids[r] for r in REASONS} == {r: expected.get(r, []) for r in REASONS}
    assert report.counts == {r: len(expected[r]) for r in REASONS}
    assert report.total_skipped == 15 and report.yielded == 3
    d = report.to_dict()
    assert d["reasons"]["too_long"]["examples"][0]["detail"].startswith("50 tokens")
    assert "1 placeholder" not in d["reasons"]["image_token_mismatch"]["examples"][0]["detail"]
    assert report.summary().startswith("3 samples, 15 skipped")


def test_limits_apply_and_truncated_gzip_reported(tmp_path, images):
    rows = [{"id": f"r{i}", "image": "imgs/a.png", "caption": "x"} for i in range(50)]
    _write_jsonl(tmp_path / "t.jsonl.gz", rows, gz=True)
    data = (tmp_path / "t.jsonl.gz").read_bytes()
    (tmp_path / "t.jsonl.gz").write_bytes(data[: len(data) // 2])
    samples, report = _run(tmp_path / "t.jsonl.gz")
    assert 0 < len(samples) < 50 and report.counts["bad_record"] == 1
    assert "unreadable" in report.to_dict()["reasons"]["bad_record"]["examples"][0]["detail"]
    # the media limits reach the decoder: a pixel cap below the image size skips it
    _, report = _run(tmp_path / "t.jsonl.gz", limits=MediaLimits(max_pixels=100))
    assert report.counts["corrupt_image"] == report.total_skipped - 1 > 0


def test_streaming_is_lazy(tmp_path, images):
    lines = [json.dumps({"id": "first", "image": "imgs/a.png", "caption": "ok"})]
    lines += ["{broken"] * 1000 + ["\xff garbage"]
    (tmp_path / "lazy.jsonl").write_text("\n".join(lines))
    report = SkipReport()
    gen = iter_samples(tmp_path / "lazy.jsonl", report=report)
    assert inspect.isgenerator(gen) and report.total_skipped == 0
    assert next(gen).id == "first"
    assert report.total_skipped == 0 and report.yielded == 1
    assert sum(1 for _ in gen) == 0 and report.counts["bad_record"] == 1001


def test_read_jsonl_gives_plain_records(tmp_path, images):
    _write_jsonl(tmp_path / "r.jsonl", [{"id": "a", "image": "imgs/a.png", "caption": "c"}, "x"])
    recs = list(read_jsonl(tmp_path / "r.jsonl"))
    assert recs[0]["kind"] == "caption"
    assert recs[0]["messages"][0]["content"][0]["image"] == str(images / "a.png")
    json.dumps(recs)  # plain JSON: no images are opened at this stage
    assert recs[1]["error"] == "bad_record" and recs[1]["id"] == "r.jsonl:2"


def test_call_errors_raise_at_call_time(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        iter_samples(tmp_path / "missing.jsonl", report=SkipReport())
    with pytest.raises(ValueError, match="count_tokens"):
        iter_samples(tmp_path, report=SkipReport(), max_tokens=5)
    with pytest.raises(ValueError, match="kind"):
        iter_samples(tmp_path, report=SkipReport(), kind="vqa")
    with pytest.raises(ValueError, match="No training data"):
        iter_samples(tmp_path, report=SkipReport())
    with pytest.raises(FileNotFoundError, match="No file matches"):
        iter_samples(str(tmp_path / "*.jsonl"), report=SkipReport())


def test_lists_globs_and_kind_filter(tmp_path, images):
    _write_jsonl(tmp_path / "p1.jsonl", [{"id": "c", "image": "imgs/a.png", "caption": "x"}])
    conv = {"id": "v", "messages": [{"role": "user", "content": "hi"},
                                    {"role": "assistant", "content": "yo"}]}  # fmt: skip
    _write_jsonl(tmp_path / "p2.jsonl", [conv])
    samples, _ = _run(str(tmp_path / "p*.jsonl"))
    assert [(s.id, s.kind) for s in samples] == [("c", "caption"), ("v", "conversation")]
    samples, report = _run([tmp_path / "p2.jsonl", tmp_path / "p1.jsonl"], kind="conversation")
    assert [s.id for s in samples] == ["v"] and report.ids["bad_record"] == ["c"]
    assert _turns(samples[0]) == [("user", ["hi"]), ("assistant", ["yo"])]


# --------------------------------------------------------------------------- WebDataset


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _shard(path, samples: list[tuple[str, dict[str, bytes]]]) -> None:
    with tarfile.open(path, "w") as tar:
        for key, members in samples:
            for ext, data in members.items():
                _add(tar, f"{key}.{ext}", data)


def test_webdataset_shards(tmp_path):
    conv = {"messages": [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Beza?"},
                                     {"type": "image"}]},
        {"role": "assistant", "content": "Warna."}], "lang": "ms"}  # fmt: skip
    _shard(tmp_path / "shard-000.tar", [
        ("s/0001", {"jpg": _png((32, 24), fmt="JPEG"), "txt": b"Kopi tiam."}),
        ("s/0002", {"png": _png((20, 20)), "json": json.dumps(
            {"caption": "Wat Arun.", "lang": "th", "id": "wat"}).encode()}),
        ("s/0003", {"0.png": _png((10, 12)), "1.webp": _png((14, 16), fmt="WEBP"),
                    "json": json.dumps(conv).encode()}),
        ("s/0004", {"jpg": b"junk", "txt": b"x"}),
        ("s/0005", {"txt": b"caption without image"}),
    ])  # fmt: skip
    _shard(tmp_path / "shard-001.tar", [("t/0001", {"png": _png((8, 8)), "txt": b" "})])
    samples, report = _run(str(tmp_path / "shard-{000..001}.tar"))
    assert [s.id for s in samples] == ["s/0001", "wat", "s/0003"]
    assert _turns(samples[0]) == [("user", [("image", (32, 24))]), ("assistant", ["Kopi tiam."])]
    assert samples[1].meta["lang"] == "th" and samples[1].meta["key"] == "s/0002"
    assert samples[2].kind == "conversation"
    assert _turns(samples[2])[0] == ("user", [("image", (10, 12)), "Beza?", ("image", (14, 16))])
    assert report.ids["corrupt_image"] == ["s/0004"]
    assert report.ids["missing_image"] == ["s/0005"]
    assert report.ids["empty_text"] == ["t/0001"]
    # a folder of shards, and a truncated shard: good samples first, then one bad_record
    data = (tmp_path / "shard-000.tar").read_bytes()
    (tmp_path / "shard-001.tar").write_bytes(data[:3000])
    samples2, report2 = _run(tmp_path)
    assert [s.id for s in samples2][:3] == ["s/0001", "wat", "s/0003"]
    assert report2.counts["bad_record"] == 1


# --------------------------------------------------------------------------- HF datasets


@pytest.fixture
def hf_dataset():
    good, bad = {"bytes": _png((24, 18)), "path": None}, {"bytes": b"junk", "path": None}
    caption = datasets.Dataset.from_dict(
        {"image_id": ["i1", "i2", "i3"], "image": [good, bad, good],
         "captions": [["Pantai.", "Laut."], ["x"], [" "]], "lang": ["id", "id", "id"]},
        features=datasets.Features({
            "image_id": datasets.Value("string"), "image": datasets.Image(),
            "captions": datasets.List(datasets.Value("string")), "lang": datasets.Value("string"),
        }),
    )  # fmt: skip
    part = {"type": datasets.Value("string"), "text": datasets.Value("string")}
    conv = datasets.Dataset.from_dict(
        {"id": ["c1", "c2"], "pics": [[good, good], [good]], "messages": [
            [{"role": "user", "content": [{"type": "image", "text": None},
                                          {"type": "image", "text": None},
                                          {"type": "text", "text": "Dua?"}]},
             {"role": "assistant", "content": [{"type": "text", "text": "Ya."}]}],
            [{"role": "user", "content": [{"type": "text", "text": "No image here"}]},
             {"role": "assistant", "content": [{"type": "text", "text": "Hm."}]}]]},
        features=datasets.Features({
            "id": datasets.Value("string"), "pics": datasets.List(datasets.Image()),
            "messages": datasets.List({"role": datasets.Value("string"),
                                       "content": datasets.List(part)}),
        }),
    )  # fmt: skip
    return caption, conv


def test_hf_dataset_objects(hf_dataset):
    caption, conv = hf_dataset
    samples, report = _run(caption)
    assert [s.id for s in samples] == ["dataset:0"]  # no id/key column: name:index
    assert _turns(samples[0]) == [("user", [("image", (24, 18))]), ("assistant", ["Pantai."])]
    assert samples[0].meta["lang"] == "id" and samples[0].meta["image_id"] == "i1"
    assert report.ids == {**{r: [] for r in REASONS}, "corrupt_image": ["dataset:1"],
                          "empty_text": ["dataset:2"]}  # fmt: skip
    samples, report = _run(datasets.DatasetDict({"train": caption, "dev": conv}), split="dev")
    assert [s.id for s in samples] == ["c1"]
    assert _turns(samples[0])[0] == ("user", [("image", (24, 18)), ("image", (24, 18)), "Dua?"])
    assert report.ids["image_token_mismatch"] == ["c2"]
    with pytest.raises(KeyError, match="split"):
        list(iter_samples(datasets.DatasetDict({"train": caption}), split="x", report=report))


def test_hf_saved_and_parquet_folders(tmp_path, hf_dataset):
    caption, conv = hf_dataset
    conv.save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": caption}).save_to_disk(str(tmp_path / "saved_dict"))
    pq = tmp_path / "pq"
    pq.mkdir()
    caption.to_parquet(str(pq / "train-00000.parquet"))
    samples, report = _run(tmp_path / "saved")
    assert [s.id for s in samples] == ["c1"] and report.ids["image_token_mismatch"] == ["c2"]
    samples, _ = _run(tmp_path / "saved_dict")
    assert [s.meta["index"] for s in samples] == [0]
    samples, report = _run(pq)  # datasets.load_dataset on a local parquet folder (streamed)
    assert [(s.meta["image_id"], s.images[0].size) for s in samples] == [("i1", (24, 18))]
    assert report.total_skipped == 2


def test_hf_image_paths_resolve_and_missing(tmp_path, images):
    ds = datasets.Dataset.from_dict(
        {"id": ["p1", "p2"], "image": [{"bytes": None, "path": "a.png"},
                                       {"bytes": None, "path": "gone.png"}], "text": ["t", "u"]},
        features=datasets.Features({"id": datasets.Value("string"), "image": datasets.Image(),
                                    "text": datasets.Value("string")}),
    )  # fmt: skip
    samples, report = _run(ds, image_root=images)
    assert [s.images[0].size for s in samples] == [(48, 40)]
    assert report.ids["missing_image"] == ["p2"]


# --------------------------------------------------------------------------- report


def test_report_caps_ids_merges_and_writes_atomically(tmp_path, monkeypatch):
    report = SkipReport(max_ids=2)
    for i in range(5):
        report.add(f"r{i}", "too_long", "long")
    with pytest.raises(ValueError, match="unknown skip reason"):
        report.add("x", "ugly")
    other = SkipReport()
    other.add("z", "empty_text")
    other.yielded = 3
    report.merge(other)
    d = report.to_dict()
    assert d["reasons"]["too_long"] == {
        "count": 5, "ids": ["r0", "r1"], "ids_truncated": True,
        "examples": [{"id": f"r{i}", "detail": "long"} for i in range(5)],
    }  # fmt: skip
    assert d["total_skipped"] == 6 and d["yielded"] == 3
    out = report.write(tmp_path / "run" / "skips.json")
    assert json.loads(out.read_text()) == d
    # a failing write leaves the previous report whole and no temp file behind
    before = out.read_text()
    monkeypatch.setattr(formats.json, "dump", lambda *a, **k: (_ for _ in ()).throw(OSError))
    with pytest.raises(OSError):
        report.write(out)
    assert out.read_text() == before
    assert [p.name for p in out.parent.iterdir()] == ["skips.json"]
