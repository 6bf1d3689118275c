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
