"""The calibration sweep's machinery on a tiny slice with the tiny model: rows in the table's schema, merged."""
from __future__ import annotations

import json

from core.strategy.calibration import load_calibration


def test_quick_sweep_writes_valid_rows_merges_them_and_the_selector_reads_them(workspace, shared_data, tmp_path,
                                                                              capsys, monkeypatch):
    from bench.calibration import GRID, main, verify, winners
    from tests.strategy.helpers import fix_speed

    fix_speed(monkeypatch)
    table = tmp_path / "calibration.json"
    table.write_text(json.dumps({"schema": 1, "rows": []}))
    out = tmp_path / "rows.json"
    rows = main(quick=True, names=["banking77-10"], configs=["lora-r16-qkvo-e2"], budgets=[0.5],
                model="tiny-llama", out=str(out), merge_into=str(table), runner="inprocess", eval_limit=2)
    assert len(rows) == 1 and json.loads(out.read_text())["rows"] == rows
    for r, name in zip(rows, ["lora-r16-qkvo-e2"]):
        method, rank, targets, lr, _, dropout = GRID[name]
        assert (r["method"], r["rank"], r["targets"], r["lr"], r["dropout"]) == (method, rank, targets, lr, dropout)
        assert r["from_sweep"] and r["state"] == "completed" and r["metric"] == "accuracy"
        assert r["data_kind"] == "classification-many-labels" and r["budget_min"] == 0.5 and r["train_s"] > 0
        assert r["value"] is not None and r["val_loss"] is not None and "bench calibration --quick (lab calib-" in r["source"]
    merged = load_calibration(table)  # validated by the loader the selector uses
    assert [r["id"] for r in merged.rows] == [r["id"] for r in rows]
    printed = capsys.readouterr().out
    assert "* = the best task metric" in printed and "banking77-10" in printed
    assert len(winners(rows)) == 1
    checked = verify(rows, 0.5, "tiny-llama", str(table), quick=True)
    assert checked and checked[0]["dataset"] == "banking77-10" and checked[0]["best"] == winners(rows)[0]["value"]
