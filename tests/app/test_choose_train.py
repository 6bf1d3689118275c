"""Steps 5-6: method choice with estimate, then training: start, live state, curves, stop/resume, failures."""
import json
import time

import pytest

from tests.app.conftest import LANGS, RUN_CONFIG, open_page, seed_dataset, seed_run_files, texts, write_project
from core.defaults import DEFAULT_BUDGET_MIN
from ui.i18n import t


@pytest.mark.parametrize("lang", LANGS)
def test_choose_explains_methods_estimates_and_saves(workspace, lang):
    seed_dataset(workspace)
    write_project(workspace, active_dataset="demo-data")
    at = open_page("5_choose", lang)
    assert not at.exception
    body = texts(at)
    for method in ("lora", "adapter", "prefix", "full", "freeze"):
        assert t(f"method.{method}.name", lang) in body
        assert t(f"method.{method}.explain", lang) in body
    assert t("choose.recommended", lang, method=t("method.lora.name", lang)).split("**")[0] in body
    metrics = {m.label: m.value for m in at.metric}
    trainable = int(metrics[t("choose.est.params", lang)].replace(",", ""))
    assert 0 < trainable < 100_000  # LoRA on the tiny model: a small share of its ~92k parameters
    at.radio(key="preset_pick").set_value("quick").run()
    at.radio(key="method_pick").set_value("adapter").run()
    next(b for b in at.button if b.label == t("choose.save", lang)).click().run()
    assert not at.exception
    saved = json.loads((workspace / "project.json").read_text())["run_config"]
    assert saved["method"] == "adapter" and saved["adapter"]["bottleneck"] == 64
    assert saved["train"]["max_steps"] == 30 and saved["train"]["batch_size"] == 4  # the quick preset
    adapter_params = int({m.label: m.value for m in at.metric}[t("choose.est.params", lang)].replace(",", ""))
    assert adapter_params != trainable  # the estimate follows the chosen method


def test_use_recommendation_saves_the_recommended_settings(workspace):
    seed_dataset(workspace)
    write_project(workspace, active_dataset="demo-data")
    at = open_page("5_choose")
    assert at.number_input(key="budget_min").value == DEFAULT_BUDGET_MIN
    at.number_input(key="budget_min").set_value(3).run()  # the user's time budget, in minutes
    at.button(key="use_rec").click().run()
    assert not at.exception
    project = json.loads((workspace / "project.json").read_text())
    saved = project["run_config"]
    assert project["time_budget_min"] == 3
    from core.strategy import recommend_for_dataset

    rec = recommend_for_dataset(str(workspace / "datasets" / "demo-data"), purpose="knowledge_qa", model="tiny-llama",
                                time_budget_s=180, system_prompt=project["system_prompt"])
    assert saved["method"] == rec.method and saved[rec.method] == rec.params
    assert saved["train"]["epochs"] == rec.train["epochs"]
    assert (saved["train"]["max_steps"] or None) == rec.train["max_steps"]
    assert at.radio(key="method_pick").value == rec.method


def test_choose_needs_a_dataset(workspace):
    write_project(workspace)
    at = open_page("5_choose")
    assert any(w.value == t("choose.need_dataset") for w in at.warning)


@pytest.mark.parametrize("lang", LANGS)
def test_train_page_shows_a_completed_run_from_its_files(workspace, lang):
    seed_dataset(workspace)
    seed_run_files(workspace, "done-run", "completed")
    write_project(workspace, active_dataset="demo-data", run_config=RUN_CONFIG, active_run="done-run")
    at = open_page("6_train", lang)
    assert not at.exception
    assert t("train.run_title", lang, id="done-run") in texts(at)
    assert any(s.value == t("train.completed", lang) for s in at.success)
    assert len(at.get("plotly_chart")) == 3  # loss (train + validation), learning rate, tokens/s
    progress = [p.proto.text for p in at.get("progress")]
    assert any(t("train.progress", lang, step=6, total=6, elapsed="0:12", eta="0:00") == p for p in progress)


def test_failed_run_shows_reason_and_log_tail(workspace):
    seed_dataset(workspace)
    seed_run_files(workspace, "bad-run", "failed", error="loss became NaN 5 times in a row")
    write_project(workspace, active_dataset="demo-data", run_config=RUN_CONFIG, active_run="bad-run")
    at = open_page("6_train")
    assert any("loss became NaN" in e.value for e in at.error)
    assert any("Traceback: boom" in c.value for c in at.code)
    assert any(b.label == t("train.resume") for b in at.button)


def _wait_state(run_id: str, states: tuple, timeout: float = 240.0) -> dict:
    from core.runs import status

    deadline = time.time() + timeout
    while time.time() < deadline:
        st = status(run_id)
        if st.get("state") in states:
            return st
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} never reached {states}: {status(run_id)}")


def test_start_trains_in_a_process_and_survives_a_new_session(workspace):
    seed_dataset(workspace)
    write_project(workspace, active_dataset="demo-data", run_config=RUN_CONFIG)
    at = open_page("6_train")
    assert any(i.value == t("train.no_run") for i in at.info)
    at.button(key="start").click().run()
    assert not at.exception
    run_id = json.loads((workspace / "project.json").read_text())["active_run"]
    assert run_id and run_id.startswith("Test-Helper")
    assert (workspace / "runs" / run_id / "config.json").exists()
    final = _wait_state(run_id, ("completed", "failed"))
    from core.runs import log_tail

    assert final["state"] == "completed", (final, log_tail(run_id, 30))
    fresh = open_page("6_train")  # a reload or a second tab: everything comes from the run folder
    assert t("train.run_title", id=run_id) in texts(fresh)
    assert any(s.value == t("train.completed") for s in fresh.success)
    assert fresh.get("plotly_chart")
    assert (workspace / "runs" / run_id / "adapter" / "adapter_config.json").exists()


def test_stop_then_resume(workspace):
    seed_dataset(workspace, n=200)
    cfg = {**RUN_CONFIG, "train": {**RUN_CONFIG["train"], "max_steps": 400, "batch_size": 2, "save_every": 5}}
    write_project(workspace, active_dataset="demo-data", run_config=cfg)
    at = open_page("6_train")
    at.button(key="start").click().run()
    run_id = json.loads((workspace / "project.json").read_text())["active_run"]
    _wait_state(run_id, ("running",))
    deadline = time.time() + 120
    while not list((workspace / "runs" / run_id).glob("metrics.jsonl")) and time.time() < deadline:
        time.sleep(0.5)
    at = open_page("6_train")
    at.button(key=f"stop_{run_id}").click().run()
    assert not at.exception
    stopped = _wait_state(run_id, ("stopped", "completed", "failed"))
    assert stopped["state"] == "stopped", stopped
    at = open_page("6_train")
    at.button(key=f"resume_{run_id}").click().run()
    assert not at.exception
    _wait_state(run_id, ("running", "queued", "completed"))
    from core.runs import stop

    stop(run_id)  # do not leave a trainer behind
    _wait_state(run_id, ("stopped", "completed", "failed"))


def _recommendation(workspace, budget_min: float):
    from core.strategy import recommend_for_dataset

    project = json.loads((workspace / "project.json").read_text())
    return recommend_for_dataset(str(workspace / "datasets" / "demo-data"), purpose="knowledge_qa",
                                 model="tiny-llama", time_budget_s=60 * budget_min,
                                 system_prompt=project["system_prompt"])


def test_use_recommendation_sets_the_form_widgets(workspace):
    """The widgets show the recommendation after the click, and saving the form keeps it (not the old values)."""
    seed_dataset(workspace)
    write_project(workspace, active_dataset="demo-data")
    at = open_page("5_choose")
    at.radio(key="preset_pick").set_value("quick").run()  # change the form away from the recommendation
    assert at.number_input(key="hp_max_steps").value == 30
    at.button(key="use_rec").click().run()
    assert not at.exception
    rec = _recommendation(workspace, json.loads((workspace / "project.json").read_text())["time_budget_min"])
    assert at.radio(key="method_pick").value == rec.method
    assert at.number_input(key="hp_epochs").value == rec.train["epochs"]
    assert at.number_input(key="hp_max_steps").value == (rec.train["max_steps"] or 0)
    assert at.number_input(key="hp_batch_size").value == rec.train["batch_size"]
    assert at.number_input(key="hp_max_seq_len").value == rec.train["max_seq_len"]
    assert at.number_input(key=f"hp_{rec.method}_r").value == rec.params["r"]
    next(b for b in at.button if b.label == t("choose.save")).click().run()
    saved = json.loads((workspace / "project.json").read_text())["run_config"]
    assert saved["train"]["epochs"] == rec.train["epochs"] and saved[rec.method]["r"] == rec.params["r"]
    assert saved["train"]["expected_step_s"] > 0  # the recommendation's measured speed travels with the config


def test_strategy_reasons_show_in_chinese(workspace):
    seed_dataset(workspace)
    write_project(workspace, active_dataset="demo-data")
    at = open_page("5_choose", "zh")
    assert not at.exception
    body = texts(at)
    rec = _recommendation(workspace, DEFAULT_BUDGET_MIN)
    first = rec.reasons[0]
    assert t(f"strategy.{first['code']}", "zh", **first["params"]) in body
    assert t(f"strategy.{first['code']}", "en", **first["params"]) not in body
    assert "Timed on your own batches" not in body and "按你自己的数据批次" in body
