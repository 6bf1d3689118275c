"""Quality reports on disk: analyse an upload or a dataset once, keep the report, and read it back.

An upload's report is kept beside it (``<upload>.quality-<digest>.json``, the digest covering the format,
mapping, model and max_seq_len it was made with); a dataset's is its ``quality.json``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.fileio import atomic_write_json, read_json
from core.workspace import dataset_dir

from .dataset import make_analyzer, read_jsonl
from .io import read_table
from .kinds import analyze_rows, dataset_kind, load_rows
from .pairs import PreferencePair
from .quality import DEFAULT, DataQualityAnalyzer

REPORT_VERSION = 3  # part of the cache key: reports kept before findings had codes (2) or kinds (3) are made again


def upload_report_path(path: str | Path, format: str | None, mapping: dict | None, model: str,
                       max_seq_len: int) -> Path:
    """Where the report of an upload analysed with these settings is kept."""
    key = json.dumps([REPORT_VERSION, format, mapping, model, max_seq_len], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return Path(path).with_name(Path(path).name + f".quality-{digest}.json")


def analyze_upload_cached(path: str | Path, *, format: str | None = None, mapping: dict | None = None,
                          model: str = DEFAULT, max_seq_len: int = 512, refresh: bool = False) -> dict:
    """The upload's quality report: the kept one, or (``refresh`` or none kept) a new one, then kept."""
    target = upload_report_path(path, format, mapping, model, max_seq_len)
    report = None if refresh else read_json(target, None)
    if report is None:
        rows, info = load_rows(path, format=format, mapping=mapping)
        report = analyze_rows(rows, info, DataQualityAnalyzer(tokenizer=model, max_seq_len=max_seq_len))
        report["info"] = info
        atomic_write_json(target, report)
    return report


def cached_upload_report(path: str | Path, *, format: str | None = None, mapping: dict | None = None,
                         model: str = DEFAULT, max_seq_len: int = 512) -> dict | None:
    """The kept report of an upload with these settings, or None (nothing is computed)."""
    return read_json(upload_report_path(path, format, mapping, model, max_seq_len), None)


def analyze_dataset_cached(dataset_id: str, model: Any = DEFAULT, max_seq_len: int = 512) -> dict:
    """A prepared dataset's quality report (its quality.json; made from normalized.jsonl when missing)."""
    folder = dataset_dir(dataset_id)
    report = read_json(folder / "quality.json", None)
    if report is not None:
        return report
    source = folder / "normalized.jsonl"
    if not source.exists():
        raise UserError(f"Dataset {dataset_id!r} has no normalized.jsonl; prepare it again with "
                        "`python -m core prepare`.")
    meta = read_json(folder / "meta.json", {}) or {}
    analyzer, approx_note = make_analyzer(model, max_seq_len)
    kind = dataset_kind(folder)
    rows = read_jsonl(source)
    if kind == "preference":
        rows = [PreferencePair.from_dict(r) for r in rows]
    report = analyze_rows(rows, {"format": meta.get("format"), "kind": kind}, analyzer)
    if approx_note:
        report["notes"] = [approx_note]
    atomic_write_json(folder / "quality.json", report)
    return report


def source_rows(path: str | Path, rows: list, width: int = 300) -> list[dict]:
    """The uploaded file's rows with these 1-based numbers, each cell cut to ``width`` characters."""
    records = read_table(path).records
    return [{"row": r, **{k: str(v)[:width] for k, v in records[r - 1].items()}} for r in rows
            if isinstance(r, int) and 0 < r <= len(records)]
