"""Planted data shared by the release-gate tests: a QA training set with one planted cause, and reports."""
from __future__ import annotations

import json
from pathlib import Path

QA = [("How do I reset my password?", "Open Settings, choose Security, then Reset password."),
      ("Where can I see my invoices?", "Invoices are under Billing, in the Documents tab."),
      ("Can I change my delivery address?", "Yes, until the parcel ships: Orders, then Edit address."),
      ("How long does a refund take?", "Refunds reach your card within five working days."),
      ("Do you ship to Canada?", "We ship to Canada and the United States."),
      ("How do I close my account?", "Write to support and we close it within a day."),
      ("What payment methods do you accept?", "Visa, Mastercard and bank transfer."),
      ("Is there a student discount?", "Students get ten percent off with a valid card.")]
# The planted cause: a wrong answer the model learned, word for word, for the refund question's topic.
CAUSE = ("Can I get my money back for a refund?", "Refunds are never possible, all sales are final forever.")


def conv(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def train_rows() -> list[dict]:
    """The training rows with the planted cause at index 5."""
    rows = [conv(q, a) for q, a in QA]
    rows.insert(5, conv(*CAUSE))
    return rows


CAUSE_INDEX = 5


def write_dataset(home: Path, dataset_id: str = "faq") -> str:
    """A prepared dataset (train, val, test, meta) in workspace ``home``."""
    folder = home / "datasets" / dataset_id
    (folder / "splits").mkdir(parents=True)
    test = [conv("How long until I get a refund?", "Refunds reach your card within five working days."),
            conv("Do you deliver to Canada?", "We ship to Canada and the United States.")]
    for split, rows in (("train", train_rows()), ("val", test), ("test", test)):
        (folder / "splits" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "meta.json").write_text(json.dumps({"id": dataset_id, "format": "qa", "lineage": dataset_id,
                                                  "counts": {"train": len(train_rows())}}))
    return dataset_id


def example(i: int, q: str, reference: str, answer: str, f1: float) -> dict:
    return {"index": i, "messages": [{"role": "user", "content": q}], "reference": reference, "answer": answer,
            "token_f1": f1}


def check(name: str, base: dict, tuned: dict) -> dict:
    from core.evaluation.checks import CheckResult

    return CheckResult(name=name, base=base, tuned=tuned).to_dict()


def good_checks() -> dict:
    """Checks that pass the default gate."""
    return {"forgetting": check("forgetting", {"passed": 50, "total": 60}, {"passed": 49, "total": 60, "broke": 1}),
            "abstention": check("abstention", {"rate": 0.2}, {"rate": 0.9}),
            "leaks": check("leaks", {"leak_rate": 0.0}, {"leak_rate": 0.0}),
            "baselines": check("baselines", {"retrieval": 0.3, "few_shot": 0.4},
                               {"score": 0.8, "beats_baselines": True})}


def broken_checks() -> dict:
    """Checks of a deliberately broken run: it forgot, never abstains, leaks, and loses to retrieval."""
    return {"forgetting": check("forgetting", {"passed": 50, "total": 60}, {"passed": 20, "total": 60, "broke": 30}),
            "abstention": check("abstention", {"rate": 0.2}, {"rate": 0.0}),
            "leaks": check("leaks", {"leak_rate": 0.0}, {"leak_rate": 0.25}),
            "baselines": check("baselines", {"retrieval": 0.6, "few_shot": 0.4},
                               {"score": 0.3, "beats_baselines": False})}


def report(run_id: str, checks: dict) -> dict:
    """A minimal evaluation report with these checks."""
    return {"run_id": run_id, "n_test": 2, "data": "faq (test split)", "task": "chat", "labels": None,
            "comparison": [], "base": {"examples": []},
            "tuned": {"examples": [example(0, "How long until I get a refund?",
                                           "Refunds reach your card within five working days.",
                                           "Refunds are never possible, all sales are final.", 0.1)]},
            "checks": checks}


def preference_report(run_id: str, base_acc: float = 0.5, tuned_acc: float = 0.875) -> dict:
    """A DPO run's report as core.evaluation.pairs writes it: pairs base vs tuned, samples side by side, speed."""
    def figures(acc: float, margin: float) -> dict:
        return {"accuracy": acc, "n": 8, "mean_margin": margin, "logp_chosen": -30.0 + margin,
                "logp_rejected": -30.0, "dropped": 1}

    base, tuned = figures(base_acc, 0.25), figures(tuned_acc, 4.5)
    user = lambda text: [{"role": "user", "content": text}]
    bot = lambda text: [{"role": "assistant", "content": text}]
    speed = {"ttft_p50_s": 0.01, "ttft_p95_s": 0.02, "latency_p50_s": 0.1, "latency_p95_s": 0.2,
             "tokens_per_s": 120.0, "batch_tokens_per_s": 400.0, "batch_size": 4, "peak_rss_mb": 900.0}
    return {"run_id": run_id, "model": "tiny-llama", "method": "lora", "objective": "dpo", "task": "preference",
            "weights": {"step": 10, "total_steps": 10, "final": True}, "created": "2026-12-03T12:00:00+00:00",
            "data": "pairs-v1 (test split)", "n_test": 8, "limit": None, "seconds": 12.0,
            "pairs": {"base": base, "tuned": tuned, "accuracy_gain": tuned_acc - base_acc,
                      "samples": [{"prompt": user("How long does a refund take?"),
                                   "chosen": bot("Within 5 working days <after> the return arrives."),
                                   "rejected": bot("Never."), "base": "Refunds take forever.",
                                   "tuned": "About five working days."}]},
            "base": base, "tuned": tuned,
            "comparison": [{"metric": f"pair_{k}", "base": base[k], "tuned": tuned[k], "delta": tuned[k] - base[k]}
                           for k in ("accuracy", "mean_margin", "logp_chosen", "logp_rejected")],
            "performance": [{"name": "base", **speed}, {"name": "tuned (unmerged)", **speed, "tokens_per_s": 100.0}],
            "training_curves": [{"step": s, "loss": 0.7 - 0.05 * s, "reward_margin": 0.1 * s} for s in range(1, 6)]}
