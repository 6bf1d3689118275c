"""The trainer as a real process (`python -m core train`): SIGTERM + resume is exact, SIGKILL is reported and
recoverable, launch/stop/status through core.runs, and the workspace lock queues a second run."""
import json
import os
import signal
import subprocess

import pytest

from core import runs
from core import workspace as wsp
from tests.training.conftest import (ROOT, core_env, make_chat_data, read_metrics, run_train, tiny_config,
                                     train_cmd, wait_for, write_config)

pytestmark = pytest.mark.slow
DELAY = {"AF_DEBUG_STEP_DELAY": "0.5"}  # slows each step so a signal lands mid-run


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run of the shared config (in its own workspace): the curve the others must match."""
    base = tmp_path_factory.mktemp("reference")
    data = make_chat_data(base / "pattern.jsonl")
    cfg = tiny_config(data, epochs=2)
    config = write_config(base / "run.json", cfg)
    home = base / "workspace"
    proc = run_train("--config", str(config), "--run-id", "ref", env={"ASSISTANT_FACTORY_HOME": str(home)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0] == "ref"
    return {"cfg": cfg, "metrics": read_metrics(home / "runs" / "ref")}


def _curve(lines):
    train = [(r["step"], r["loss"]) for r in lines if "loss" in r and not r.get("skipped")]
    evals = [(r["step"], r["eval_loss"]) for r in lines if "eval_loss" in r]
    return train, evals


def assert_same_curve(got, want, tol=1e-5):
    (gt, ge), (wt, we) = _curve(got), _curve(want)
    assert [s for s, _ in gt] == [s for s, _ in wt]
    assert [s for s, _ in ge] == [s for s, _ in we]
    for (_, a), (_, b) in zip(gt + ge, wt + we):
        assert abs(a - b) <= tol, (a, b)


def _status(workspace, run_id):
    return json.loads((workspace / "runs" / run_id / "status.json").read_text())


def _metric_steps(run):
    path = run / "metrics.jsonl"
    return [r["step"] for r in read_metrics(run) if "loss" in r] if path.exists() else []


def test_sigterm_then_resume_matches_uninterrupted(tmp_path, workspace, reference):
    config = write_config(tmp_path / "run.json", reference["cfg"])
    proc = subprocess.Popen(train_cmd("--config", str(config), "--run-id", "live"), cwd=ROOT,
                            env=core_env({**DELAY, "ASSISTANT_FACTORY_HOME": str(workspace)}),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert proc.stdout.readline().strip() == "live"  # the run id comes first
    run = workspace / "runs" / "live"
    wait_for(lambda: len(_metric_steps(run)) >= 6, what="six steps")
    st = runs.stop("live")
    assert st["state"] == "stopping"
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, out
    status = _status(workspace, "live")
    stopped_at = status["step"]
    assert status["state"] == "stopped" and 6 <= stopped_at < status["total_steps"], out
    assert (run / "checkpoints" / f"step-{stopped_at}").is_dir()  # the step in flight was finished and saved
    resumed = run_train("--resume", "live", env={"ASSISTANT_FACTORY_HOME": str(workspace)})
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert resumed.stdout.splitlines()[0] == "live"
    assert _status(workspace, "live")["state"] == "completed"
    assert_same_curve(read_metrics(run), reference["metrics"])


def test_sigkill_is_reported_failed_and_resume_recovers(workspace, reference, monkeypatch):
    monkeypatch.setenv("AF_DEBUG_STEP_DELAY", "0.5")
    run_id = runs.launch(reference["cfg"])
    run = wsp.run_dir(run_id)
    assert runs.status(run_id)["state"] in ("queued", "running")
    wait_for(lambda: (run / "checkpoints" / "step-4").is_dir() and len(_metric_steps(run)) >= 6,
             what="a checkpoint and two more steps")
    pid = runs.status(run_id)["pid"]
    os.killpg(pid, signal.SIGKILL)
    st = wait_for(lambda: (s := runs.status(run_id))["state"] == "failed" and s, what="failed state")
    assert "ended without saving a final state" in st["error"] and "step " in st["error"]  # log tail included
    assert runs.status(run_id)["state"] == "failed"  # sticky
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"step": 99, "loss": NaN-garbage\n')  # a damaged line: skipped, never a JSONDecodeError
    monkeypatch.delenv("AF_DEBUG_STEP_DELAY")
    runs.resume(run_id)
    st = wait_for(lambda: (s := runs.status(run_id))["state"] in ("completed", "failed") and s, timeout=180,
                  what="the resumed run to end")
    assert st["state"] == "completed", runs.log_tail(run_id)
    assert "resumed from" in (run / "train.log").read_text()
    assert_same_curve(read_metrics(run), reference["metrics"])  # lines after the checkpoint were replaced
    assert any(r["run_id"] == run_id and r["state"] == "completed" for r in runs.list_runs())


def test_second_launch_is_queued_until_the_first_ends(workspace, reference, monkeypatch):
    monkeypatch.setenv("AF_DEBUG_STEP_DELAY", "2")  # the first run cannot finish before the test stops it
    first = runs.launch(reference["cfg"])
    wait_for(lambda: runs.status(first)["state"] == "running", what="first run running")
    short = {**reference["cfg"], "train": {**reference["cfg"]["train"], "max_steps": 2}}
    second, third = runs.launch(short), runs.launch(short)
    for rid in (second, third):
        wait_for(lambda: "queued" in (wsp.run_dir(rid) / "train.log").read_text(), what=f"{rid} queued")
    assert runs.status(second)["state"] == runs.status(third)["state"] == "queued"
    assert runs.status(first)["state"] == "running"
    assert runs.stop(third)["state"] == "stopping"  # a queued run can be cancelled
    st3 = wait_for(lambda: (s := runs.status(third))["state"] == "stopped" and s, timeout=60, what="third")
    assert st3.get("detail") == "stopped while queued" and not (wsp.run_dir(third) / "metrics.jsonl").exists()
    assert runs.status(second)["state"] == "queued"  # still waiting for the first
    runs.stop(first)
    end1 = wait_for(lambda: (s := runs.status(first))["state"] == "stopped" and s, timeout=120, what="first")
    end2 = wait_for(lambda: (s := runs.status(second))["state"] == "completed" and s, timeout=180, what="second")
    assert end2["started_at"] >= end1["heartbeat"] - 1.0  # it only started once the first released the lock


def test_resume_of_unknown_run_and_reused_id_are_user_errors(tmp_path, workspace, chat_data):
    bad = run_train("--resume", "nope", env={"ASSISTANT_FACTORY_HOME": str(workspace)})
    assert bad.returncode == 2 and "no run 'nope'" in bad.stderr
    with pytest.raises(Exception, match="no run"):
        runs.resume("nope")
    config = write_config(tmp_path / "run.json", tiny_config(chat_data, max_steps=2, eval_every=1))
    ok = run_train("--config", str(config), "--run-id", "once", env={"ASSISTANT_FACTORY_HOME": str(workspace)})
    assert ok.returncode == 0, ok.stderr
    again = run_train("--config", str(config), "--run-id", "once", env={"ASSISTANT_FACTORY_HOME": str(workspace)})
    assert again.returncode == 2 and "--resume once" in again.stderr
