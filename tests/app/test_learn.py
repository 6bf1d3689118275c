"""Learn page: the explainer (line, machines, maths, rank slider, merge demo) and the method lab, en and zh."""
import json
import time

import pytest

from tests.app.conftest import LANGS, open_page, seed_dataset, seed_run_files, texts, write_project
from ui.i18n import t


def _lab_record(home, lab_id, runs):
    folder = home / "labs"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{lab_id}.json").write_text(json.dumps({
        "lab_id": lab_id, "created": "2026-01-01T00:00:00+00:00", "dataset": "demo-data", "model": "tiny-llama",
        "budget_s": 60, "methods": [m for m, _ in runs], "runs": [{"method": m, "run_id": r} for m, r in runs]}))


@pytest.mark.parametrize("lang", LANGS)
def test_explainer_shows_line_machines_maths_and_exact_lora_count(workspace, lang):
    write_project(workspace)  # base model tiny-llama: the rank slider counts on it
    at = open_page("learn", lang)
    shown = texts(at)
    assert t("learn.line.title", lang) in shown and t("learn.machines", lang) in shown
    assert len(at.get("graphviz_chart")) == 6  # the line and one machine per method
    latex = [e.value for e in at.get("latex")]
    assert any(r"\frac{\alpha}{r}" in v and "B A x" in v for v in latex)
    assert any("W_{\\text{down}}" in v for v in latex) and any("P_K" in v for v in latex)

    at.select_slider(key="learn_rank_r").set_value(16).run()
    assert not at.exception
    from core.models import tiny_model
    from core.peft import LoRAConfig, apply_peft, trainable_parameters

    model, _ = tiny_model("tiny-llama")
    trainable, _total = trainable_parameters(apply_peft(model, LoRAConfig(r=16, alpha=32, dropout=0.0)))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[t("learn.rank.trainable", lang)] == f"{trainable:,}"

    sizes = [json.loads(c.proto.spec) for c in at.get("plotly_chart")][1]["data"][0]["y"]
    assert sizes[0] == trainable // 2  # the lab's LoRA is rank 8: half the rank-16 count; the rest in test_lab
    at.button(key="learn_merge").click().run()
    assert not at.exception
    result = at.session_state["learn_merge_result"]
    assert result["max_abs_diff"] < 1e-4 < result["lora_effect"]  # merge is exact, and LoRA did change outputs
    assert any(t("learn.merge.ok", lang, diff=f"{result['max_abs_diff']:.2e}") == s.value for s in at.success)


@pytest.mark.parametrize("lang", LANGS)
def test_lab_tab_without_datasets_or_labs_says_what_to_do(workspace, lang):
    write_project(workspace)
    at = open_page("learn", lang)
    assert any(i.value == t("learn.lab.no_dataset", lang) for i in at.info)
    assert any(i.value == t("learn.lab.none_yet", lang) for i in at.info)


@pytest.mark.parametrize("lang", LANGS)
def test_lab_results_table_and_charts_come_from_the_run_folders(workspace, lang):
    write_project(workspace, active_dataset="demo-data")
    seed_dataset(workspace)
    seed_run_files(workspace, "lab-x-lora", "completed", steps=4)
    seed_run_files(workspace, "lab-x-prefix", "completed", steps=6)
    _lab_record(workspace, "lab-x", [("lora", "lab-x-lora"), ("prefix", "lab-x-prefix")])
    at = open_page("learn", lang)
    table = at.dataframe[0].value
    assert list(table[t("learn.col.run", lang)]) == ["lab-x-lora", "lab-x-prefix"]
    assert list(table[t("learn.col.tps", lang)]) == [502.5, 503.5]  # medians of the seeded metrics lines
    assert list(table[t("learn.col.val_loss", lang)]) == [2.1, 2.1]
    assert len(at.get("plotly_chart")) >= 6
    assert t("learn.lab.evaluate", lang) in [b.label for b in at.button]  # no eval yet: offered, not invented
    at.button(key="learn_export").click().run()
    assert not at.exception
    assert (workspace / "labs" / "lab-x.html").exists()
    assert at.get("download_button")


def test_starting_a_lab_trains_evaluates_and_exports(workspace, monkeypatch):
    """The Start button plans and trains (tiny model, one method, waited for) and the page fills its table."""
    import core.lab

    write_project(workspace, active_dataset="demo-data")
    seed_dataset(workspace)
    real = core.lab.launch_lab

    def quick(dataset, model, budget_s, methods, base_config=None):
        assert model == "tiny-llama" and budget_s == 60.0 and methods == ("lora", "prefix")
        cfg = {**(base_config or {}), "train": {"max_steps": 2, "batch_size": 4, "max_seq_len": 128,
                                                 "eval_every": 1}}
        return real(dataset, model, budget_s, methods=("lora",), base_config=cfg, runner="subprocess")

    monkeypatch.setattr(core.lab, "launch_lab", quick)
    at = open_page("learn")
    at.number_input[0].set_value(1)
    at.multiselect[0].set_value(["lora", "prefix"])
    next(b for b in at.button if b.label == t("learn.lab.start")).click().run(timeout=240)
    assert not at.exception
    lab_id = at.session_state["learn_lab_id"]
    run_id = f"{lab_id}-lora"
    assert json.loads((workspace / "runs" / run_id / "status.json").read_text())["state"] == "completed"
    at.number_input(key="learn_eval_limit").set_value(2)
    at.button(key="learn_evaluate").click().run(timeout=240)
    assert not at.exception
    report = json.loads((workspace / "runs" / run_id / "eval" / "report.json").read_text())
    table = at.dataframe[0].value
    assert table[t("learn.col.metric")].iloc[0] == report["tuned"]["metrics"]["text"]["token_f1"]
    assert len(at.dataframe) >= 2  # the sample answers
    at.button(key=f"learn_open_{run_id}").click().run()
    assert json.loads((workspace / "project.json").read_text())["active_run"] == run_id


@pytest.mark.parametrize("lang", LANGS)
def test_a_running_lab_shows_live_status_not_results(workspace, lang):
    import os

    write_project(workspace, active_dataset="demo-data")
    seed_dataset(workspace)
    seed_run_files(workspace, "lab-y-lora", "completed", steps=4)
    running = seed_run_files(workspace, "lab-y-full", "running", steps=3)
    status = json.loads((running / "status.json").read_text())
    (running / "status.json").write_text(json.dumps({**status, "pid": os.getpid(), "heartbeat": time.time()}))
    _lab_record(workspace, "lab-y", [("lora", "lab-y-lora"), ("full", "lab-y-full")])
    at = open_page("learn", lang)
    shown = texts(at)
    assert "lab-y-full" in shown and t("state.running", lang) in shown and "3/6" in shown
    assert t("learn.lab.stop", lang) in [b.label for b in at.button]
    assert not at.dataframe  # no comparison table while the lab trains
