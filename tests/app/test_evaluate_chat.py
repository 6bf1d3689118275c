"""Steps 7-8 on a real tiny run: evaluation report base vs tuned, streaming chat beside the base, exports."""
import json
import time
import zipfile

import pytest

from tests.app.conftest import LANGS, RUN_CONFIG, open_page, seed_dataset, seed_run_files, texts, write_project
from ui.i18n import t


def test_evaluate_needs_a_completed_run(workspace):
    seed_dataset(workspace)
    seed_run_files(workspace, "half-run", "stopped")
    write_project(workspace, active_dataset="demo-data", run_config=RUN_CONFIG, active_run="half-run")
    at = open_page("7_evaluate")
    assert any(w.value == t("evaluate.need_completed") for w in at.warning)


@pytest.mark.parametrize("lang", LANGS)
def test_evaluate_runs_and_shows_base_vs_tuned(trained_run, workspace, lang):
    at = open_page("7_evaluate", lang)
    assert any(i.value == t("evaluate.none_yet", lang) for i in at.info)
    at.number_input[0].set_value(2)
    next(b for b in at.button if b.label == t("evaluate.run", lang)).click().run()
    assert not at.exception
    from core.evaluation.jobs import state  # the evaluation runs as `python -m core eval` in its own process

    assert state(trained_run)["state"] in ("running", "done")
    deadline = time.time() + 600
    while state(trained_run)["state"] == "running" and time.time() < deadline:
        time.sleep(1)
    assert state(trained_run)["state"] == "done"
    at.run()
    assert not at.exception
    report = json.loads((workspace / "runs" / trained_run / "eval" / "report.json").read_text())
    assert report["n_test"] == 2
    table = at.dataframe[0].value
    assert t("evaluate.col.base", lang) in table.columns and t("evaluate.col.tuned", lang) in table.columns
    assert "validation loss" in list(table[t("evaluate.col.metric", lang)])
    assert at.get("plotly_chart")
    fresh = open_page("7_evaluate", lang)  # a reload shows the saved report
    assert fresh.dataframe and t("evaluate.rerun", lang) in [b.label for b in fresh.button]


@pytest.mark.parametrize("lang", LANGS)
def test_chat_streams_tuned_and_base_answers(trained_run, lang):
    at = open_page("8_chat_export", lang)
    assert t("chat.tab_chat", lang) in texts(at)
    assert at.text_area(key=f"sys_{trained_run}").value == "You are a test helper."
    at.slider(key="max_new").set_value(16)
    at.chat_input[0].set_value("Where is my order?").run(timeout=120)
    assert not at.exception
    captions = [c.value for c in at.caption]
    assert t("chat.tuned", lang) in captions and t("chat.base", lang) in captions
    history = at.session_state[f"chat_history_{trained_run}"]
    assert history[0]["user"] == "Where is my order?"
    assert isinstance(history[0]["tuned"], str) and isinstance(history[0]["base"], str)
    at.toggle(key="compare").set_value(False)
    at.chat_input[0].set_value("Thanks").run(timeout=120)
    assert at.session_state[f"chat_history_{trained_run}"][1]["base"] is None


def test_failed_evaluation_shows_the_log(workspace):
    seed_dataset(workspace)
    seed_run_files(workspace, "no-adapter", "completed")  # completed status but no adapter: eval exits 2
    write_project(workspace, active_dataset="demo-data", run_config=RUN_CONFIG, active_run="no-adapter")
    at = open_page("7_evaluate")
    next(b for b in at.button if b.label == t("evaluate.run")).click().run()
    from core.evaluation.jobs import state

    deadline = time.time() + 300
    while state("no-adapter")["state"] == "running" and time.time() < deadline:
        time.sleep(1)
    at.run()
    assert any(e.value == t("evaluate.failed") for e in at.error)
    assert any("error:" in c.value for c in at.code)  # the engine's own message from the log


def test_export_builds_a_downloadable_adapter_zip(trained_run, workspace):
    at = open_page("8_chat_export")
    at.button(key="build_adapter").click().run(timeout=120)
    assert not at.exception
    target = workspace / "runs" / trained_run / "export" / f"{trained_run}-adapter.zip"
    assert target.exists()
    with zipfile.ZipFile(target) as zf:
        names = zf.namelist()
    assert any(n.endswith("adapter_config.json") for n in names)
    assert any(n.endswith(".safetensors") for n in names)
    assert any(b.label.startswith(t("export.download", size=0)[:6]) for b in at.get("download_button"))
