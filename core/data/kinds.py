"""What kind of data a file or dataset holds: chats, preference pairs or documents; and reading any kind.

- ``chat``: conversations with assistant-only labels (every chat format of ``core/data/schema.py``).
- ``preference``: ``PreferencePair`` rows (``core/data/preference.py``), for preference tuning.
- ``document``: plain text for continued pretraining, chunked at training time (``core/data/chunking.py``).
A prepared dataset records its kind in ``meta.json`` (``"kind"``); datasets made before kinds existed are chats
or documents by their format.
"""
from __future__ import annotations

from pathlib import Path

from core.fileio import read_json

from .io import read_table
from .pairs import PreferencePair
from .preference import PREFERENCE_FORMATS, detect_preference, preference_from_table
from .preference_quality import analyze_pairs
from .quality import DataQualityAnalyzer
from .schema import conversations_from_table

KINDS = ("chat", "preference", "document")


def kind_of_format(fmt: str | None) -> str:
    """The kind of data a format holds."""
    if fmt in PREFERENCE_FORMATS:
        return "preference"
    return "document" if fmt == "text" else "chat"


def load_rows(path, format: str | None = None, mapping: dict[str, str] | None = None
              ) -> tuple[list[dict] | list[PreferencePair], dict]:
    """Read any upload: conversations, or PreferencePair rows when it is preference data; ``info["kind"]`` says."""
    table = read_table(path)
    pair_mapping = bool(mapping) and {"chosen", "rejected"} <= set(mapping)
    if format in PREFERENCE_FORMATS or (format is None and (pair_mapping or (not mapping and
                                                                              detect_preference(table)))):
        return preference_from_table(table, format, mapping)
    return conversations_from_table(table, format, mapping)


def dataset_kind(folder: str | Path) -> str:
    """The kind of a prepared dataset folder (its meta.json; older datasets by their format)."""
    meta = read_json(Path(folder) / "meta.json", {}) or {}
    return meta.get("kind") or kind_of_format(meta.get("format"))


def analyze_rows(rows: list, info: dict, analyzer: DataQualityAnalyzer) -> dict:
    """The quality report of rows of any kind (``info["kind"]``), with the kind recorded in it."""
    kind = info.get("kind") or kind_of_format(info.get("format"))
    report = analyze_pairs(rows, info, analyzer=analyzer) if kind == "preference" else analyzer.analyze(rows, info)
    return {**report, "kind": kind}
