"""The release gate: planted reports fail or pass per check; exporting a failing run needs a recorded confirmation."""
import json

import pytest

from core.__main__ import main
from core.errors import UserError
from core.evaluation.gate import GateThresholds, apply_gate, check_export_allowed, gate_run, record_export_override
from core.evaluation.report import render_html, write_report
from core.workspace import run_dir
from tests.evaluation.conftest import make_run
from tests.evaluation.planted import broken_checks, good_checks, report


def test_the_gate_passes_a_good_report_and_fails_each_broken_check():
    good = apply_gate(report("good", good_checks()))
    assert good["status"] == "pass" and good["passed"] and {v["status"] for v in good["checks"].values()} == {"pass"}
    bad = apply_gate(report("bad", broken_checks()))
    assert bad["status"] == "fail" and not bad["passed"]
    assert {n: v["status"] for n, v in bad["checks"].items()} == {"forgetting": "fail", "abstention": "fail",
                                                                  "leaks": "fail", "baselines": "fail"}
    assert bad["checks"]["forgetting"]["value"] == 30 and bad["checks"]["leaks"]["value"] == 0.25


def test_thresholds_move_the_verdict_and_a_missing_check_leaves_the_gate_incomplete():
    checks = broken_checks()
    lenient = GateThresholds(max_forgotten=30, min_abstention=0.0, max_leak_rate=0.3, beat_baselines=False)
    assert apply_gate(report("r", checks), lenient)["status"] == "pass"
    del checks["leaks"]
    gate = apply_gate(report("r", checks), lenient)
    assert gate["status"] == "incomplete" and gate["checks"]["leaks"]["status"] == "not_run" and not gate["passed"]


def test_invalid_thresholds_are_refused_with_every_problem_named():
    with pytest.raises(UserError) as err:
        GateThresholds(max_forgotten=-1, min_abstention=2, max_leak_rate="x", beat_baselines="yes").validate()
    for name in ("max_forgotten", "min_abstention", "max_leak_rate", "beat_baselines"):
        assert name in str(err.value)
    with pytest.raises(UserError, match="Unknown release-gate threshold"):
        GateThresholds.from_dict({"max_forgoten": 1})


def test_the_report_html_shows_the_gate_and_each_check():
    rep = report("bad", broken_checks())
    rep["gate"] = apply_gate(rep)
    html = render_html(rep)
    assert "Release gate" in html and "FAIL" in html and "Check: leaks" in html and "Check: forgetting" in html
    assert html.index("Release gate") < html.index("Metrics: base vs tuned")
    rep["checks"]["baselines"]["notes"] = ["baselines.not_beaten"]
    assert "Tuning did NOT beat the baselines" in render_html(rep)


def _plant(run_id: str, checks: dict) -> None:
    write_report(report(run_id, checks), run_dir(run_id) / "eval")


def test_export_of_a_failing_run_is_refused_without_confirmation_and_recorded_with_it(tmp_path, capsys):
    run_id = make_run(tmp_path, run_id="broken")
    _plant(run_id, broken_checks())
    gate_run(run_id)
    out = tmp_path / "out"
    assert main(["export", run_id, "--format", "adapter", "--out", str(out)]) == 2
    assert "release gate" in capsys.readouterr().err and not out.exists()
    assert main(["export", run_id, "--format", "adapter", "--out", str(out), "--accept-failing-gate"]) == 0
    assert (out / "adapter_config.json").exists() or any(out.iterdir())
    stored = json.loads((run_dir(run_id) / "eval" / "report.json").read_text())
    assert len(stored["gate"]["overrides"]) == 1 and stored["gate"]["overrides"][0]["status"] == "fail"
    assert "Exported although the gate did not pass" in (run_dir(run_id) / "eval" / "report.html").read_text()


def test_a_passing_or_unevaluated_run_exports_without_a_question(tmp_path):
    _plant("good", good_checks())
    assert check_export_allowed("good", False)["passed"]
    assert check_export_allowed("never-evaluated", False) is None
    _plant("no-checks", {})  # evaluated without checks: the gate is incomplete, which asks nothing
    assert check_export_allowed("no-checks", False)["status"] == "incomplete"
    entry = record_export_override("good", who="alice", when="2026-01-01T00:00:00+00:00")
    assert entry == {"who": "alice", "when": "2026-01-01T00:00:00+00:00", "status": "pass"}


def test_the_gate_reads_what_the_real_checks_write():
    """Not planted figures: the checks' own results go through the gate (a key renamed on either side fails)."""
    from core.evaluation.forgetting import check_forgetting
    from core.evaluation.leaks import check_leaks, pii_in_rows
    from tests.evaluation.test_forgetting import BY_PROMPT
    from tests.evaluation.test_leaks import KEY, ROWS, generic, memorised

    en = [p for p in BY_PROMPT.values() if p.lang == "en"]
    facts = {p.prompt for p in en if p.category == "fact"}
    sums = set(sorted(p.prompt for p in en if p.category == "arithmetic")[:len(facts) - 1])

    def fails(wrong):
        return lambda prompts: [("No idea, sorry." if p[-1]["content"] in wrong else BY_PROMPT[p[-1]["content"]].example)
                                for p in prompts]

    # the tuned model broke every fact and fixed one fewer sums: a net count would hide the broken facts
    forgetting = check_forgetting(fails(sums), fails(facts), lang="en").to_dict()
    secrets = pii_in_rows(ROWS) + [("secret", KEY)]
    clean = check_leaks(generic, generic, ROWS, secrets).to_dict()
    leaking = check_leaks(generic, memorised(ROWS), ROWS, secrets).to_dict()
    lenient = GateThresholds(max_forgotten=len(facts) - 1, min_abstention=0.0, max_leak_rate=0.0,
                             beat_baselines=False)
    gate = apply_gate(report("r", {"forgetting": forgetting, "leaks": clean}), lenient)
    assert gate["checks"]["forgetting"]["status"] == "fail" and gate["checks"]["forgetting"]["value"] == len(facts)
    assert gate["checks"]["leaks"]["status"] == "pass" and gate["checks"]["leaks"]["value"] == 0.0
    assert apply_gate(report("r", {"leaks": leaking}), lenient)["checks"]["leaks"]["status"] == "fail"


def test_evaluating_again_keeps_the_failing_gate_and_its_recorded_confirmation(tmp_path):
    from core.evaluation import evaluate_run

    run_id = make_run(tmp_path, run_id="broken-again")
    _plant(run_id, broken_checks())
    gate_run(run_id, GateThresholds(max_forgotten=5))
    record_export_override(run_id, who="tester")
    evaluate_run(run_id, limit=2, robustness=False, performance=False)  # a plain re-evaluation, no --checks
    stored = json.loads((run_dir(run_id) / "eval" / "report.json").read_text())
    assert "generation" in stored and stored["gate"]["status"] == "fail"  # a new report; not "incomplete"
    assert stored["gate"]["thresholds"]["max_forgotten"] == 5
    assert [o["who"] for o in stored["gate"]["overrides"]] == ["tester"]
    assert set(stored["checks"]) == set(broken_checks())


def test_a_leak_check_with_nothing_to_probe_is_not_run_not_failed():
    """One-word answers (Banking77 labels) leave the leak check no row to probe: it measured nothing."""
    checks = good_checks()
    checks["leaks"]["tuned"] = {**checks["leaks"]["tuned"], "rows": 0, "leak_rate": None}
    gate = apply_gate(report("r", checks))
    assert gate["checks"]["leaks"]["status"] == "not_run" and gate["status"] == "incomplete"
