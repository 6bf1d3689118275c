"""--limit bounds everything evaluation generates; the report says how many answers each part made and its time."""
from __future__ import annotations

from core.evaluation import evaluate_run
from tests.evaluation.conftest import make_run, one_thread  # noqa: F401 - autouse fixture


def test_limit_bounds_every_part_and_the_report_counts_them(tmp_path):
    run_id = make_run(tmp_path)
    report = evaluate_run(run_id, data=str(tmp_path / "intents.csv"), limit=3, reuse_base=False)
    parts = report["generation"]
    assert set(parts) == {"base", "tuned", "robustness", "performance"}
    assert parts["base"]["answers"] == parts["tuned"]["answers"] == 3
    n_perturbations = len(report["robustness"]["perturbations"])
    assert report["robustness"]["n"] == 3  # not ROBUSTNESS_MIN (10): the limit wins
    assert 0 < parts["robustness"]["answers"] <= 3 * n_perturbations
    # three speed measures (base, tuned, merged), each: 1 warmup + 3 single answers + a batch of 3 (= limit)
    assert parts["performance"]["answers"] == 3 * (1 + 3 + 3)
    assert all(p["seconds"] > 0 for p in parts.values())
