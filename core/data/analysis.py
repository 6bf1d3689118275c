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
from .quality import DEFAULT, DataQualityAnalyzer
from .schema import load_conversations

REPORT_VERSION = 2  # part of the cache key: reports kept before findings had codes are made again


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
        convs, info = load_conversations(path, format=format, mapping=mapping)
        report = DataQualityAnalyzer(tokenizer=model, max_seq_len=max_seq_len).analyze(convs, info)
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
    report = analyzer.analyze(read_jsonl(source), {"format": meta.get("format")})
    if approx_note:
        report["notes"] = [approx_note]
    atomic_write_json(folder / "quality.json", report)
    return report


def source_rows(path: str | Path, rows: list, width: int = 300) -> list[dict]:
    """The uploaded file's rows with these 1-based numbers, each cell cut to ``width`` characters."""
    records = read_table(path).records
    return [{"row": r, **{k: str(v)[:width] for k, v in records[r - 1].items()}} for r in rows
            if isinstance(r, int) and 0 < r <= len(records)]
