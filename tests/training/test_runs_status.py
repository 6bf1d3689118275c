"""core.runs status/lock logic without a trainer: dead or reused pids become "failed" with the log tail."""
import json
import os
import subprocess
import sys

from core import fileio, runs
from core import workspace as wsp


def _run_with_status(run_id, **status):
    folder = wsp.run_dir(run_id, create=True)
    (folder / "train.log").write_text("".join(f"line {i}\n" for i in range(30)) + "Traceback: boom\n")
    fileio.atomic_write_json(folder / "status.json", {"state": "running", "step": 3, "total_steps": 9,
                                                    "heartbeat": 0, "error": None, **status})
    return folder


def test_dead_pid_is_failed_with_log_tail():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    _run_with_status("dead", pid=proc.pid)
    st = runs.status("dead")
    assert st["state"] == "failed" and "Traceback: boom" in st["error"] and "line 29" in st["error"]
    assert "line 5\n" not in st["error"]  # only the last lines
    assert json.loads((wsp.run_dir("dead") / "status.json").read_text())["state"] == "failed"  # persisted


def test_reused_pid_is_not_mistaken_for_the_trainer():
    _run_with_status("reused", pid=os.getpid(), pid_started=runs.process_start_time(os.getpid()) - 3600)
    assert runs.status("reused")["state"] == "failed"
    _run_with_status("alive", pid=os.getpid(), pid_started=runs.process_start_time(os.getpid()))
    assert runs.status("alive")["state"] == "running"
    assert runs.stop("reused")["state"] == "failed"  # nothing is signalled for a run that is gone


def test_final_states_are_left_alone():
    _run_with_status("done", pid=123456789, state="completed")
    assert runs.status("done")["state"] == "completed"
    assert runs.status("missing-status")["state"] == "unknown"


def test_training_lock_is_exclusive():
    a, b = runs.TrainingLock(), runs.TrainingLock()
    assert a.try_acquire() and a.holder() == os.getpid()
    assert not b.try_acquire()
    calls = []
    assert b.acquire(should_abort=lambda: True, on_wait=calls.append, poll_s=0.01) is False
    assert calls == [os.getpid()]
    a.release()
    assert b.try_acquire()
    b.release()
