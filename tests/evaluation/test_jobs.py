"""core.evaluation.jobs: the evaluation child writes its progress to a file; state() reads that file and the one
liveness check of core.jobs (no parsing of log lines)."""
import os
import time

import pytest

from core import jobs
from core.evaluation import jobs as eval_jobs
from core.fileio import atomic_write_json
from tests.evaluation.conftest import make_run


def _wait(run_id, timeout=300):
    end = time.time() + timeout
    while eval_jobs.state(run_id)["state"] == "running" and time.time() < end:
        time.sleep(0.5)
    return eval_jobs.state(run_id)


def test_state_comes_from_the_progress_file_of_the_jobs_own_process(workspace):
    folder = eval_jobs.folder("r1")
    assert eval_jobs.state("r1") == {"state": "idle", "fraction": 0.0, "message": ""}
    atomic_write_json(folder / eval_jobs.JOB_FILE, {**jobs.own_record(), "started_at": 0.0})  # a clock far off
    atomic_write_json(folder / "report.json", {"old": True})  # an earlier report does not mean this job is done
    jobs.write_progress(folder / eval_jobs.PROGRESS_FILE, "running", 0.4, "tuned model: 4/10")
    assert eval_jobs.state("r1") == {"state": "running", "fraction": 0.4, "message": "tuned model: 4/10"}
    jobs.write_progress(folder / eval_jobs.PROGRESS_FILE, "done", 1.0, "done")
    assert eval_jobs.state("r1")["state"] == "done"
    atomic_write_json(folder / eval_jobs.JOB_FILE, {"pid": os.getpid(), "start_ticks": 1})  # pid reused: not ours
    assert eval_jobs.state("r1")["state"] == "failed"


@pytest.mark.slow  # a whole evaluation (~45 s on a shared CPU)
def test_a_real_job_reports_progress_then_done(tmp_path, workspace):
    from tests.test_lab import make_dataset

    run_id = make_run(tmp_path, data=make_dataset(workspace))  # a prepared dataset: the job uses its test split
    eval_jobs.start(run_id, limit=2)
    seen = set()
    end = time.time() + 300
    while (st := eval_jobs.state(run_id))["state"] == "running" and time.time() < end:
        seen.add(st["fraction"])
        time.sleep(0.2)
    assert eval_jobs.state(run_id)["state"] == "done", eval_jobs.log_tail(run_id)
    assert any(0 < f < 1 for f in seen)  # progress came through the file while it ran
    assert (eval_jobs.folder(run_id) / "report.json").exists()


def test_a_failing_job_is_failed_with_its_message(tmp_path, workspace):
    run_id = make_run(tmp_path, run_id="no-adapter", with_adapter=False)
    eval_jobs.start(run_id, limit=2)
    st = _wait(run_id)
    assert st["state"] == "failed" and "adapter" in st["message"]
    assert "error:" in eval_jobs.log_tail(run_id)
