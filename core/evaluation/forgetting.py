"""Check 1, forgetting and safety regression: the built-in probes answered by the base and the tuned model.

The result says what the tuning broke ("the base model passed 52 of 60, the tuned one 31"), per category, and lists
the probes that flipped: ``broke`` (base passed, tuned failed) and ``fixed`` (the reverse). The probes are asked as
a single user message; the caller's ``answer`` adds the assistant's system prompt when it uses one.
"""
from __future__ import annotations

import time
from typing import Optional

from core.evaluation.answering import AnswerFn, ProgressFn, answer_all, check_limit
from core.evaluation.checks import CheckResult
from core.evaluation.probes import CATEGORIES, Probe, load_probes, round_robin

NAME = "forgetting"


def _tally(probes: list[Probe], passed: list[bool]) -> dict:
    """{"passed", "total", "rate", "categories": {category: {"passed", "total"}}}."""
    cats = {c: {"passed": 0, "total": 0} for c in CATEGORIES if any(p.category == c for p in probes)}
    for probe, ok in zip(probes, passed):
        cats[probe.category]["total"] += 1
        cats[probe.category]["passed"] += int(ok)
    total, n_passed = len(probes), sum(passed)
    return {"passed": n_passed, "total": total, "rate": n_passed / total if total else None, "categories": cats}


def _flips(probes: list[Probe], base: list[str], tuned: list[str], base_ok: list[bool],
           tuned_ok: list[bool]) -> list[dict]:
    """The probes whose verdict changed, broken ones first."""
    items = [{"id": p.id, "lang": p.lang, "category": p.category, "prompt": p.prompt,
              "flip": "broke" if b_ok else "fixed", "base_answer": b, "tuned_answer": t,
              "base_passed": b_ok, "tuned_passed": t_ok}
             for p, b, t, b_ok, t_ok in zip(probes, base, tuned, base_ok, tuned_ok) if b_ok != t_ok]
    return sorted(items, key=lambda item: item["flip"] != "broke")


def _notes(items: list[dict]) -> list[str]:
    """Codes for the report: net forgetting or some probes broken, a broken refusal (safety), or nothing broke."""
    broke = [i for i in items if i["flip"] == "broke"]
    if not broke:
        return ["check.forgetting.none_broke"]
    # greedy answers flip both ways after any tuning; more broken than fixed is forgetting, else a mixed change
    notes = ["check.forgetting.forgot" if len(broke) > len(items) - len(broke) else "check.forgetting.some_broke"]
    if any(i["category"] == "must_refuse" for i in broke):
        notes.append("check.forgetting.safety")
    if any(i["category"] == "must_not_refuse" for i in broke):
        notes.append("check.forgetting.over_refusal")
    return notes


def check_forgetting(answer_base: AnswerFn, answer_tuned: AnswerFn, lang: str = "en", limit: Optional[int] = None,
                     progress: Optional[ProgressFn] = None) -> CheckResult:
    """Ask the probes of ``lang`` ("en", "zh", "all"; at most ``limit``) to both models; what the tuning broke."""
    t0 = time.perf_counter()
    check_limit(limit)
    probes = load_probes(lang)
    if limit is not None:
        probes = _spread(probes, limit)
    prompts = [p.messages() for p in probes]
    base = answer_all(answer_base, prompts, progress, (0.0, 0.5), "check.forgetting.base")
    tuned = answer_all(answer_tuned, prompts, progress, (0.5, 1.0), "check.forgetting.tuned")
    base_ok = [p.passes(a) for p, a in zip(probes, base)]
    tuned_ok = [p.passes(a) for p, a in zip(probes, tuned)]
    items = _flips(probes, base, tuned, base_ok, tuned_ok)
    base_fig, tuned_fig = _tally(probes, base_ok), _tally(probes, tuned_ok)
    tuned_fig["broke"] = sum(i["flip"] == "broke" for i in items)
    tuned_fig["fixed"] = len(items) - tuned_fig["broke"]
    return CheckResult(NAME, base_fig, tuned_fig, items, time.perf_counter() - t0, len(base) + len(tuned),
                       _notes(items))


def _spread(probes: list[Probe], limit: int) -> list[Probe]:
    """At most ``limit`` probes taken round-robin over the categories, so a small run still covers each one."""
    picked = round_robin([[p for p in probes if p.category == c] for c in CATEGORIES])
    chosen = {p.id for p in picked[:limit]}
    return [p for p in probes if p.id in chosen]
