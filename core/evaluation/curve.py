"""Would more data help? A learning curve: the run's settings trained on 25 %, 50 % and 100 % of its training
rows (each a dataset version, core.evaluation.causes.derive_dataset), each run fitted to an equal share of the
user's time budget (core.lab.plan_lab), queued through core.runs.launch, then evaluated on the same test split.

The verdict reads the last segment: when doubling the data (50 % -> 100 %) still raised the task score by at least
``MORE_DATA_GAIN``, more data would likely help; otherwise the curve has flattened.
"""
from __future__ import annotations

import random
import time
from typing import Callable, Optional

from core.errors import UserError
from core.evaluation.baselines import score_answers
from core.evaluation.causes import derive_dataset, run_dataset
from core.evaluation.checks import CheckResult
from core.fileio import atomic_write_json, read_json
from core.workspace import dataset_dir, run_dir

ProgressFn = Callable[[float, str], None]
CURVE_FRACTIONS = (0.25, 0.5, 1.0)
MORE_DATA_GAIN = 0.01   # score gained by the last doubling of the data that still counts as "more data helps"
CURVE_FILE = "curve.json"
CURVE_SEED = 0


def curve_path(run_id: str):
    """``runs/<id>/eval/curve.json``: the curve's runs."""
    return run_dir(run_id) / "eval" / CURVE_FILE


def subset_indices(n: int, fraction: float, seed: int = CURVE_SEED) -> list[int]:
    """A seeded sample of ``fraction`` of ``n`` rows (at least one); smaller fractions are prefixes of larger."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return sorted(order[:max(1, round(n * fraction))])


def plan_curve(run_id: str, budget_s: float) -> list[dict]:
    """One run config per fraction, each fitted to ``budget_s / len(CURVE_FRACTIONS)`` seconds."""
    from core.lab import plan_lab

    if not isinstance(budget_s, (int, float)) or budget_s <= 0:
        raise UserError(f"The learning curve's budget must be a positive number of seconds, got {budget_s!r}.")
    parent = run_dataset(run_id)
    cfg = read_json(run_dir(run_id) / "config.json")
    n = len((dataset_dir(parent) / "splits" / "train.jsonl").read_text(encoding="utf-8").splitlines())
    plans = []
    for fraction in CURVE_FRACTIONS:
        keep = subset_indices(n, fraction)
        dataset = derive_dataset(parent, keep=keep, reason=f"curve{int(fraction * 100)}")
        planned = plan_lab(dataset, cfg.get("model"), budget_s / len(CURVE_FRACTIONS), [cfg.get("method", "lora")],
                           {k: v for k, v in cfg.items() if k not in ("data", "model", "name")})[0]
        run_cfg = {k: v for k, v in planned.items() if not k.startswith("_")}
        run_cfg["name"] = f"{run_id}-curve{int(fraction * 100)}"
        plans.append({"fraction": fraction, "dataset": dataset, "rows": len(keep), "config": run_cfg})
    return plans


def launch_curve(run_id: str, budget_s: float) -> dict:
    """Plan and queue the curve's runs (they train one after another); writes and returns curve.json."""
    from core.runs import launch

    points = []
    for plan in plan_curve(run_id, budget_s):
        points.append({"fraction": plan["fraction"], "dataset": plan["dataset"], "rows": plan["rows"],
                       "run_id": launch(plan["config"])})
    curve = {"run_id": run_id, "budget_s": budget_s, "points": points}
    atomic_write_json(curve_path(run_id), curve)
    return curve


def point_score(report: Optional[dict]) -> Optional[float]:
    """A curve run's task score (accuracy for labels, else token F1) from its report."""
    if not report:
        return None
    examples = (report.get("tuned") or {}).get("examples") or []
    if not examples:
        return None
    return score_answers([e.get("answer", "") for e in examples], [e.get("reference", "") for e in examples],
                         report.get("labels"))


def more_data_verdict(points: list[dict]) -> str:
    """"more_data_helps", "plateau" or "unknown" (fewer than two scored points), from the last segment."""
    scored = sorted((p for p in points if p.get("score") is not None), key=lambda p: p["fraction"])
    if len(scored) < 2:
        return "unknown"
    last, before = scored[-1], scored[-2]
    return "more_data_helps" if last["score"] - before["score"] >= MORE_DATA_GAIN else "plateau"


def check_curve(run_id: str, limit: Optional[int] = None, progress: Optional[ProgressFn] = None,
                evaluate: Optional[Callable[..., dict]] = None) -> CheckResult:
    """Score the curve's runs (evaluating finished ones that have no report yet) and give the verdict."""
    from core.runs import status

    t0 = time.perf_counter()
    progress = progress or (lambda f, m: None)
    curve = read_json(curve_path(run_id), None)
    if not curve:
        return CheckResult(name="curve", notes=["curve.not_started"])
    points, notes = [], []
    for i, p in enumerate(curve["points"]):
        rid = p["run_id"]
        report = read_json(run_dir(rid) / "eval" / "report.json", None)
        state = status(rid).get("state")
        if report is None and state == "completed" and evaluate is not None:
            progress(i / len(curve["points"]), f"curve: evaluating {rid}")
            report = evaluate(rid, limit=limit, robustness=False, performance=False)
        if report is None:
            notes.append("curve.waiting")
        points.append({**p, "state": state, "score": point_score(report)})
    progress(1.0, "curve: done")
    verdict = more_data_verdict(points)
    return CheckResult(name="curve", tuned={"verdict": verdict, "budget_s": curve.get("budget_s")}, items=points,
                       seconds=time.perf_counter() - t0, notes=sorted(set(notes)) + [f"curve.{verdict}"])
