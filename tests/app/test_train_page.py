"""The Train page while a run trains: validation progress, ETA, notes, slow-step warning, damaged runs, and a
live view that reads the run's files again only when they changed."""
import json
import os

import pytest

from core.runs import process_start_time
from tests.app.conftest import LANGS, RUN_CONFIG, open_page, seed_dataset, seed_run_files, texts, write_project
from ui.i18n import t


def _running(workspace, **status) -> str:
    """A run whose status says running, owned by this (live) test process, with ``status`` fields added."""
    seed_dataset(workspace)
    folder = seed_run_files(workspace, "live-run", "running")
    doc = json.loads((folder / "status.json").read_text())
    doc.update(pid=os.getpid(), pid_started=process_start_time(os.getpid()), **status)
    (folder / "status.json").write_text(json.dumps(doc))
    write_project(workspace, active_dataset="demo-data", run_config=RUN_CONFIG, active_run="live-run")
    return "live-run"


@pytest.mark.parametrize("lang", LANGS)
def test_running_run_shows_validation_progress_eta_notes_and_why_it_is_slow(workspace, lang):
    _running(workspace, phase="eval", eval_batch=3, eval_batches=10, eta_s=75,
             notes=[{"code": "first_eval_sampled", "params": {}}, {"code": "resume_fallback", "params": {}}],
             slow={"ratio": 3.2, "expected_step_s": 1.0, "measured_step_s": 3.2, "other_cpu_pct": 45})
    at = open_page("6_train", lang)
    assert not at.exception
    progress = [p.proto.text for p in at.get("progress")]
    assert t("train.eval_progress", lang, batch=3, batches=10) in progress
    assert t("train.progress", lang, step=6, total=12, elapsed="0:12", eta="1:15") in progress
    infos = [i.value for i in at.info]
    assert t("train_note.first_eval_sampled", lang) in infos and t("train_note.resume_fallback", lang) in infos
    assert [w.value for w in at.warning] == [t("train.slow_other", lang, ratio=3.2, other=45)]
    assert "3.2" in at.warning[0].value and "45" in at.warning[0].value


def test_slow_steps_on_an_idle_machine_blame_the_machine(workspace):
    _running(workspace, slow={"ratio": 2.0, "expected_step_s": 1.0, "measured_step_s": 2.0, "other_cpu_pct": 3})
    at = open_page("6_train")
    assert [w.value for w in at.warning] == [t("train.slow_machine", ratio=2.0)]


def test_live_view_reads_the_run_files_again_only_when_they_changed(workspace, monkeypatch):
    import ui.runview

    run_id = _running(workspace)
    monkeypatch.setattr(ui.runview, "RECHECK_S", 10**9)  # no clock tick during the test
    reads = []
    real = ui.runview.metrics
    monkeypatch.setattr(ui.runview, "metrics", lambda rid: reads.append(rid) or real(rid))
    at = open_page("6_train")
    assert reads == [run_id] and len(at.get("plotly_chart")) == 3
    at.run()  # the fragment's next tick: the files are as they were
    at.run()
    assert reads == [run_id] and len(at.get("plotly_chart")) == 3  # the charts are still shown
    with open(workspace / "runs" / run_id / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"step": 7, "loss": 0.5, "lr": 1e-3, "tokens_per_s": 510.0, "elapsed_s": 14.0}) + "\n")
    at.run()
    assert reads == [run_id, run_id]
    assert not at.exception


def test_a_status_change_alone_redraws_the_status_but_not_the_charts(workspace, monkeypatch):
    import ui.runview

    run_id = _running(workspace)
    monkeypatch.setattr(ui.runview, "RECHECK_S", 10**9)
    reads, built = [], []
    real_metrics, real_curves = ui.runview.metrics, ui.runview.curves
    monkeypatch.setattr(ui.runview, "metrics", lambda rid: reads.append(rid) or real_metrics(rid))
    monkeypatch.setattr(ui.runview, "curves", lambda rows: built.append(len(rows)) or real_curves(rows))
    at = open_page("6_train")
    path = workspace / "runs" / run_id / "status.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "phase": "eval", "eval_batch": 1, "eval_batches": 4}))
    at.run()  # validation started: status.json changed, metrics.jsonl did not
    assert t("train.eval_progress", batch=1, batches=4) in [p.proto.text for p in at.get("progress")]
    assert reads == [run_id] and len(built) == 1 and len(at.get("plotly_chart")) == 3


@pytest.mark.parametrize("lang", LANGS)
def test_damaged_run_is_named_with_its_reason(workspace, monkeypatch, lang):
    import core.runs

    seed_dataset(workspace)
    seed_run_files(workspace, "hurt-run", "failed")
    write_project(workspace, active_dataset="demo-data", run_config=RUN_CONFIG, active_run="hurt-run")
    damaged = {"state": "damaged", "run_id": "hurt-run", "step": 3, "total_steps": 12,
               "error": "status.json is not valid JSON (line 1)"}
    monkeypatch.setattr(core.runs, "status", lambda run_id: dict(damaged))
    at = open_page("6_train", lang)
    assert not at.exception
    assert t("state.damaged", lang) in texts(at)
    assert any(e.value == t("train.damaged", lang, reason=damaged["error"]) for e in at.error)
