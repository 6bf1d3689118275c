"""The method lab: five methods on one tiny dataset; every table row is read back from its own run folder."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from core.errors import UserError
from core.explain import merge_demo, method_sizes
from core.lab import (METHODS, evaluate_lab, export_html, lab_results, lab_status, lab_table, launch_lab, list_labs,
                      load_lab, method_params, plan_lab)
from core.fileio import read_json, read_jsonl
from core.workspace import run_dir

LABELS = ("refund", "delivery", "password")
TEXTS = {"refund": "I want my money back for order {}", "delivery": "Where is my parcel number {}",
         "password": "I forgot the password of account {}"}
QUICK = {"train": {"max_steps": 2, "batch_size": 4, "max_seq_len": 64, "eval_every": 1, "seed": 3},
         "system_prompt": "Answer with the intent."}


def make_dataset(home: Path, dataset_id: str = "intents") -> Path:
    """A tiny classification dataset in the prepared layout (train 18, val 6, test 6)."""
    convs = [{"messages": [{"role": "user", "content": TEXTS[lab].format(i)}, {"role": "assistant", "content": lab}],
              "meta": {"label": lab}} for i in range(10) for lab in LABELS]
    folder = home / "datasets" / dataset_id
    (folder / "splits").mkdir(parents=True)
    for split, part in (("train", convs[:18]), ("val", convs[18:24]), ("test", convs[24:])):
        (folder / "splits" / f"{split}.jsonl").write_text("".join(json.dumps(c) + "\n" for c in part))
    (folder / "meta.json").write_text(json.dumps({"format": "classification"}))
    return folder


def exact_trainable(method: str, params: dict) -> tuple[int, int]:
    """The trainable/total count of the method applied to a real tiny-llama (independent of the lab's code)."""
    from core.models import tiny_model
    from core.peft import apply_peft, config_from_dict, trainable_parameters

    model, _ = tiny_model("tiny-llama")
    return trainable_parameters(apply_peft(model, config_from_dict(method, params)))


def test_plan_gives_one_config_per_method_and_more_steps_for_more_budget(workspace):
    make_dataset(workspace)
    small = plan_lab("intents", "tiny-llama", 10)
    large = plan_lab("intents", "tiny-llama", 2000, base_config={"train": {"epochs": 100}})
    assert [c["method"] for c in small] == list(METHODS)
    for s, big in zip(small, large):
        assert s["method"] in s and s["train"]["lr"] is None  # its section; lr null: SmartOptimizer's rate
        assert big["train"]["max_steps"] >= s["train"]["max_steps"] >= 2
        step_s = big["_plan"].get("step_s")
        if step_s:  # the estimator timed it: the planned steps fit the method's share of the budget
            assert big["train"]["max_steps"] * step_s <= big["_plan"]["budget_s"]
    assert any(b["train"]["max_steps"] > s["train"]["max_steps"] for s, b in zip(small, large))
    from core.strategy import ADAPTER, LORA_QV, PREFIX

    assert (small[0]["lora"], small[1]["adapter"], small[2]["prefix"]) == (LORA_QV, ADAPTER, PREFIX)
    assert small[4]["freeze"] == {"trainable_layers": 2}
    fixed = plan_lab("intents", "tiny-llama", 10, methods=("lora",), base_config={"train": {"max_steps": 7}})
    assert fixed[0]["train"]["max_steps"] == 7
    by_epochs = plan_lab("intents", "tiny-llama", None, methods=("adapter",), base_config={"train": {"epochs": 2}})
    assert by_epochs[0]["train"]["max_steps"] is None and by_epochs[0]["train"]["epochs"] == 2


@pytest.mark.parametrize("kwargs, words", [
    ({"methods": ("lora", "dora")}, "unknown method 'dora'"),
    ({"methods": ()}, "no methods"),
    ({"budget_s": 0}, "positive number"),
    ({"dataset": "nope"}, "no prepared dataset 'nope'"),
])
def test_plan_rejects_bad_input_with_a_fix(workspace, kwargs, words):
    make_dataset(workspace)
    args = {"dataset": "intents", "model": "tiny-llama", "budget_s": 60, **kwargs}
    with pytest.raises(UserError, match=words):
        plan_lab(**args)


def test_five_methods_each_row_comes_from_its_run_folder(workspace):
    make_dataset(workspace)
    lab_id = launch_lab("intents", "tiny-llama", 60, base_config=QUICK, runner="inprocess")
    assert [lab["lab_id"] for lab in list_labs()] == [lab_id]
    status = lab_status(lab_id)
    assert status["state"] == "completed" and status["done"] == 5
    assert evaluate_lab(lab_id, limit=2) and evaluate_lab(lab_id, limit=2) == []  # second call: nothing missing

    rows = lab_results(lab_id)
    assert [r["method"] for r in rows] == list(METHODS)
    for row, entry in zip(rows, load_lab(lab_id)["runs"]):
        folder = run_dir(entry["run_id"])
        cfg = read_json(folder / "config.json")
        metrics = list(read_jsonl(folder / "metrics.jsonl"))
        report = read_json(folder / "eval" / "report.json")
        assert row["run_id"] == entry["run_id"] and cfg["method"] == row["method"]
        assert (row["trainable"], row["total"]) == exact_trainable(cfg["method"], cfg[cfg["method"]])
        assert row["trainable_pct"] == pytest.approx(100 * row["trainable"] / row["total"])
        assert row["peak_mb"] == max(m["peak_mem_mb"] for m in metrics if "peak_mem_mb" in m)
        assert row["final_val_loss"] == [m["eval_loss"] for m in metrics if "eval_loss" in m][-1]
        assert row["val_curve"] == [[m["step"], m["eval_loss"]] for m in metrics if "eval_loss" in m]
        assert row["metric_name"] == "accuracy"
        assert row["metric"] == report["tuned"]["metrics"]["classification"]["accuracy"]
        assert len(row["samples"]) == 2 and row["samples"][0]["answer"] == report["tuned"]["examples"][0]["answer"]
        assert row["wall_s"] > 0 and row["tokens_per_s"] > 0 and row["steps"] == 2
    by_method = {r["method"]: r for r in rows}
    assert by_method["full"]["trainable"] == by_method["full"]["total"]  # full trains everything
    assert by_method["lora"]["trainable"] < by_method["freeze"]["trainable"] < by_method["full"]["trainable"]

    # Editing or deleting one run's files changes that row only.
    lora = run_dir(by_method["lora"]["run_id"])
    (lora / "metrics.jsonl").unlink()
    report = read_json(lora / "eval" / "report.json")
    report["tuned"]["metrics"]["classification"]["accuracy"] = 0.123
    (lora / "eval" / "report.json").write_text(json.dumps(report))
    after = {r["method"]: r for r in lab_results(lab_id)}
    assert after["lora"]["peak_mb"] is None and after["lora"]["final_val_loss"] is None
    assert after["lora"]["tokens_per_s"] is None and after["lora"]["metric"] == 0.123
    assert all(after[m] == by_method[m] for m in METHODS if m != "lora")

    table = lab_table(lab_id)
    assert list(table["method"]) == list(METHODS) and table.attrs["metric_name"] == "accuracy"
    assert table.loc[table["method"] == "adapter", "peak_mb"].item() == by_method["adapter"]["peak_mb"]
    html = export_html(lab_id).read_text(encoding="utf-8")
    assert "<table>" in html and by_method["prefix"]["run_id"] in html and "Validation loss" in html
    assert "<script src" not in html  # self-contained


def test_a_queued_lab_runs_through_the_run_queue(workspace):
    make_dataset(workspace)
    lab_id = launch_lab("intents", "tiny-llama", 60, methods=("lora", "prefix"), base_config=QUICK)
    deadline = time.time() + 240
    while lab_status(lab_id)["state"] == "running" and time.time() < deadline:
        time.sleep(1)
    status = lab_status(lab_id)
    assert status["state"] == "completed", status
    rows = lab_results(lab_id)
    assert [r["method"] for r in rows] == ["lora", "prefix"]
    for r in rows:  # a queued run's trainer writes train.log; the parameter count comes from that line
        assert f"{r['trainable']:,} trainable of {r['total']:,}" in (run_dir(r["run_id"]) / "train.log").read_text()
        assert r["metric"] is None and not r["evaluated"]  # not evaluated yet: blank, not invented


def test_bench_banking77_data_is_20_train_and_10_test_per_intent(workspace, shared_data):
    from bench.methods import banking77_splits, write_dataset
    from core.data import load_split

    splits = banking77_splits(quick=False)
    labels = {r["category"] for r in splits["train"]}
    assert len(labels) == 77 and len(splits["train"]) == 77 * 20 and len(splits["test"]) == 77 * 10
    assert len(splits["val"]) == 77 * 2
    assert not {r["text"] for r in splits["train"]} & {r["text"] for r in splits["val"]}  # disjoint rows
    test_csv = (shared_data / "banking77" / "test.csv").read_text(encoding="utf-8")
    assert all(r["text"].split()[0] in test_csv for r in splits["test"][:20])  # drawn from test.csv
    dataset_id = write_dataset("banking77", quick=False)
    test = load_split(dataset_id, "test")
    assert len(test) == 770 and test[0]["messages"][-1]["content"] == test[0]["meta"]["label"]
    assert [c["messages"][0]["content"] for c in load_split(dataset_id, "train")] == \
        [r["text"] for r in splits["train"]]


def test_method_sizes_and_merge_demo_are_exact(workspace):
    sizes = method_sizes("tiny-llama")
    assert [s["method"] for s in sizes] == list(METHODS)
    for s in sizes:
        assert (s["trainable"], s["total"]) == exact_trainable(s["method"], method_params(s["method"]))
    demo = merge_demo()
    assert demo["max_abs_diff"] < 1e-4 and demo["lora_effect"] > 1e-2
    assert demo["params_after_merge"] == exact_trainable("full", {})[1]  # wrappers gone: the base model's size


def test_bench_main_prints_the_table_with_overrides(workspace, shared_data, capsys):
    from bench.methods import main

    table = main(quick=True, dataset="banking77", model="tiny-llama", methods=("lora",), steps=1, eval_limit=1,
                 runner="inprocess", overrides={"lora.r": 2, "train.lr": 5e-4})
    run_id = table["run_id"].iloc[0]
    cfg = read_json(run_dir(run_id) / "config.json")
    assert cfg["lora"]["r"] == 2 and cfg["train"]["lr"] == 5e-4 and cfg["train"]["max_steps"] == 1
    assert table["trainable"].iloc[0] == exact_trainable("lora", cfg["lora"])[0]
    out = capsys.readouterr().out
    assert "accuracy" in out and f"{table['trainable'].iloc[0]:,}" in out


def test_stopping_a_run_waiting_in_a_lab_signals_nothing_and_it_never_trains(workspace):
    import subprocess
    import sys

    from core import lab as lab_mod
    from core.fileio import atomic_write_json

    make_dataset(workspace)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # stands in for the lab process
    try:
        configs = plan_lab("intents", "tiny-llama", 60, ("lora", "prefix"), QUICK)
        lab = {"lab_id": "lab-x", "runs": [{"method": c["method"], "run_id": f"lab-x-{c['method']}", "plan": {}}
                                           for c in configs], "runner": "subprocess"}
        atomic_write_json(lab_mod.lab_path("lab-x"), lab)
        lab_mod._mark_waiting(lab, holder.pid)
        assert [r["state"] for r in lab_status("lab-x")["runs"]] == ["queued", "queued"]
        status = lab_mod.stop_lab("lab-x")
        assert [r["state"] for r in status["runs"]] == ["stopped", "stopped"]
        assert holder.poll() is None  # the process holding them was not signalled
        assert lab_mod._run_subprocess(configs[0], "lab-x-lora") == 0  # the lab skips a stopped run
        assert not (run_dir("lab-x-lora") / "metrics.jsonl").exists()
        assert lab_status("lab-x")["runs"][0]["state"] == "stopped"
    finally:
        holder.kill()
        holder.wait()


def test_a_lab_never_reuses_an_existing_run_folder(workspace):
    from core import lab as lab_mod

    run_dir("lab-y-lora", create=True)
    with pytest.raises(UserError, match="already"):
        lab_mod._mark_waiting({"runs": [{"run_id": "lab-y-lora"}]}, 1)


@pytest.mark.slow
def test_a_subprocess_lab_trains_each_run_through_the_job_runner(workspace):
    make_dataset(workspace)
    lab_id = launch_lab("intents", "tiny-llama", 60, methods=("lora",), base_config=QUICK, runner="subprocess")
    status = lab_status(lab_id)
    assert status["state"] == "completed", status
    folder = run_dir(status["runs"][0]["run_id"])
    assert read_json(folder / "config.json")["method"] == "lora" and "trainable of" in (folder / "train.log").read_text()


def test_a_damaged_run_leaves_the_other_rows_readable(workspace):
    from core.fileio import atomic_write_json

    atomic_write_json(run_dir("ok-run", create=True) / "status.json", {"state": "completed", "step": 2})
    atomic_write_json(run_dir("ok-run") / "config.json", {"method": "lora"})
    bad = run_dir("bad-run", create=True)
    (bad / "status.json").write_text('{"state": "comp')
    atomic_write_json(bad / "config.json", {"method": "full"})
    atomic_write_json(workspace / "labs" / "lab-z.json", {"lab_id": "lab-z", "runs": [
        {"method": "lora", "run_id": "ok-run"}, {"method": "full", "run_id": "bad-run"}]})
    rows = lab_results("lab-z")
    assert [r["state"] for r in rows] == ["completed", "damaged"] and rows[0]["steps"] == 2
