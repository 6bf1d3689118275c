"""The calibration table: what configurations reached on real data, and what the selector may expect from them.

``assets/calibration.json`` holds one row per measured run (data kind, size, method, rank, targets, lr, epochs,
dropout, task metric, validation loss, seconds, machine, date and the source of the figure). The selector reads it
to pick, among candidates that fit a time budget, the one with the best measured task metric for data of the same
kind and size band; the Choose page shows the band of values similar runs reached.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from core.defaults import METHODS
from core.errors import UserError
from core.fileio import read_json
from core.peft.config import default_section
from core.strategy.reasons import minutes, reason
from core.strategy.rules import Choice

CALIBRATION_FILE = Path(__file__).resolve().parents[2] / "assets" / "calibration.json"
KINDS = ("classification-many-labels", "classification", "faq", "instructions", "preference")
MANY_LABELS = 50          # more labels than this is "many" (CLINC150 150, Banking77 77, the 64 intents)
PER_LABEL_BANDS = ((12, "per_label_le12"), (30, "per_label_13_30"), (math.inf, "per_label_gt30"))
ROW_BANDS = ((299, "rows_lt300"), (2999, "rows_300_2999"), (math.inf, "rows_ge3000"))
REQUIRED = ("id", "data_kind", "engine", "method", "metric", "value", "source", "from_sweep")
NUMBERS = ("labels", "per_label", "rows", "budget_min", "rank", "lr", "epochs", "dropout", "value", "val_loss",
           "train_s")
TASK_KINDS = {"classification": "classification", "knowledge_qa": "faq", "style": "instructions",
              "multi_turn": "instructions", "preference": "preference"}


@dataclass(frozen=True)
class Calibration:
    """The validated rows of a calibration table and the file they came from."""

    rows: tuple
    path: str

    def measured(self, kind: str, band: str) -> list[dict]:
        """Rows of our own engine with a task metric for data of this kind and size band."""
        return [r for r in self.rows if r["data_kind"] == kind and row_band(r) == band
                and r["engine"] == "ours" and r["value"] is not None]

    def candidates(self, kind: str, band: str) -> list[dict]:
        """One candidate per distinct configuration: its section, epochs, lr, the mean metric and its rows."""
        groups: dict[str, list[dict]] = {}
        for r in self.measured(kind, band):
            groups.setdefault(json.dumps(config_key(r)), []).append(r)
        out = []
        for rows in groups.values():
            first = rows[0]
            out.append({"method": first["method"], "params": section(first), "epochs": whole_epochs(first["epochs"]),
                        "lr": first.get("lr"), "value": sum(r["value"] for r in rows) / len(rows),
                        "metric": first["metric"], "rows": [r["id"] for r in rows]})
        return sorted(out, key=lambda c: -c["value"])

    def best(self, kind: str, band: str, budget_min: float | None = None) -> dict | None:
        """The best measured row for this kind and size band within ``budget_min`` minutes of training (measured
        at that budget, or trained in no more than it), or None."""
        def within(r: dict) -> bool:
            if budget_min is None:
                return True
            if r.get("budget_min") is not None:
                return r["budget_min"] <= budget_min
            return r.get("train_s") is not None and r["train_s"] <= 60 * budget_min

        rows = [r for r in self.measured(kind, band) if within(r)]
        return max(rows, key=lambda r: r["value"], default=None)

    def quality_band(self, kind: str, band: str, method: str, params: dict, epochs: int | None = None) -> dict | None:
        """The range of the task metric runs of this configuration (for ``epochs`` whole epochs, when given)
        reached on similar data, or None."""
        key = config_key({"method": method, **params_fields(method, params)}, full=False)
        rows = [r for r in self.measured(kind, band) if config_key(r, full=False) == key
                and (epochs is None or whole_epochs(r.get("epochs")) == epochs)]
        if not rows:
            return None
        seconds = [r["train_s"] for r in rows if r.get("train_s")]
        return {"metric": rows[0]["metric"], "low": min(r["value"] for r in rows),
                "high": max(r["value"] for r in rows), "minutes": round(max(seconds) / 60, 1) if seconds else None,
                "rows": [r["id"] for r in rows], "kind": kind, "band": band}


def load_calibration(path: str | Path | None = None) -> Calibration:
    """The calibration table at ``path`` (default assets/calibration.json), validated; UserError names a bad row."""
    target = Path(path) if path else CALIBRATION_FILE
    data = read_json(target, None)
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise UserError(f"The calibration table {target} is missing or has no 'rows' list; restore it from git "
                        "or write it with `python -m bench.calibration --merge`.")
    problems = [p for i, row in enumerate(data["rows"]) for p in row_problems(row, i)]
    if problems:
        raise UserError(f"The calibration table {target} has bad rows: " + "; ".join(problems[:5]) + ".")
    return Calibration(tuple(data["rows"]), str(target))


def row_problems(row: dict, index: int) -> list[str]:
    """What is wrong with one row (empty when it is valid)."""
    if not isinstance(row, dict):
        return [f"row {index} is not an object"]
    name = row.get("id", index)
    problems = [f"row {name}: '{k}' is missing" for k in REQUIRED if k not in row]
    problems += [f"row {name}: '{k}' must be a number or null" for k in NUMBERS
                 if row.get(k) is not None and (isinstance(row[k], bool) or not isinstance(row[k], (int, float)))]
    if row.get("data_kind") not in KINDS:
        problems.append(f"row {name}: data_kind must be one of {', '.join(KINDS)}")
    if isinstance(row.get("value"), (int, float)) and not 0 <= row["value"] <= 1:
        problems.append(f"row {name}: value is a share between 0 and 1")
    if row.get("per_label") is None and row.get("rows") is None:
        problems.append(f"row {name}: give per_label or rows (its size)")
    return problems


def data_kind(task: str, num_labels: int = 0) -> str:
    """The table's data kind for a selector task kind."""
    kind = TASK_KINDS.get(task, "instructions")
    return "classification-many-labels" if kind == "classification" and num_labels > MANY_LABELS else kind


def size_band(kind: str, n: int, num_labels: int = 0) -> str:
    """The size band of a dataset: examples per label for classification, rows otherwise."""
    if kind.startswith("classification") and num_labels:
        return _band(n / num_labels, PER_LABEL_BANDS)
    return _band(n, ROW_BANDS)


def row_band(row: dict) -> str:
    """The size band of a table row."""
    if row["data_kind"].startswith("classification") and row.get("per_label"):
        return _band(row["per_label"], PER_LABEL_BANDS)
    return _band(row.get("rows") or 0, ROW_BANDS)


def _band(value: float, bands: tuple) -> str:
    return next(name for limit, name in bands if value <= limit)


def whole_epochs(epochs: float | None) -> int:
    """A measured run's epochs as the whole epochs a recommendation plans (0.93 of an epoch -> 1)."""
    return max(1, round(epochs or 1))


def targets_key(targets) -> str | list | None:
    """Target modules in one spelling, so [v_proj, q_proj] and [q_proj, v_proj] compare equal."""
    return targets if isinstance(targets, str) or targets is None else sorted(targets)


def config_key(row: dict, full: bool = True) -> list:
    """What makes two rows the same configuration (``full=False``: the method section only, not lr and epochs)."""
    key = [row["method"], row.get("rank"), targets_key(row.get("targets")), row.get("dropout")]
    return key + [row.get("lr"), whole_epochs(row.get("epochs"))] if full else key


def section(row: dict) -> dict:
    """The run config's method section for a row (LoRA: alpha = 2 x rank, the project's convention)."""
    if row["method"] != "lora":
        return {}
    out = {"r": int(row["rank"]), "alpha": 2 * int(row["rank"]), "target_modules": row["targets"]}
    return {**out, "dropout": row["dropout"]} if row.get("dropout") is not None else out


def params_fields(method: str, params: dict) -> dict:
    """A method section as a row's fields (rank, targets, dropout)."""
    if method != "lora":
        return {"rank": None, "targets": None, "dropout": None}
    return {"rank": params.get("r"), "targets": params.get("target_modules"), "dropout": params.get("dropout")}


def pick(cal: Calibration, task: str, n: int, num_labels: int, run_seconds, budget_s: float | None):
    """(measured choice, a better-measured one that does not fit, notes) for the task, size and budget.

    Among the table's configurations for data of this kind and size band, the one with the best measured task
    metric whose planned run (``run_seconds(candidate)``, evaluations included) fits ``budget_s``. None with a note
    when the table has nothing for this data, or nothing that fits.
    """
    kind = data_kind(task, num_labels)
    band = size_band(kind, n, num_labels)
    cands = [c for c in cal.candidates(kind, band) if c["method"] in METHODS]
    if not cands:
        return None, None, [reason("calibration_none", kind=kind, band=band)]
    seconds = {id(c): run_seconds(c) for c in cands}
    fitting = [c for c in cands if not budget_s or seconds[id(c)] <= budget_s]
    if not fitting:
        return None, None, [reason("calibration_none_fits", kind=kind, band=band, budget_min=minutes(budget_s))]

    def choice(c: dict, why: list, against: list | None = None) -> Choice:
        params = {**default_section(c["method"]), **c["params"]} if c["method"] != "full" else {}
        return Choice(c["method"], params, why, against or [], epochs=c["epochs"], lr=c["lr"])

    best = fitting[0]  # candidates come best first
    why = [reason("calibration_pick", value=round(100 * best["value"], 1), metric=best["metric"],
                  rows=", ".join(best["rows"]), kind=kind, band=band, epochs=best["epochs"])]
    better = next((c for c in cands if c["value"] > best["value"]), None)  # measured higher, but over the budget
    if better is None:
        return choice(best, why), None, []
    better_why = [reason("calibration_better", value=round(100 * better["value"], 1), metric=better["metric"],
                         rows=", ".join(better["rows"]))]
    over = [reason("calibration_over_budget", run_min=minutes(seconds[id(better)]), budget_min=minutes(budget_s))]
    return choice(best, why), choice(better, better_why, over), []
