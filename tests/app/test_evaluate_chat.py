"""Steps 7-8 on a real tiny run: evaluation report base vs tuned, streaming chat beside the base, exports."""
import json
import time
import zipfile

import pytest

from tests.app.conftest import LANGS, RUN_CONFIG, open_page, seed_dataset, seed_run_files, texts, write_project
from core.checkpoints import usable_weights
from ui.i18n import t


def answered(at, key: str, turns: int, tries: int = 240):
    """The models load in background threads: rerun until the conversation has ``turns`` answers."""
    for _ in range(tries):
        conv = at.session_state[key] if key in at.session_state else {"messages": []}
        if sum(m["role"] == "assistant" for m in conv["messages"]) >= turns:
            return at
        time.sleep(0.25)
        at.run(timeout=120)
    raise AssertionError(f"no answer after {tries} reruns")


def test_evaluate_says_when_a_run_has_no_weights_yet(workspace):
    seed_dataset(workspace)
    seed_run_files(workspace, "half-run", "stopped")  # stopped before its first checkpoint
    write_project(workspace, active_dataset="demo-data", run_config=RUN_CONFIG, active_run="half-run")
    at = open_page("7_evaluate")
    assert any(w.value == t("weights.none") for w in at.warning)
    assert not at.get("form") and any(b.label == t("weights.resume") for b in at.button)


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
    assert t("metric.val_loss", lang) in list(table[t("evaluate.col.metric", lang)])
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
    key = f"chat_{trained_run}_{usable_weights(trained_run).step}_True"
    at = answered(at, key, 1)
    captions = [c.value for c in at.caption]
    assert t("chat.tuned", lang) in captions and t("chat.base", lang) in captions
    conv = at.session_state[key]
    assert [m["role"] for m in conv["messages"]] == ["user", "assistant"]  # standard chat messages
    assert conv["messages"][0]["content"] == "Where is my order?"
    assert isinstance(conv["messages"][1]["content"], str) and isinstance(conv["base"][1], str)
    at.toggle(key="compare").set_value(False)
    at.chat_input[0].set_value("Thanks").run(timeout=120)
    conv = answered(at, key, 2).session_state[key]
    assert [m["content"] for m in conv["messages"] if m["role"] == "user"] == ["Where is my order?", "Thanks"]
    assert set(conv["base"]) == {1}  # the second turn was asked without the base model


def test_failed_evaluation_shows_the_log(workspace):
    seed_dataset(workspace)
    folder = seed_run_files(workspace, "no-adapter", "completed")
    (folder / "adapter").mkdir()
    (folder / "adapter" / "adapter_config.json").write_text("{}")  # an adapter with no weights: eval exits 2
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
