"""core.jobs, the one job runner: detached children, liveness by start ticks (not wall clock), stop, no zombies."""
import os
import sys
import time
from pathlib import Path

import pytest

from core import jobs

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def _wait_gone(job, timeout=20.0):
    end = time.time() + timeout
    while jobs.alive(job) and time.time() < end:
        time.sleep(0.05)
    return not jobs.alive(job)


def test_start_ticks_are_field_22_of_proc_stat():
    stat = Path(f"/proc/{os.getpid()}/stat").read_text()
    assert jobs.start_ticks(os.getpid()) == int(stat[stat.rfind(")") + 2:].split()[19])
    assert jobs.start_ticks(0) is None and jobs.start_ticks("12") is None and jobs.start_ticks(2**22 + 12345) is None


def test_liveness_ignores_wall_clock_and_catches_a_reused_pid():
    me = {"pid": os.getpid(), "start_ticks": jobs.start_ticks(os.getpid()), "started_at": 0.0}  # clock far off
    assert jobs.alive(me)
    assert not jobs.alive({**me, "start_ticks": me["start_ticks"] - 1})  # same pid, another process
    assert not jobs.alive(None) and not jobs.alive({"pid": None})


def test_spawn_records_the_job_appends_the_log_and_reaps(tmp_path):
    folder = tmp_path / "job"
    first = jobs.spawn_command(folder, [sys.executable, "-c", "print('one')"], log_name="out.log")
    assert _wait_gone(first)
    second = jobs.spawn_command(folder, [sys.executable, "-c", "import os; print('two', os.getsid(0) == os.getpid())"],
                                log_name="out.log")
    assert jobs.read_job(folder) == second and isinstance(second["start_ticks"], int)
    assert _wait_gone(second)
    assert jobs.log_tail(folder / "out.log", 5) == "one\ntwo True"  # appended; the child leads its own session
    assert not Path(f"/proc/{second['pid']}").exists()  # reaped: no zombie left behind
    assert jobs.log_tail(folder / "missing.log") == ""


def test_spawn_passes_the_workspace_and_runs_python_m_core(tmp_path, workspace):
    job = jobs.spawn(tmp_path, "train", ["--resume", "no-such-run"], log_name="train.log")
    assert job["verb"] == "train" and job["args"] == ["--resume", "no-such-run"]
    assert jobs.wait(job) == 2  # a user error: exit 2
    assert "no run 'no-such-run'" in jobs.log_tail(tmp_path / "train.log")


def test_stop_signals_the_whole_group_and_only_a_live_job(tmp_path):
    script = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); " \
             "print('started', flush=True); time.sleep(60)"
    job = jobs.spawn_command(tmp_path, [sys.executable, "-c", script])
    end = time.time() + 20
    while "started" not in jobs.log_tail(tmp_path / "job.log") and time.time() < end:
        time.sleep(0.05)
    group = [int(p) for p in os.listdir("/proc") if p.isdigit() and jobs.start_ticks(int(p)) is not None
             and _pgid(int(p)) == job["pid"]]
    assert len(group) == 2
    assert not jobs.stop({**job, "start_ticks": job["start_ticks"] + 1})  # not that process: nothing is signalled
    assert jobs.alive(job)
    assert jobs.stop(job)
    assert _wait_gone(job)
    end = time.time() + 10
    while any(jobs.start_ticks(p) is not None and _state(p) != "Z" for p in group) and time.time() < end:
        time.sleep(0.05)
    assert all(jobs.start_ticks(p) is None or _state(p) == "Z" for p in group)  # the grandchild too
    assert not jobs.stop(job)  # already gone


def _pgid(pid):
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _state(pid):
    fields = jobs._stat_fields(pid)
    return fields[0] if fields else None


def test_progress_file_is_read_only_from_the_jobs_own_process(tmp_path):
    path = tmp_path / "progress.json"
    me = jobs.own_record()
    jobs.write_progress(path, "running", 0.25, "scoring")
    got = jobs.read_progress(path, me)
    assert got["fraction"] == 0.25 and got["message"] == "scoring" and got["state"] == "running"
    assert jobs.read_progress(path, {**me, "start_ticks": me["start_ticks"] + 5}) is None  # an older job's file
    write = jobs.progress_writer(path, every=0.5)
    write(0.1, "a")
    write(0.3, "b")  # under the step: not written
    assert jobs.read_progress(path, me)["message"] == "a"
    write(1.0, "end")
    assert jobs.read_progress(path, me)["fraction"] == pytest.approx(1.0)
