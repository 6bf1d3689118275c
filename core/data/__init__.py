"""Data engineering: read any upload, measure its quality, fix it, and feed the model the right tokens.

Public API: ``load_conversations``, ``load_rows`` (any kind: chats, preference pairs, documents),
``prepare_dataset``, ``load_split``, ``load_pairs``, ``read_preference_split``, ``analyze_dataset_cached`` and the
classes ``DataQualityAnalyzer``, ``AdvancedDataProcessor``, ``SmartDataLoader``, ``DataQualityMonitor``.
Names are imported on first use, so ``import core.data.text`` or ``core.data.loader`` does not pull in pandas,
the analyzer and the dataset writer as well.
"""
from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"FORMATS": "schema", "load_conversations": "schema", "DataQualityAnalyzer": "quality",
          "analyze_dataset_cached": "analysis", "analyze_upload_cached": "analysis",
          "AdvancedDataProcessor": "processing", "SmartDataLoader": "loader", "DataQualityMonitor": "monitor",
          "load_split": "dataset", "prepare_dataset": "dataset", "load_pairs": "dataset", "load_rows": "kinds",
          "read_preference_split": "preference", "PreferencePair": "pairs"}

__all__ = list(_WHERE)


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is asked for."""
    if name not in _WHERE:
        raise AttributeError(f"module 'core.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value
