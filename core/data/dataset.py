"""Datasets in the workspace: ``prepare_dataset`` writes one, ``load_split`` reads a split back.

``datasets/<id>/``: ``raw/<file>`` (the upload, byte for byte), ``normalized.jsonl`` (every row as a
conversation, before processing), ``splits/{train,val,test}.jsonl``, ``quality.json`` (the analyzer's report
of the normalised rows) and ``meta.json``. The folder is built under a hidden temporary name inside
``datasets/`` and renamed into place at the end, so a failed prepare leaves nothing half-written.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any, Sequence

from core.errors import UserError
from core.fileio import atomic_write_json
from core.workspace import dataset_dir, kind_dir, new_id, slugify, validate_id

from .findings import note
from .kinds import analyze_rows, dataset_kind, load_rows
from .monitor import DataQualityMonitor
from .pair_processing import process_pairs
from .pairs import PreferencePair
from .preference import HELP as PREFERENCE_HELP
from .preference import read_preference_split
from .preference_quality import identical_or_empty
from .processing import SPLITS, AdvancedDataProcessor, parse_split
from .quality import DEFAULT, DataQualityAnalyzer

FILE_HOLDOUT = 0.1  # a plain data file given to load_split: seeded 90/10 train/holdout


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    """Every record of a JSON Lines file this module wrote."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def safe_filename(name: str) -> str:
    """A file name without path parts or odd characters (keeps the extension)."""
    base = os.path.basename(name.replace("\\", "/"))
    stem, ext = os.path.splitext(base)
    ext = re.sub(r"[^A-Za-z0-9.]", "", ext)[:12]
    return f"{slugify(stem, 'upload')}{ext.lower()}"


def make_analyzer(model: Any, max_seq_len: int) -> tuple[DataQualityAnalyzer, dict | None]:
    """The analyzer with the requested tokenizer; the default model falling back to approximate counts."""
    try:
        return DataQualityAnalyzer(tokenizer=model, max_seq_len=max_seq_len), None
    except UserError as exc:
        if model != DEFAULT:
            raise
        return DataQualityAnalyzer(tokenizer=None, max_seq_len=max_seq_len), \
            note("approx_tokens", error=str(exc))


def prepare_dataset(path, *, format: str | None = None, mapping: dict[str, str] | None = None, dedupe: bool = False,
                    clean: bool = False, mask_pii: bool = False, split: Sequence[float] | str = (0.8, 0.1, 0.1),
                    seed: int = 42, name: str | None = None, model: Any = DEFAULT, max_seq_len: int = 512) -> str:
    """Normalise, analyse, process and split a data file into ``datasets/<id>``; returns the id.

    ``model`` picks the tokenizer for the quality report's token lengths (a model name, a tokenizer,
    or None for a fast approximation).
    """
    fractions = parse_split(split)
    if name is not None:
        validate_id(name, "dataset name")
        if dataset_dir(name).exists():
            raise UserError(f"A dataset named {name!r} already exists; choose another --name or delete it first.")
    rows, info = load_rows(path, format=format, mapping=mapping)
    analyzer, approx_note = make_analyzer(model, max_seq_len)
    dataset_id = name or new_id(Path(path).stem)
    final = dataset_dir(dataset_id)
    tmp = kind_dir("datasets") / f".tmp-{dataset_id}-{secrets.token_hex(3)}"
    try:
        tmp.mkdir(parents=True)
        (tmp / "raw").mkdir()
        (tmp / "splits").mkdir()
        raw_name = safe_filename(Path(path).name)
        shutil.copyfile(path, tmp / "raw" / raw_name)
        report, parts, operations = _analyse_and_process(rows, info, analyzer, clean=clean, dedupe=dedupe,
                                                         mask_pii=mask_pii, split=fractions, seed=seed)
        _write_jsonl(tmp / "normalized.jsonl", _as_rows(rows))
        if approx_note:
            report["notes"] = [approx_note]
        atomic_write_json(tmp / "quality.json", report)
        for part in SPLITS:
            _write_jsonl(tmp / "splits" / f"{part}.jsonl", parts[part])
        lineage = name.rsplit("-v", 1)[0] if name else slugify(Path(path).stem)
        meta = {"id": dataset_id, "format": info["format"], "kind": info["kind"], "source_file": Path(path).name,
                "raw_file": raw_name, "documents": report["checks"].get("documents") or None, "max_seq_len": max_seq_len,
                "mapping": info["mapping"], "columns": info["columns"], "file_type": info["file_type"],
                "encoding": info["encoding"], "notes": info["notes"], "num_labels": info["num_labels"],
                "counts": {"records": info["records"], "normalized": len(rows),
                           **{part: len(parts[part]) for part in SPLITS}},
                "operations": operations, "options": {"dedupe": dedupe, "clean": clean,
                                                                "mask_pii": mask_pii},
                "seed": seed, "split": fractions if isinstance(fractions, str) else list(fractions),
                "quality_score": report["score"], "lineage": lineage,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        meta["drift_warnings"] = DataQualityMonitor().record(lineage, dataset_id, report)
        atomic_write_json(tmp / "meta.json", meta)
        if final.exists():
            raise UserError(f"A dataset named {dataset_id!r} appeared meanwhile; choose another --name.")
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dataset_id


def _as_rows(rows: list) -> list[dict]:
    """Conversations as they are; preference pairs as their stored dicts."""
    return [r.to_dict() if isinstance(r, PreferencePair) else r for r in rows]


def _analyse_and_process(rows: list, info: dict, analyzer: DataQualityAnalyzer, *, clean: bool, dedupe: bool,
                         mask_pii: bool, split, seed: int) -> tuple[dict, dict[str, list[dict]], list[dict]]:
    """(quality report, split rows, operations) for either kind of rows: conversations or preference pairs."""
    report = analyze_rows(rows, info, analyzer)
    if info["kind"] == "preference":
        parts, operations = process_pairs(rows, clean=clean, dedupe=dedupe, mask_pii=mask_pii, split=split,
                                          seed=seed)
        return report, parts, operations
    processor = AdvancedDataProcessor(seed=seed)
    parts = processor.run(rows, clean=clean, dedupe=dedupe, mask_pii=mask_pii, split=split)
    return report, parts, processor.operations


def _dataset_folder(data: str) -> Path | None:
    path = Path(data).expanduser()
    if path.is_dir() and (path / "splits").is_dir():
        return path
    if not path.exists() and "/" not in data and "\\" not in data:
        try:
            folder = dataset_dir(data)
        except UserError:
            return None
        if (folder / "splits").is_dir():
            return folder
    return None


def _split_path(data: str, split: str) -> Path | None:
    """A dataset's split file (None when ``data`` is not a dataset); a UserError for an unknown or missing split."""
    if split not in SPLITS:
        raise UserError(f"Unknown split {split!r}; choose one of {', '.join(SPLITS)}.")
    folder = _dataset_folder(str(data))
    if folder is None:
        if not Path(data).expanduser().is_file():
            raise UserError(f"{data!r} is neither a dataset id in the workspace, a dataset folder, nor a data file. "
                            "List datasets on the Data page or give a file path.")
        return None
    path = folder / "splits" / f"{split}.jsonl"
    if not path.exists():
        raise UserError(f"{path} is missing; prepare the dataset again with `python -m core prepare`.")
    return path


def _holdout(rows: list, split: str) -> list:
    parts = AdvancedDataProcessor(seed=42).split(rows, (1 - FILE_HOLDOUT, FILE_HOLDOUT, 0.0))
    return parts["train"] if split == "train" else parts["val"]


def _not_pairs(data: str) -> UserError:
    return UserError(f"{data!r} holds preference pairs (prompt, chosen, rejected), not conversations: train it "
                     "with a preference method, or prepare a chat dataset for supervised fine-tuning.")


def load_split(data: str, split: str) -> list[dict]:
    """Conversations of one split of a dataset (id or folder) or of a data file.

    A plain data file has no splits: it is cut by a seeded (42) 90/10 split, stratified by label when it
    has labels; ``train`` is the 90 %, and ``val`` and ``test`` are both the same 10 % holdout.
    Preference data is refused (read it with ``load_pairs``).
    """
    path = _split_path(data, split)
    if path is not None:
        if dataset_kind(path.parents[1]) == "preference":
            raise _not_pairs(data)
        return read_jsonl(path)
    rows, info = load_rows(data)
    if info["kind"] == "preference":
        raise _not_pairs(data)
    return _holdout(AdvancedDataProcessor(seed=42).drop_empty(rows), split)


def load_pairs(data: str, split: str) -> list[PreferencePair]:
    """Preference pairs of one split of a preference dataset (id or folder) or of a preference file (90/10)."""
    path = _split_path(data, split)
    if path is not None:
        if dataset_kind(path.parents[1]) != "preference":
            raise UserError(f"{data!r} is not a preference dataset (it has no chosen/rejected pairs); prepare a "
                            "file with prompt, chosen and rejected answers.")
        return read_preference_split(path)
    rows, info = load_rows(data)
    if info["kind"] != "preference":
        raise UserError(f"{data!r} holds no preference pairs; expected {PREFERENCE_HELP}.")
    empty, identical = identical_or_empty(rows)
    drop = set(empty) | set(identical)
    kept = [p.to_dict() for i, p in enumerate(rows) if i not in drop]
    return [PreferencePair.from_dict(r) for r in _holdout(kept, split)]
