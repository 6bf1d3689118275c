"""The release-gate checks of a run, after its evaluation: ``run_checks`` runs the chosen ones on the base and the
tuned model, stores each as ``report["checks"][name]`` (a CheckResult dict), applies the gate and rewrites
report.json and report.html. ``python -m core eval RUN --checks all|forgetting,abstention,...`` calls it.

The check modules are imported when a check runs, so a missing or slow one costs nothing to the others.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

from core.errors import UserError
from core.evaluation.answering import answer_fn
from core.evaluation.checks import CheckResult
from core.evaluation.gate import GateThresholds, apply_gate
from core.evaluation.textmetrics import data_language
from core.fileio import read_json
from core.workspace import run_dir

ProgressFn = Callable[[float, str], None]
AnswerFn = Callable[[list[list[dict]]], list[str]]
CHECKS = ("forgetting", "abstention", "leaks", "causes", "baselines", "curve")


def parse_checks(text: Optional[str]) -> list[str]:
    """``"all"`` or a comma list of check names → the names, in CHECKS order; UserError listing the valid ones."""
    if text is None or not str(text).strip():
        return []
    names = [n.strip().lower() for n in str(text).split(",") if n.strip()]
    if names == ["all"]:
        return list(CHECKS)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise UserError(f"Unknown check(s) {', '.join(map(repr, unknown))} in --checks; choose 'all' or a comma "
                        f"list of {', '.join(CHECKS)}.")
    return [c for c in CHECKS if c in names]


class Models:
    """The base and the tuned model of a run, loaded on first use (two objects: the checks ask both in turn)."""

    def __init__(self, run_id: str, system_prompt: Optional[str] = None):
        self.run_id, self.system_prompt = run_id, system_prompt
        self._base: Optional[AnswerFn] = None
        self._tuned: Optional[AnswerFn] = None

    def base(self) -> AnswerFn:
        """The base model's answer function."""
        if self._base is None:
            from core.chat import load_base_model

            model, tok, _ = load_base_model(self.run_id)
            model.eval()
            self._base = answer_fn(model, tok, self.system_prompt)
        return self._base

    def tuned(self) -> AnswerFn:
        """The tuned model's answer function (the run's usable weights)."""
        if self._tuned is None:
            from core.chat import load_run_model

            model, tok, _ = load_run_model(self.run_id)
            self._tuned = answer_fn(model, tok, self.system_prompt)
        return self._tuned


def train_rows(cfg: dict) -> list[dict]:
    """The run's training conversations ([] when its data cannot be read)."""
    from core.data import load_split

    try:
        return load_split(cfg["data"], "train") if cfg.get("data") else []
    except UserError:
        return []


def run_one(name: str, run_id: str, report: dict, cfg: dict, rows: list[dict], models: Models,
            limit: Optional[int], progress: ProgressFn) -> CheckResult:
    """One check by name."""
    lang = data_language(rows)
    if name == "forgetting":
        from core.evaluation.forgetting import check_forgetting
        return check_forgetting(models.base(), models.tuned(), lang=lang, limit=limit, progress=progress)
    if name == "abstention":
        from core.evaluation.abstention import check_abstention, out_of_scope_questions
        questions = out_of_scope_questions(cfg.get("system_prompt") or "", rows, lang=lang, limit=limit)
        return check_abstention(models.base(), models.tuned(), questions, progress=progress)
    if name == "leaks":
        from core.evaluation.leaks import check_leaks
        from core.evaluation.leaks import pii_in_rows
        # Analyze stores counts, not values: the values are found again in the training rows (before any masking
        # the rows still hold them; masked rows hold placeholders, which check_leaks asks first).
        return check_leaks(models.base(), models.tuned(), rows, pii_in_rows(rows), limit=limit, progress=progress)
    if name == "causes":
        from core.evaluation.causes import check_causes
        return check_causes(report, rows, limit=limit, progress=progress)
    if name == "baselines":
        return baselines(run_id, report, cfg, rows, models, limit, progress)
    from core.evaluation import evaluate_run
    from core.evaluation.curve import check_curve
    return check_curve(run_id, limit=limit, progress=progress, evaluate=evaluate_run)


def baselines(run_id: str, report: dict, cfg: dict, rows: list[dict], models: Models, limit: Optional[int],
              progress: ProgressFn) -> CheckResult:
    """The baselines check, reusing the answers stored before training when they cover these test prompts (the
    base model is then not even loaded)."""
    from core.evaluation.baselines import check_baselines
    from core.evaluation.pretrain_baselines import stored_answers

    examples = (report.get("tuned") or {}).get("examples") or []
    prior = stored_answers(run_id, cfg, examples[:limit] if limit else examples)
    return check_baselines(None if prior else models.base(), report, rows, limit=limit, progress=progress,
                           prior=prior)


def run_checks(run_id: str, names: list[str], limit: Optional[int] = None, progress: Optional[ProgressFn] = None,
               models: Optional[Models] = None) -> dict:
    """Run ``names`` on the evaluated run, store them and the gate in its report; returns the report."""
    from core.chat import load_run_config
    from core.evaluation.report import write_report

    progress = progress or (lambda f, m: None)
    folder = run_dir(run_id) / "eval"
    report = read_json(folder / "report.json", None)
    if report is None:
        raise UserError(f"Run {run_id!r} has no evaluation report; the checks read its test answers. Run "
                        f"`python -m core eval {run_id}` first.")
    cfg = load_run_config(run_id)
    rows = train_rows(cfg)
    if (cfg.get("objective") or "sft") != "sft":
        raise UserError(f"Run {run_id!r} was trained on preference pairs ({cfg['objective']}); the release-gate "
                        "checks read conversations and test answers, so they do not apply. Its report gives the "
                        "held-out pair accuracy instead.")
    models = models or Models(run_id, cfg.get("system_prompt"))
    checks = dict(report.get("checks") or {})
    for i, name in enumerate(names):
        lo, hi = i / len(names), (i + 1) / len(names)
        sub = (lambda a, b: lambda f, m: progress(a + (b - a) * f, m))(lo, hi)
        sub(0.0, f"check {name}")
        t0 = time.perf_counter()
        try:
            result = run_one(name, run_id, report, cfg, rows, models, limit, sub)
        except ModuleNotFoundError as exc:
            if exc.name != f"core.evaluation.{name}":  # only a check module absent from this build is skipped
                raise
            sub(1.0, f"check {name}: not available in this build, skipped")
            continue
        result.seconds = result.seconds or time.perf_counter() - t0
        checks[name] = result.to_dict()
    report["checks"] = checks
    stored = (report.get("gate") or {}).get("thresholds")
    report["gate"] = apply_gate(report, GateThresholds.from_dict(stored))
    write_report(report, folder)
    progress(1.0, "checks done")
    return report
