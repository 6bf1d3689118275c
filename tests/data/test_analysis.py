"""Quality reports kept on disk: an upload's beside it, a dataset's in its folder; the UI only reads them."""
from __future__ import annotations

from core.data import analyze_dataset_cached, analyze_upload_cached, prepare_dataset
from core.data.analysis import cached_upload_report, source_rows, upload_report_path

from .helpers import qa_rows, write_jsonl


def test_upload_report_is_computed_once_and_kept_beside_the_upload(tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "faq.jsonl", qa_rows(30))
    settings = {"format": None, "mapping": None, "model": None, "max_seq_len": 256}
    assert cached_upload_report(path, **settings) is None
    report = analyze_upload_cached(path, **settings)
    assert report["rows"] == 30 and report["info"]["format"] == "qa"
    assert upload_report_path(path, **settings).parent == tmp_path
    monkeypatch.setattr("core.data.analysis.load_rows", lambda *a, **k: 1 / 0)  # must not run again
    assert analyze_upload_cached(path, **settings) == report == cached_upload_report(path, **settings)
    assert cached_upload_report(path, **{**settings, "max_seq_len": 512}) is None  # other settings, other report


def test_dataset_report_is_its_quality_json_and_rebuilt_when_missing(tmp_path):
    path = write_jsonl(tmp_path / "faq.jsonl", qa_rows(30))
    dataset_id = prepare_dataset(path, name="faq-v1", model=None)
    report = analyze_dataset_cached(dataset_id, model=None)
    assert report["rows"] == 30
    from core.workspace import dataset_dir

    (dataset_dir(dataset_id) / "quality.json").unlink()
    again = analyze_dataset_cached(dataset_id, model=None)
    assert again["score"] == report["score"] and (dataset_dir(dataset_id) / "quality.json").exists()


def test_source_rows_are_the_uploaded_rows_by_number(tmp_path):
    path = write_jsonl(tmp_path / "faq.jsonl", qa_rows(5))
    picked = source_rows(path, [2, 99, "x"])
    assert picked == [{"row": 2, **{k: str(v) for k, v in qa_rows(5)[1].items()}}]
