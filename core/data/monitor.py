"""DataQualityMonitor: remember the quality figures of each dataset version and warn when a new one drifts.

Figures are kept per lineage (e.g. the dataset's base name) in ``datasets/_monitor.json``. A new version is
compared with the previous one on mean length, label distribution (total variation distance and labels that
appeared or vanished), script mix and duplicate rate.
"""
from __future__ import annotations

import time
from pathlib import Path

from core.fileio import atomic_write_json, read_json
from core.workspace import kind_dir

from .findings import render_drift

LENGTH_CHANGE = 0.25      # relative change of the mean token length
LABEL_TVD = 0.15          # total variation distance between label distributions
SCRIPT_SHIFT = 0.10       # absolute change of a script's share
DUPLICATE_SHIFT = 0.05    # absolute change of the duplicate rate


def figures(report: dict) -> dict:
    """The figures of a quality report that drift is measured on."""
    checks = report.get("checks", {})
    labels = checks.get("labels", {}).get("counts", {}) or {}
    total = sum(labels.values()) or 1
    dup = checks.get("duplicates", {})
    return {"rows": report.get("rows", 0), "score": report.get("score"),
            "mean_tokens": checks.get("lengths", {}).get("mean"),
            "label_dist": {k: round(v / total, 5) for k, v in labels.items()},
            "script": checks.get("script", {}).get("shares", {}),
            "duplicate_rate": round(dup.get("exact_rate", 0) + dup.get("near_rate", 0), 5)}


def _warning(code: str, **params) -> dict:
    """A drift warning: its code, parameters and English text (the pages translate the code)."""
    warning = {"code": code, "params": params}
    warning["text"] = render_drift(warning)
    return warning


def drift(old: dict, new: dict) -> list[dict]:
    """Warnings ({code, params, text}: what changed, by how much, what to check) between two figure sets."""
    warnings = []
    a, b = old.get("mean_tokens"), new.get("mean_tokens")
    if a and b and abs(b - a) / a > LENGTH_CHANGE:
        warnings.append(_warning("length", old=round(a), new=round(b), change=round(100 * (b - a) / a)))
    la, lb = old.get("label_dist") or {}, new.get("label_dist") or {}
    if la or lb:
        tvd = 0.5 * sum(abs(la.get(k, 0) - lb.get(k, 0)) for k in set(la) | set(lb))
        gone, added = sorted(set(la) - set(lb)), sorted(set(lb) - set(la))
        if tvd > LABEL_TVD:
            warnings.append(_warning("labels_shift", tvd=round(tvd, 2)))
        if gone:
            warnings.append(_warning("labels_gone", labels=gone))
        if added:
            warnings.append(_warning("labels_new", labels=added))
    # a version recorded before the script check has no script figures: nothing to compare with
    old_scripts, new_scripts = old.get("script") or {}, new.get("script") or {}
    for script in sorted(set(old_scripts) | set(new_scripts)) if old_scripts and new_scripts else []:
        sa, sb = old_scripts.get(script, 0), new_scripts.get(script, 0)
        if abs(sb - sa) > SCRIPT_SHIFT:
            warnings.append(_warning("script", script=script, old=round(100 * sa), new=round(100 * sb)))
    da, db = old.get("duplicate_rate", 0), new.get("duplicate_rate", 0)
    if abs(db - da) > DUPLICATE_SHIFT:
        warnings.append(_warning("duplicates", old=round(100 * da, 1), new=round(100 * db, 1)))
    return warnings


class DataQualityMonitor:
    """Per-lineage history of dataset quality figures with drift warnings."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else kind_dir("datasets") / "_monitor.json"

    def history(self, lineage: str) -> list[dict]:
        """Every recorded version of a lineage, oldest first."""
        return (read_json(self.path, {}) or {}).get(lineage, [])

    def record(self, lineage: str, version: str, report: dict) -> list[dict]:
        """Store a version's figures; return drift warnings against the previous version."""
        data = read_json(self.path, {}) or {}
        versions = data.setdefault(lineage, [])
        new = {"version": version, "time": time.time(), **figures(report)}
        warnings = drift(versions[-1], new) if versions else []
        new["warnings"] = warnings
        versions.append(new)
        atomic_write_json(self.path, data)
        return warnings
