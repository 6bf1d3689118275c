"""The Train page plots a DPO/ORPO run's reward margin, reward accuracy and chosen/rejected log-probs, and while
the run trains rebuilds those charts only when metrics.jsonl has new rows."""
import json
import os

from core.runs import process_start_time
from tests.app.conftest import RUN_CONFIG, open_page, seed_dataset, seed_run_files, write_project

PREF_ROW = {"reward_margin": 0.7, "reward_accuracy": 0.9, "logp_chosen": -30.0, "logp_rejected": -38.0}


def _preference_metrics(folder) -> None:
    rows = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        if "loss" in r:
            r.update(reward_margin=0.1 * r["step"], reward_accuracy=0.5 + 0.05 * r["step"],
                     logp_chosen=-40.0 + r["step"], logp_rejected=-42.0 - r["step"])
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _completed_run(workspace, preference: bool) -> None:
    seed_dataset(workspace)
    folder = seed_run_files(workspace, "pref-run", "completed")
    if preference:
        _preference_metrics(folder)
    write_project(workspace, active_dataset="demo-data", run_config=RUN_CONFIG, active_run="pref-run")


def _chart_count(workspace, preference: bool) -> int:
    _completed_run(workspace, preference)
    at = open_page("6_train")
    assert not at.exception
    return len(at.get("plotly_chart"))


def test_preference_metrics_add_two_charts(workspace):
    plain = _chart_count(workspace, preference=False)
    assert _chart_count(workspace, preference=True) == plain + 2


def test_live_preference_charts_are_rebuilt_only_when_metrics_arrive(workspace, monkeypatch):
    import ui.runview

    seed_dataset(workspace)
    folder = seed_run_files(workspace, "pref-live", "running")
    _preference_metrics(folder)
    doc = json.loads((folder / "status.json").read_text())
    doc.update(pid=os.getpid(), pid_started=process_start_time(os.getpid()))  # alive: this test process
    (folder / "status.json").write_text(json.dumps(doc))
    write_project(workspace, active_dataset="demo-data", run_config=RUN_CONFIG, active_run="pref-live")
    monkeypatch.setattr(ui.runview, "RECHECK_S", 10**9)  # no clock tick during the test
    built, real = [], ui.runview.preference_curves
    monkeypatch.setattr(ui.runview, "preference_curves", lambda rows: built.append(len(rows)) or real(rows))
    at = open_page("6_train")
    assert len(built) == 1 and len(at.get("plotly_chart")) == 5
    at.run()  # the fragment's next ticks: metrics.jsonl is as it was
    at.run()
    assert len(built) == 1 and len(at.get("plotly_chart")) == 5  # still drawn, from the kept figures
    with open(folder / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"step": 7, "loss": 0.5, "lr": 1e-3, "tokens_per_s": 510.0, "elapsed_s": 14.0,
                             **PREF_ROW}) + "\n")
    at.run()
    assert len(built) == 2 and built[-1] == built[0] + 1
    assert not at.exception
