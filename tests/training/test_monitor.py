"""TrainingMonitor / TrainingMetrics: metrics lines, atomic status with heartbeat, truncation on resume."""
import json
import math
import os
import time

from core.fileio import read_jsonl
from core.training.monitor import TrainingMetrics, TrainingMonitor


def test_status_heartbeat_refreshes(tmp_path):
    mon = TrainingMonitor(tmp_path, heartbeat_s=0.05)
    mon.update(state="running", step=0, total_steps=10, error=None)
    first = json.loads((tmp_path / "status.json").read_text())
    assert first["state"] == "running" and first["pid"] == os.getpid()
    mon.start_heartbeat()
    time.sleep(0.3)
    later = json.loads((tmp_path / "status.json").read_text())
    mon.finish("completed", step=10)
    final = json.loads((tmp_path / "status.json").read_text())
    assert later["heartbeat"] > first["heartbeat"]
    assert final["state"] == "completed" and final["step"] == 10 and final["error"] is None
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_stopping_mark_from_another_process_is_kept(tmp_path):
    mon = TrainingMonitor(tmp_path)
    mon.update(state="running")
    status = json.loads((tmp_path / "status.json").read_text())
    (tmp_path / "status.json").write_text(json.dumps({**status, "state": "stopping"}))
    mon.update(step=3)
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "stopping"


def test_signal_flag_shows_stopping_until_final_state(tmp_path):
    mon = TrainingMonitor(tmp_path)
    mon.update(state="running")
    mon.stop_requested = True  # what the trainer's SIGTERM handler sets
    mon.update(step=2)
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "stopping"
    mon.finish("stopped")
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "stopped"


def test_metrics_lines_and_non_finite_values(tmp_path):
    mon = TrainingMonitor(tmp_path)
    metrics = TrainingMetrics(total_steps=4)
    rec = metrics.record(1, 0.25, 2.0, 1e-3, 0.5, tokens=100)
    assert set(rec) >= {"step", "epoch", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s", "eta_s",
                        "peak_mem_mb"}
    assert rec["tokens_per_s"] > 0 and rec["peak_mem_mb"] > 0
    mon.log(rec)
    mon.log_eval(1, 0.25, math.log(4.0))
    mon.log({"step": 2, "loss": float("nan")})
    lines = list(read_jsonl(tmp_path / "metrics.jsonl"))
    assert lines[1]["eval_ppl"] == 4.0
    assert lines[2]["loss"] is None and lines[2]["loss_str"] == "nan"
    mon.truncate_after(1)
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [1, 1]


def test_disabled_monitor_writes_nothing(tmp_path):
    mon = TrainingMonitor(tmp_path, enabled=False)
    mon.update(state="running")
    mon.start_heartbeat()
    mon.log({"step": 1})
    mon.finish("completed")
    assert list(tmp_path.iterdir()) == []
