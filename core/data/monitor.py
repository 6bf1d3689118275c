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


def drift(old: dict, new: dict) -> list[str]:
    """Warnings (what changed, by how much, what to check) between two figure sets."""
    warnings = []
    a, b = old.get("mean_tokens"), new.get("mean_tokens")
    if a and b and abs(b - a) / a > LENGTH_CHANGE:
        warnings.append(f"mean length changed from {a:.0f} to {b:.0f} tokens ({(b - a) / a:+.0%}); check "
                        "max_seq_len and whether the new rows are the same kind of data.")
    la, lb = old.get("label_dist") or {}, new.get("label_dist") or {}
    if la or lb:
        tvd = 0.5 * sum(abs(la.get(k, 0) - lb.get(k, 0)) for k in set(la) | set(lb))
        gone, added = sorted(set(la) - set(lb)), sorted(set(lb) - set(la))
        if tvd > LABEL_TVD:
            warnings.append(f"label distribution shifted (total variation {tvd:.2f}); rebalance or check "
                            "the labelling.")
        if gone:
            warnings.append(f"labels missing from the new version: {', '.join(gone[:10])}.")
        if added:
            warnings.append(f"new labels in this version: {', '.join(added[:10])}.")
    for script in set(old.get("script", {})) | set(new.get("script", {})):
        sa, sb = old.get("script", {}).get(script, 0), new.get("script", {}).get(script, 0)
        if abs(sb - sa) > SCRIPT_SHIFT:
            warnings.append(f"script mix changed: {script} went from {sa:.0%} to {sb:.0%} of rows.")
    da, db = old.get("duplicate_rate", 0), new.get("duplicate_rate", 0)
    if abs(db - da) > DUPLICATE_SHIFT:
        warnings.append(f"duplicate rate went from {da:.1%} to {db:.1%}; consider `prepare --dedupe`.")
    return warnings


class DataQualityMonitor:
    """Per-lineage history of dataset quality figures with drift warnings."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else kind_dir("datasets") / "_monitor.json"

    def history(self, lineage: str) -> list[dict]:
        """Every recorded version of a lineage, oldest first."""
        return (read_json(self.path, {}) or {}).get(lineage, [])

    def record(self, lineage: str, version: str, report: dict) -> list[str]:
        """Store a version's figures; return drift warnings against the previous version."""
        data = read_json(self.path, {}) or {}
        versions = data.setdefault(lineage, [])
        new = {"version": version, "time": time.time(), **figures(report)}
        warnings = drift(versions[-1], new) if versions else []
        new["warnings"] = warnings
        versions.append(new)
        atomic_write_json(self.path, data)
        return warnings
