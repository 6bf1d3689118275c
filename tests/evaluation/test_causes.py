"""Check 4: from a bad answer to its causes (MinHash), a new dataset version, a retrain config, a comparison."""
import json

import pytest

from core.errors import UserError
import core.evaluation.causes as causes
from core.evaluation.causes import (METHOD, check_causes, compare_runs, derive_dataset, nearest_for_run, nearest_rows,
                                    retrain_config, revise_and_retrain, run_dataset)
from core.fileio import atomic_write_json
from core.workspace import dataset_dir, run_dir
from core.evaluation.refusals import is_abstention
from tests.evaluation.planted import CAUSE_INDEX, example, report, train_rows, write_dataset


def test_the_nearest_rows_of_a_planted_bad_answer_include_the_planted_cause():
    near = nearest_rows("How long until I get a refund?", "Refunds are never possible, all sales are final.",
                        train_rows(), k=3)
    assert near[0]["index"] == CAUSE_INDEX and near[0]["method"] == METHOD == "MinHash"
    assert near[0]["similarity"] > near[1]["similarity"] >= 0
    assert "never possible" in near[0]["answer"]


def test_the_causes_check_lists_failing_answers_only_with_their_nearest_rows():
    rep = report("r", {})
    rep["tuned"]["examples"].append(example(1, "Do you deliver to Canada?", "We ship to Canada and the United "
                                            "States.", "We ship to Canada and the United States.", 1.0))
    result = check_causes(rep, train_rows()).to_dict()
    assert result["name"] == "causes" and result["tuned"]["failing"] == 1 and result["tuned"]["method"] == "MinHash"
    assert [i["test_index"] for i in result["items"]] == [0]
    assert CAUSE_INDEX in [r["index"] for r in result["items"][0]["nearest"]]


def test_dropping_rows_makes_a_new_version_that_names_its_parent(workspace):
    write_dataset(workspace)
    child = derive_dataset("faq", drop=[CAUSE_INDEX], reason="drop")
    rows = [json.loads(x) for x in (dataset_dir(child) / "splits" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == len(train_rows()) - 1 and train_rows()[CAUSE_INDEX] not in rows
    meta = json.loads((dataset_dir(child) / "meta.json").read_text())
    assert meta["parent"] == "faq" and meta["changes"]["dropped"] == [CAUSE_INDEX] and meta["counts"]["train"] == 8
    assert (dataset_dir(child) / "splits" / "test.jsonl").read_text() == \
        (dataset_dir("faq") / "splits" / "test.jsonl").read_text()
    edited = derive_dataset("faq", edits={CAUSE_INDEX: {"messages": [{"role": "user", "content": "q"},
                                                                      {"role": "assistant", "content": "fixed"}]}})
    assert "fixed" in (dataset_dir(edited) / "splits" / "train.jsonl").read_text()
    with pytest.raises(UserError, match="do not exist"):
        derive_dataset("faq", drop=[99])


def test_a_retrain_keeps_the_parent_runs_settings_and_changes_only_the_data(workspace):
    write_dataset(workspace)
    cfg = {"model": "tiny-llama", "data": str(dataset_dir("faq")), "method": "lora", "lora": {"r": 4},
           "train": {"max_steps": 3, "seed": 7}}
    atomic_write_json(run_dir("parent", create=True) / "config.json", cfg)
    assert run_dataset("parent") == "faq"
    child = derive_dataset("faq", drop=[CAUSE_INDEX])
    new = retrain_config("parent", child)
    assert new["data"] == str(dataset_dir(child))
    assert {k: v for k, v in new.items() if k not in ("data", "name")} == {k: v for k, v in cfg.items() if k != "data"}


def test_compare_runs_lists_the_test_answers_that_changed():
    a, b = report("a", {}), report("b", {})
    b["tuned"]["examples"] = [example(0, "How long until I get a refund?", "Refunds reach your card within five "
                                      "working days.", "Refunds reach your card within five working days.", 1.0)]
    changed = compare_runs(a, b)
    assert len(changed) == 1 and changed[0]["passed_a"] is False and changed[0]["passed_b"] is True
    assert compare_runs(a, a) == []


def test_revise_and_retrain_drops_and_edits_rows_then_retrains_the_run_and_chat_answers_find_causes(workspace,
                                                                                                  monkeypatch):
    write_dataset(workspace)
    atomic_write_json(run_dir("parent", create=True) / "config.json",
                      {"model": "tiny-llama", "data": str(dataset_dir("faq")), "method": "lora"})
    near = nearest_for_run("parent", "Can I get a refund?", "Refunds are never possible.")
    assert near[0]["index"] == CAUSE_INDEX  # a chat answer marked bad finds the same cause
    launched = []
    monkeypatch.setattr(causes, "retrain", lambda run_id, ds: launched.append((run_id, ds)) or "child-run")
    dataset, run = revise_and_retrain("parent", drop=[0], edits={CAUSE_INDEX: ("Refund?", "Refunds take five days.")})
    rows = [json.loads(x) for x in (dataset_dir(dataset) / "splits" / "train.jsonl").read_text().splitlines()]
    assert run == "child-run" and launched == [("parent", dataset)] and len(rows) == len(train_rows()) - 1
    assert rows[CAUSE_INDEX - 1]["messages"] == [{"role": "user", "content": "Refund?"},
                                                 {"role": "assistant", "content": "Refunds take five days."}]
    with pytest.raises(UserError, match="do not exist"):
        revise_and_retrain("parent", edits={42: ("q", "a")})


def test_the_abstention_fix_adds_refusal_rows_from_the_system_prompt_and_retrains(workspace, monkeypatch):
    write_dataset(workspace)
    atomic_write_json(run_dir("parent", create=True) / "config.json",
                      {"model": "tiny-llama", "data": str(dataset_dir("faq")), "method": "lora",
                       "system_prompt": "You are the support assistant of Acme Bank."})
    launched = []
    monkeypatch.setattr(causes, "retrain", lambda run_id, ds: launched.append((run_id, ds)) or "child-run")
    dataset, run = causes.add_abstentions_and_retrain("parent", n=6)
    rows = [json.loads(x) for x in (dataset_dir(dataset) / "splits" / "train.jsonl").read_text().splitlines()]
    assert run == "child-run" and launched == [("parent", dataset)] and len(rows) == len(train_rows()) + 6
    added = rows[-6:]
    assert all(r["messages"][0] == {"role": "system", "content": "You are the support assistant of Acme Bank."}
               for r in added)
    assert all(is_abstention(r["messages"][-1]["content"]) for r in added)  # each teaches a refusal
    meta = json.loads((dataset_dir(dataset) / "meta.json").read_text())
    assert meta["parent"] == "faq" and meta["changes"]["added"] == 6
