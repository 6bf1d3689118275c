"""core.runs status/lock logic without a trainer: dead or reused pids become "failed" with the log tail."""
import json
import os
import subprocess
import sys

import pytest

from core import fileio, runs
from core import workspace as wsp
from core.errors import UserError
from tests.training.conftest import ROOT, core_env, tiny_config, wait_for, write_config


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


# ---------------------------------------------------------------- issue 15: lifecycle faults


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_sigkilled_run_is_failed_for_chat_not_still_training(workspace):
    folder = _run_with_status("killed", pid=_dead_pid(), pid_started=12345)
    (folder / "config.json").write_text(json.dumps({"model": "tiny-llama", "method": "lora"}))
    (folder / "checkpoints" / "step-4").mkdir(parents=True)
    from core import chat

    with pytest.raises(UserError) as err:
        chat.adapter_dir("killed")
    assert "still training" not in str(err.value) and "(state: failed)" in str(err.value)
    _run_with_status("killed", pid=_dead_pid(), pid_started=12345)  # the CLI sees the same
    proc = subprocess.run([sys.executable, "-m", "core", "chat", "killed", "--prompt", "hi"], check=False, cwd=ROOT,
                          env=core_env({"ASSISTANT_FACTORY_HOME": str(workspace)}), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "still training" not in proc.stderr and "failed" in proc.stderr, proc.stderr


def test_liveness_survives_a_wall_clock_step(monkeypatch):
    import psutil

    _run_with_status("alive", pid=os.getpid(), pid_started=runs.process_start_time(os.getpid()))
    real = psutil.Process.create_time
    monkeypatch.setattr(psutil.Process, "create_time", lambda self: real(self) + 3600)  # the clock jumped an hour
    assert runs.status("alive")["state"] == "running"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:  # a live process that reuses the recorded pid is not the trainer
        _run_with_status("reused", pid=other.pid, pid_started=runs.process_start_time(os.getpid()))
        assert runs.status("reused")["state"] == "failed"
        assert other.poll() is None and runs.stop("reused")["state"] == "failed" and other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_a_process_gone_after_a_stop_request_is_stopped_not_failed():
    pid = _dead_pid()
    folder = _run_with_status("asked", pid=pid, state="queued")
    fileio.atomic_write_json(folder / runs.STOP_REQUEST, {"pid": pid})
    st = runs.status("asked")
    assert st["state"] == "stopped" and not st["error"]
    folder = _run_with_status("not-asked", pid=pid, state="running")
    fileio.atomic_write_json(folder / runs.STOP_REQUEST, {"pid": pid + 1})  # meant for an earlier process
    assert runs.status("not-asked")["state"] == "failed"


def test_stop_pressed_in_the_first_second_ends_stopped(workspace, chat_data):
    rid = runs.launch(tiny_config(chat_data))
    st = runs.stop(rid)
    assert st["state"] in ("stopping", "stopped")
    end = wait_for(lambda: (s := runs.status(rid))["state"] not in ("queued", "running", "stopping") and s,
                   timeout=120, what="the run to end")
    assert end["state"] == "stopped", (end, runs.log_tail(rid))
    assert not (wsp.run_dir(rid) / "metrics.jsonl").exists()  # it never trained


def test_a_stop_request_for_this_process_stops_before_training(workspace, chat_data):
    from core.__main__ import main

    folder = wsp.run_dir("early", create=True)
    fileio.atomic_write_json(folder / "config.json", tiny_config(chat_data))
    fileio.atomic_write_json(folder / runs.STOP_REQUEST, {"pid": os.getpid()})
    assert main(["train", "--resume", "early"]) == 0
    st = json.loads((folder / "status.json").read_text())
    assert st["state"] == "stopped" and "before it started" in st["detail"]
    assert not (folder / "metrics.jsonl").exists()


def test_train_refuses_an_existing_run_id(workspace, chat_data, tmp_path, capsys):
    from core.__main__ import main

    config = write_config(tmp_path / "run.json", tiny_config(chat_data, max_steps=1))
    taken = wsp.run_dir("taken", create=True)
    (taken / "config.json").write_text('{"mine": 1}')
    (taken / "status.json").write_text('{"state": "completed"}')
    assert main(["train", "--config", str(config), "--run-id", "taken"]) == 2
    assert "--resume taken" in capsys.readouterr().err
    assert (taken / "config.json").read_text() == '{"mine": 1}'  # nothing overwritten
    assert (taken / "status.json").read_text() == '{"state": "completed"}'
    wsp.run_dir("empty", create=True)  # a folder without config.json is taken too
    assert main(["train", "--config", str(config), "--run-id", "empty"]) == 2


def test_launch_refuses_an_existing_folder_and_new_ids_skip_used_ones(workspace, chat_data, monkeypatch):
    import datetime

    def no_spawn(*a, **k):
        raise AssertionError("a trainer was started")

    monkeypatch.setattr(subprocess, "Popen", no_spawn)
    wsp.run_dir("exists", create=True)  # no config.json
    with pytest.raises(UserError, match="already"):
        runs.launch(tiny_config(chat_data), run_id="exists")
    fixed = datetime.datetime(2026, 1, 2, 3, 4, 5)
    monkeypatch.setattr(wsp._dt, "datetime", type("D", (), {"now": staticmethod(lambda: fixed)}))
    tokens = iter(["aaaa", "aaaa", "bbbb"])
    monkeypatch.setattr(wsp.secrets, "token_hex", lambda n: next(tokens))
    first = wsp.new_id("run", kind="runs")
    wsp.run_dir(first, create=True)
    assert wsp.new_id("run", kind="runs") == "run-20260102-030405-bbbb" != first


def test_damaged_files_mark_only_that_run_damaged(workspace):
    from core.defaults import DAMAGED_STATE

    _run_with_status("good", pid=123456789, state="completed")
    bad = _run_with_status("bad-status", pid=123456789, state="completed")
    (bad / "status.json").write_text('{"state": "compl')
    cfg = _run_with_status("bad-config", pid=123456789, state="completed")
    (cfg / "config.json").write_bytes(b"\xff\xfe{")
    st = runs.status("bad-status")
    assert st["state"] == DAMAGED_STATE and "status.json" in st["error"]
    assert runs.status("bad-config")["state"] == DAMAGED_STATE and "config.json" in runs.status("bad-config")["error"]
    listed = {r["run_id"]: r["state"] for r in runs.list_runs()}
    assert listed == {"good": "completed", "bad-status": DAMAGED_STATE, "bad-config": DAMAGED_STATE}
    assert runs.stop("bad-status")["state"] == DAMAGED_STATE
