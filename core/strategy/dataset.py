"""The recommendation for a real dataset: its size, lengths and labels, re-timed on its own batches right now."""
from __future__ import annotations

from pathlib import Path

import core.strategy.machine as machine_module
from core.data import load_pairs, load_rows, load_split
from core.data.kinds import dataset_kind
from core.data.loader import SmartDataLoader
from core.defaults import DEFAULT_MODEL
from core.errors import UserError
from core.fileio import read_json
from core.models import load_tokenizer
from core.strategy.budget import PLAN_CODES, fit_budget, plan_reasons
from core.strategy.estimator import ResourceEstimator
from core.strategy.machine import Machine
from core.strategy.reasons import reason
from core.strategy.rules import SMALL, normalize_task
from core.strategy.selector import Recommendation, StrategySelector
from core.strategy.shapes import normalize_config
from core.workspace import dataset_dir


def recommend_for_dataset(data: str, purpose: str | None = None, model: str | None = None,
                          time_budget_s: float | None = None, system_prompt: str | None = None,
                          calibration: str | None = None) -> Recommendation:
    """The recommendation for a prepared dataset (id or folder) or a data file, with a ready run config.

    The size is the training split's; the quality report is the dataset's ``quality.json`` when there is one. Without
    a purpose the task is multi-turn or knowledge Q&A by the data's shape; data with labels is classification
    whatever the purpose. Its time comes from
    the dataset's real batches at this machine's speed measured now (:func:`core.strategy.machine.probe_speed`).
    Preference pairs get a preference objective (DPO or ORPO), timed by the selector with its extra passes.
    ``calibration``: the measured table to follow (default assets/calibration.json).
    """
    if time_budget_s is not None and (isinstance(time_budget_s, bool) or not time_budget_s > 0):
        raise UserError(f"The time budget must be a positive number of minutes, got {time_budget_s!r} s; "
                        "give e.g. --budget 5.")
    model = model or DEFAULT_MODEL
    train = train_rows(data)
    if not train:
        raise UserError(f"{data!r} has no training examples; check that the file has rows (and a header "
                        "the readers understand), or prepare it with `python -m core prepare FILE`.")
    folder = _dataset_folder(data)
    quality = _with_labels(read_json(folder / "quality.json", None) if folder else None, train)
    pairs = is_preference(train)
    guessed = "preference" if pairs else _guess_task(train, quality)
    # Labelled data is classification whatever the purpose says: the answers to learn are its labels (and pairs
    # are preference data).
    task = guessed if guessed in ("classification", "preference") or not purpose else normalize_task(purpose)
    machine = Machine.detect()
    estimator = ResourceEstimator(model, machine=machine, speed=machine_module.probe_speed(machine))
    selector = StrategySelector(estimator=estimator, calibration=calibration)
    if not pairs:  # the trainer's loader reads conversations; pairs are timed by the selector's own shapes
        quality = _with_run_lengths(quality, train, model, system_prompt, estimator.arch.max_positions)
    def recommend() -> Recommendation:
        rec = selector.recommend(task, len(train), quality=quality, time_budget_s=time_budget_s, fit_steps=pairs)
        rec.config = rec.to_config(str(folder or data), model=model, system_prompt=system_prompt)
        if not pairs:
            typical_epoch_s = rec.estimate["epoch_s"]
            fit_time_budget(rec, time_budget_s, estimator)
            rec.estimate["time_scale"] = rec.estimate["epoch_s"] / typical_epoch_s if typical_epoch_s else 1.0
            rec.quality_band = selector.band_for(task, len(train), int((quality or {}).get("num_labels") or 0),
                                                 rec.method, rec.params, rec.train)
        return rec

    rec = recommend()
    scale = rec.estimate.get("time_scale") or 1.0
    if time_budget_s and abs(scale - 1.0) > 0.1:
        # The table's candidates were weighed at typical lengths; weigh them again at the real batches' pace, so
        # "fits your budget" means the same in the choice as in the plan.
        selector.time_scale = scale
        rec = recommend()
    return rec


def train_rows(data: str) -> list[dict]:
    """The training split: conversations, or preference pairs as dicts ({prompt, chosen, rejected})."""
    folder = _dataset_folder(data)
    if folder is not None:
        kind = dataset_kind(folder)
    else:
        kind = load_rows(data)[1]["kind"] if Path(data).is_file() else None
    if kind == "preference":
        return [pair.to_dict() for pair in load_pairs(data, "train")]
    return load_split(data, "train")


def is_preference(rows: list) -> bool:
    """Whether the rows are preference pairs ({prompt, chosen, rejected}, core/data/pairs.py)."""
    return bool(rows) and all(isinstance(r, dict) and "chosen" in r and "rejected" in r for r in rows[:50])


def _with_labels(quality: dict | None, train: list) -> dict | None:
    """The quality report with the number of distinct labels of the training rows when it lacks one."""
    if (quality or {}).get("num_labels"):
        return quality
    labels = {c.get("meta", {}).get("label") for c in train if isinstance(c, dict)} - {None, ""}
    return {**(quality or {}), "num_labels": len(labels)} if len(labels) >= 2 else quality


def _dataset_folder(data: str) -> Path | None:
    if Path(data).is_dir():
        return Path(data)
    try:
        return dataset_dir(data) if dataset_dir(data).is_dir() else None
    except UserError:  # a file name is not a dataset id
        return None


def _guess_task(train: list, quality: dict | None) -> str:
    """Classification when the data has labels, multi-turn when most conversations do, knowledge Q&A otherwise."""
    if (quality or {}).get("num_labels", 0) >= 2 or \
            sum(bool(c.get("meta", {}).get("label")) for c in train) > len(train) / 2:
        return "classification"
    if sum(len(c.get("messages", [])) > 3 for c in train) > len(train) / 2:
        return "multi_turn"
    return "knowledge_qa"


def fit_time_budget(rec: Recommendation, budget_s: float | None, estimator: ResourceEstimator) -> None:
    """Re-time ``rec.config`` on the dataset's real batches and fit it to ``budget_s`` seconds, in place.

    Takes the most epochs, up to the recommended ones, that fit, or one epoch capped by ``max_steps`` (evaluations
    counted); the reasons about the run's length are replaced by ones from these numbers, and the config carries
    the seconds per step it expects (``train.expected_step_s``).
    """
    est = estimator.estimate(rec.config)
    if not est.steps_per_epoch or est.epoch_s is None:
        return
    step_s = est.epoch_s / est.steps_per_epoch
    eval_every = int(normalize_config(rec.config)["train"]["eval_every"])
    wanted = int(rec.estimate.get("wanted_epochs") or rec.train["epochs"])
    plan = fit_budget(wanted, est.steps_per_epoch, step_s, float(est.data.get("eval_s") or 0.0), eval_every,
                      budget_s)
    rec.config["train"].update(epochs=plan.epochs, max_steps=plan.max_steps, expected_step_s=round(step_s, 4))
    rec.train = dict(rec.config["train"])
    small = est.data.get("conversations", 0) < SMALL
    rec.reasons = [r for r in rec.reasons if r["code"] not in PLAN_CODES]
    rec.reasons += [reason("timed_now", step_s=round(step_s, 2), gflops=estimator.speed.matmul_gflops)]
    rec.reasons += plan_reasons(plan, budget_s, small)
    rec.estimate.update(total_steps=plan.steps, total_s=plan.run_s, step_s=step_s, epoch_s=est.epoch_s,
                        steps_per_epoch=est.steps_per_epoch, eval_s=plan.eval_s, epoch_run_s=plan.epoch_run_s,
                        full_epochs=plan.full_epochs, suggested_budget_min=plan.suggested_budget_min,
                        timing="probe")


def _with_run_lengths(quality: dict | None, convs: list, model: str, system_prompt: str | None,
                      max_positions: int, sample: int = 500) -> dict:
    """The quality report with its token lengths (p95, mean) measured as the trainer will see the examples: the
    run's system prompt and the chat template included. A report made without the system prompt would pick a
    max_seq_len that cuts the answers off."""
    if not convs:
        return dict(quality or {})
    step = max(1, len(convs) // sample)
    loader = SmartDataLoader(load_tokenizer(model), system_prompt=system_prompt, max_seq_len=max_positions)
    lengths = sorted(len(ex["input_ids"]) for ex in loader.encode_all(convs[::step])[0])
    if not lengths:
        return dict(quality or {})
    out = dict(quality or {})
    checks = dict(out.get("checks") or {})
    p95 = lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))]
    checks["lengths"] = {**(checks.get("lengths") or {}), "p95": p95, "mean": sum(lengths) / len(lengths),
                         "with_system_prompt": bool(system_prompt)}
    out["checks"] = checks
    out.pop("lengths", None)
    return out


