"""``eval --checks``: parsing, exit 2 for an unknown name, and the runner storing every check and the gate."""
import json
import sys
import types

import pytest

from core.__main__ import main
from core.errors import UserError
from core.evaluation import jobs as eval_jobs
from core.evaluation.checks import CheckResult
from core.evaluation.runchecks import CHECKS, parse_checks, run_checks
from core.evaluation.report import write_report
from core.fileio import atomic_write_json
from core.workspace import dataset_dir, run_dir
from tests.evaluation.planted import report, write_dataset


def test_checks_parse_all_or_a_list_in_a_fixed_order():
    assert parse_checks("all") == list(CHECKS)
    assert parse_checks("leaks, forgetting") == ["forgetting", "leaks"]
    assert parse_checks(None) == [] and parse_checks("") == []
    with pytest.raises(UserError) as err:
        parse_checks("forgetting,speling")
    assert "'speling'" in str(err.value) and all(c in str(err.value) for c in CHECKS)


def test_an_unknown_check_exits_2_listing_the_valid_ones(capsys):
    assert main(["eval", "no-such-run", "--checks", "bogus"]) == 2
    err = capsys.readouterr().err
    assert "bogus" in err and "forgetting, abstention, leaks, causes, baselines" in err and "Traceback" not in err


class FakeModels:
    """Answer functions that count their calls instead of loading models."""

    def __init__(self):
        self.calls = 0

    def base(self):
        return self.answer

    tuned = base

    def answer(self, prompts):
        self.calls += len(prompts)
        return ["I cannot help with that."] * len(prompts)


def _fake_checks(monkeypatch, seen: dict) -> None:
    """Stand-ins for checks 1-3 (written on another branch) with their agreed signatures."""
    def forgetting(answer_base, answer_tuned, lang="en", limit=None, progress=None):
        seen["forgetting"] = limit
        answer_tuned([[{"role": "user", "content": "2+2?"}]])
        progress(0.5, "half")
        return CheckResult("forgetting", {"passed": 5, "total": 5}, {"passed": 5, "total": 5})

    def questions(system_prompt, train_rows, lang="en", limit=None):
        seen["abstention_rows"] = len(train_rows)
        return ["What is the weather on Mars?"][:limit]

    def abstention(answer_base, answer_tuned, qs, progress=None):
        return CheckResult("abstention", {"rate": 0.0}, {"rate": 1.0 if qs else 0.0})

    def leaks(answer_base, answer_tuned, train_rows, pii_found, limit=None, progress=None):
        seen["pii_found"] = pii_found
        return CheckResult("leaks", {"leak_rate": 0.0}, {"leak_rate": 0.5})

    from core.evaluation.leaks import pii_in_rows

    for name, attrs in (("forgetting", {"check_forgetting": forgetting}),
                        ("abstention", {"check_abstention": abstention, "out_of_scope_questions": questions}),
                        ("leaks", {"check_leaks": leaks, "pii_in_rows": pii_in_rows})):
        monkeypatch.setitem(sys.modules, f"core.evaluation.{name}", types.SimpleNamespace(**attrs))


def test_run_checks_stores_each_check_under_its_name_and_applies_the_gate(workspace, monkeypatch):
    write_dataset(workspace)
    atomic_write_json(run_dir("r1", create=True) / "config.json",
                      {"model": "tiny-llama", "data": str(dataset_dir("faq")), "method": "lora"})
    write_report(report("r1", {}), run_dir("r1") / "eval")
    seen, fractions = {}, []
    _fake_checks(monkeypatch, seen)
    models = FakeModels()
    out = run_checks("r1", parse_checks("forgetting,abstention,leaks,causes,baselines"), limit=1,
                     progress=lambda f, m: fractions.append(f), models=models)
    stored = json.loads((run_dir("r1") / "eval" / "report.json").read_text())
    assert list(stored["checks"]) == ["forgetting", "abstention", "leaks", "causes", "baselines"] == list(out["checks"])
    assert seen == {"forgetting": 1, "abstention_rows": 9, "pii_found": []}   # the faq rows hold no personal data
    assert models.calls == 2  # forgetting 1, few-shot 1
    assert stored["checks"]["causes"]["tuned"]["method"] == "MinHash"
    assert stored["gate"]["checks"]["leaks"]["status"] == "fail" and stored["gate"]["status"] == "fail"
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and 0.05 < fractions[1] < 0.2
    assert "Check: causes of bad answers" in (run_dir("r1") / "eval" / "report.html").read_text()


def test_the_eval_job_passes_the_checks_to_the_child(workspace, monkeypatch):
    calls = []
    monkeypatch.setattr(eval_jobs.jobs, "spawn", lambda folder, verb, args, **kw: calls.append((verb, args, kw)))
    eval_jobs.start("r1", 5, ["forgetting", "leaks"])
    assert calls[0][1] == ["r1", "--limit", "5", "--checks", "forgetting,leaks"]
    assert calls[0][2]["extra"]["checks"] == ["forgetting", "leaks"]


def test_eval_compare_prints_the_answers_that_changed_without_evaluating(workspace, capsys):
    from tests.evaluation.planted import example

    write_report(report("a", {}), run_dir("a", create=True) / "eval")
    fixed = report("b", {})
    fixed["tuned"]["examples"] = [example(0, "How long until I get a refund?", "five days", "five days", 1.0)]
    write_report(fixed, run_dir("b", create=True) / "eval")
    assert main(["eval", "a", "--compare", "b"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1 test answers changed between a and b") and "[FAIL]" in out and "b [pass]" in out
    assert main(["eval", "a", "--compare", "nope"]) == 2
    assert "No evaluation report for nope" in capsys.readouterr().err
