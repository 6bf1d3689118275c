"""Read-only views of a prepared dataset folder: split sizes, the steps table, how the split was computed."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.data.findings import render_drift
from ui.i18n import t

_HIDDEN = ("op", "before", "after", "removed", "requested", "reason")  # shown in their own columns or sentences


def split_counts(folder: Path) -> dict[str, int]:
    """Number of conversations per split file (lines in splits/<split>.jsonl)."""
    counts = {}
    for split in ("train", "val", "test"):
        path = folder / "splits" / f"{split}.jsonl"
        try:
            with open(path, encoding="utf-8") as fh:
                counts[split] = sum(1 for line in fh if line.strip())
        except FileNotFoundError:
            counts[split] = 0
    return counts


def ops_table(ops: list[dict]) -> pd.DataFrame:
    """One row per processing step; a figure a step does not have is an empty cell, never 'None'."""
    rows = []
    for op in ops:
        details = ", ".join(t(f"prepare.detail.{k}") + ("" if v is True else f" {v}")
                            for k, v in op.items() if k not in _HIDDEN and v is not None and v is not False)
        rows.append({t("prepare.col.step"): t(f"prepare.op.{op.get('op')}"),
                     t("prepare.col.before"): str(op.get("before", "")),
                     t("prepare.col.after"): str(op.get("after", "")),
                     t("prepare.col.removed"): str(op.get("removed", "")),
                     t("prepare.col.details"): details})
    return pd.DataFrame(rows)


def split_explanation(meta: dict) -> str | None:
    """Why the split has the sizes it has, from the split step's numbers and reason code."""
    op = next((o for o in meta.get("operations") or [] if o.get("op") == "split"), None)
    if op is None or op.get("reason") is None:
        return None
    fractions = meta.get("split")
    pcts = [round(100 * f) for f in fractions] if isinstance(fractions, list) else [0, 0, 0]
    requested = op.get("requested") or {}
    return t(f"prepare.split_reason.{op['reason']}", n=op.get("before", 0), train=op.get("train", 0),
             val=op.get("val", 0), test=op.get("test", 0), train_pct=pcts[0], val_pct=pcts[1], test_pct=pcts[2],
             req_train=requested.get("train", 0), req_val=requested.get("val", 0), req_test=requested.get("test", 0))


def drift_text(warning: dict | str) -> str:
    """A drift warning in the session's language (datasets prepared before warnings had codes: their text)."""
    return render_drift(warning, t) if isinstance(warning, dict) else str(warning)
