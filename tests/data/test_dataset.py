"""prepare_dataset / load_split / DataQualityMonitor and the prepare CLI."""
from __future__ import annotations

import json

import pytest

from core.__main__ import main
from core.data import DataQualityMonitor, load_split, prepare_dataset
from core.data.findings import render_drift
from core.data.monitor import drift, figures
from core.errors import UserError
from core.workspace import dataset_dir, kind_dir
from ui.i18n import t

from .helpers import cls_rows, qa_rows, write_jsonl


def _jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_prepare_writes_the_layout(tmp_path):
    rows = qa_rows(50)
    rows[1] = dict(rows[0])
    src = write_jsonl(tmp_path / "My Upload (v1).jsonl", rows)
    ds = prepare_dataset(src, dedupe=True, seed=3, name="faq-v1", model=None)
    assert ds == "faq-v1"
    root = dataset_dir(ds)
    assert (root / "raw" / "My-Upload-v1.jsonl").read_bytes() == src.read_bytes()
    assert len(_jsonl(root / "normalized.jsonl")) == 50
    counts = {s: len(_jsonl(root / "splits" / f"{s}.jsonl")) for s in ("train", "val", "test")}
    assert counts == {"train": 39, "val": 5, "test": 5}
    meta = json.loads((root / "meta.json").read_text())
    assert meta["format"] == "qa" and meta["source_file"] == "My Upload (v1).jsonl" and meta["seed"] == 3
    assert meta["counts"] == {"records": 50, "normalized": 50, **counts}
    assert [op["op"] for op in meta["operations"]] == ["drop_empty", "dedupe", "split"]
    quality = json.loads((root / "quality.json").read_text())
    assert quality["checks"]["duplicates"]["exact"] == 1 and quality["score"] == meta["quality_score"]
    assert load_split(ds, "val") == _jsonl(root / "splits" / "val.jsonl")
    assert load_split(str(root), "test") == _jsonl(root / "splits" / "test.jsonl")


def test_prepare_same_seed_same_splits(tmp_path):
    src = write_jsonl(tmp_path / "d.jsonl", cls_rows(80))
    a = prepare_dataset(src, seed=9, model=None)
    b = prepare_dataset(src, seed=9, model=None)
    assert a != b and load_split(a, "train") == load_split(b, "train")


def test_failed_prepare_leaves_nothing(tmp_path, monkeypatch):
    src = write_jsonl(tmp_path / "d.jsonl", qa_rows(30))

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("core.data.dataset.AdvancedDataProcessor.run", boom)
    with pytest.raises(RuntimeError):
        prepare_dataset(src, name="half", model=None)
    assert [p.name for p in kind_dir("datasets").iterdir()] == []
    with pytest.raises(UserError):
        prepare_dataset(tmp_path / "missing.csv", name="half2", model=None)
    assert [p.name for p in kind_dir("datasets").iterdir()] == []


def test_prepare_refuses_bad_or_taken_names(tmp_path):
    src = write_jsonl(tmp_path / "d.jsonl", qa_rows(20))
    prepare_dataset(src, name="taken", model=None)
    with pytest.raises(UserError, match="already exists"):
        prepare_dataset(src, name="taken", model=None)
    with pytest.raises(UserError, match="path"):
        prepare_dataset(src, name="../escape", model=None)


def test_load_split_of_a_plain_file(tmp_path):
    src = write_jsonl(tmp_path / "d.jsonl", cls_rows(100))
    train, val, test = (load_split(str(src), s) for s in ("train", "val", "test"))
    assert len(train) == 90 and val == test and len(val) == 10  # 90/10, labels sharing the rounding
    assert {c["meta"]["row"] for c in train}.isdisjoint({c["meta"]["row"] for c in val})
    assert load_split(str(src), "train") == train
    with pytest.raises(UserError, match="Unknown split"):
        load_split(str(src), "dev")
    with pytest.raises(UserError, match="neither a dataset id"):
        load_split("no-such-dataset", "train")


def test_monitor_warns_on_drift(tmp_path):
    monitor = DataQualityMonitor(tmp_path / "mon.json")
    base = {"rows": 100, "checks": {"lengths": {"mean": 50.0}, "labels": {"counts": {"a": 50, "b": 50}},
                                    "script": {"shares": {"latin": 1.0, "han": 0.0}},
                                    "duplicates": {"exact_rate": 0.0, "near_rate": 0.01}}}
    assert monitor.record("faq", "v1", base) == []
    assert monitor.record("faq", "v2", base) == []
    drifted = {"rows": 100, "checks": {"lengths": {"mean": 90.0}, "labels": {"counts": {"a": 90, "c": 10}},
                                       "script": {"shares": {"latin": 0.7, "han": 0.3}},
                                       "duplicates": {"exact_rate": 0.1, "near_rate": 0.01}}}
    warnings = monitor.record("faq", "v3", drifted)
    assert [w["code"] for w in warnings] == ["length", "labels_shift", "labels_gone", "labels_new", "script",
                                             "script", "duplicates"]
    text = " ".join(w["text"] for w in warnings)
    for needle in ("mean length changed from 50 to 90 tokens (+80%)", "label distribution",
                   "missing from the new version: b.", "new labels", "Chinese characters (Han) went from 0% to 30%",
                   "duplicate rate went from 1.0% to 11.0%"):
        assert needle in text
    zh = [render_drift(w, lambda key, **fmt: t(key, "zh", **fmt)) for w in warnings]
    assert zh[0] == "平均长度从 50 变为 90 个 token（+80%）；请检查 max_seq_len，以及新数据是否属于同一类。"
    assert "汉字 从 0% 变为 30%" in zh[4]
    assert [v["version"] for v in monitor.history("faq")] == ["v1", "v2", "v3"]
    assert drift(figures(base), figures(base)) == []
    before_script_check = {k: v for k, v in figures(base).items() if k != "script"}
    assert drift(before_script_check, figures(base)) == []  # a version recorded before the script check


def test_prepare_records_versions_in_the_monitor(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", cls_rows(60, labels=3))
    b = write_jsonl(tmp_path / "b.jsonl", cls_rows(60, labels=2, seed=5))
    prepare_dataset(a, name="intents-v1", model=None)
    prepare_dataset(b, name="intents-v2", model=None)
    meta = json.loads((dataset_dir("intents-v2") / "meta.json").read_text())
    assert meta["lineage"] == "intents" and any("label_2" in w["params"].get("labels", [])
                                                for w in meta["drift_warnings"])


def test_cli_prepare_prints_id_and_json(tmp_path, capsys):
    src = write_jsonl(tmp_path / "support.jsonl", qa_rows(30))
    assert main(["prepare", str(src), "--model", "approx", "--split", "0.6,0.2,0.2", "--seed", "1"]) == 0
    ds = capsys.readouterr().out.strip()
    assert ds.startswith("support-") and (dataset_dir(ds) / "meta.json").exists()
    assert main(["prepare", str(src), "--model", "approx", "--name", "sup", "--clean", "--mask-pii", "--dedupe",
                 "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["id"] == "sup" and meta["options"] == {"dedupe": True, "clean": True, "mask_pii": True}
    assert main(["prepare", str(src), "--model", "approx", "--split", "0.5,0.5"]) == 2
    assert "--split" in capsys.readouterr().err
    assert main(["prepare", str(src), "--map", "question"]) == 2
    assert "FIELD=COLUMN" in capsys.readouterr().err


def test_cli_analyze_text_report(tmp_path, capsys):
    rows = qa_rows(30)
    rows[2]["answer"] = "write to me@example.com"
    src = write_jsonl(tmp_path / "d.jsonl", rows)
    assert main(["analyze", str(src), "--model", "approx"]) == 0
    out = capsys.readouterr().out
    assert "format qa (chat), 30 rows" in out and "quality score" in out and "--mask-pii" in out and "rows: 3" in out


def test_cli_prepare_split_source(tmp_path, capsys):
    src = tmp_path / "splits.json"
    src.write_text(json.dumps({"train": [[f"text number {i} here", f"l{i % 3}"] for i in range(30)],
                               "val": [["a val text", "l0"], ["another val text", "l1"]],
                               "test": [["the test text", "l2"]]}))
    assert main(["prepare", str(src), "--model", "approx", "--split", "source", "--name", "kept"]) == 0
    meta = json.loads((dataset_dir("kept") / "meta.json").read_text())
    assert (meta["split"], meta["counts"]["train"], meta["counts"]["val"], meta["counts"]["test"]) == ("source", 30, 2, 1)
    assert [c["messages"][0]["content"] for c in load_split("kept", "test")] == ["the test text"]
