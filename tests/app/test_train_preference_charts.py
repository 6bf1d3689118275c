"""The Train page plots a DPO/ORPO run's reward margin, reward accuracy and chosen/rejected log-probs."""
import json

from tests.app.conftest import RUN_CONFIG, open_page, seed_dataset, seed_run_files, write_project


def _completed_run(workspace, preference: bool) -> None:
    seed_dataset(workspace)
    folder = seed_run_files(workspace, "pref-run", "completed")
    if preference:
        rows = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
        for r in rows:
            if "loss" in r:
                r.update(reward_margin=0.1 * r["step"], reward_accuracy=0.5 + 0.05 * r["step"],
                         logp_chosen=-40.0 + r["step"], logp_rejected=-42.0 - r["step"])
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_project(workspace, active_dataset="demo-data", run_config=RUN_CONFIG, active_run="pref-run")


def _chart_count(workspace, preference: bool) -> int:
    _completed_run(workspace, preference)
    at = open_page("6_train")
    assert not at.exception
    return len(at.get("plotly_chart"))


def test_preference_metrics_add_two_charts(workspace):
    plain = _chart_count(workspace, preference=False)
    assert _chart_count(workspace, preference=True) == plain + 2
