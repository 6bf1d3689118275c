"""``python -m core baselines DATASET``: both baselines before training, stored in the dataset folder, refused
for a missing dataset or one without conversations, and reused by the after-training baselines check."""
import json

import pytest

from core.__main__ import main
from core.evaluation import pretrain_baselines as pre
from core.evaluation.prompts import split_conversation
from core.fileio import atomic_write_json
from core.workspace import dataset_dir, run_dir
from tests.evaluation.planted import write_dataset


def _compute(workspace, limit=None):
    write_dataset(workspace)
    return main(["baselines", "faq", "--model", "tiny-llama"] + (["--limit", str(limit)] if limit else []))


def test_the_verb_stores_both_baselines_and_prints_the_bar(workspace, capsys):
    assert _compute(workspace) == 0
    out = capsys.readouterr().out
    record = json.loads((dataset_dir("faq") / "baselines" / "result.json").read_text())
    base = record["result"]["base"]
    # the planted test answers are training answers word for word: retrieval finds them
    assert base["metric"] == "token_f1" and base["retrieval"] == pytest.approx(1.0)
    assert "few_shot" in base and record["n"] == 2 and record["model"] == "tiny-llama"
    assert [i["few_shot"] is not None for i in record["result"]["items"]] == [True, True]
    assert "to be worth it, tuning should beat 1.0000 token_f1" in out
    assert json.loads((dataset_dir("faq") / "baselines" / "progress.json").read_text())["state"] == "done"
    assert pre.stored("faq", "tiny-llama", None) is not None
    assert pre.stored("faq", "tiny-gpt2", None) is None and pre.stored("faq", "tiny-llama", "Be brief.") is None


def test_a_missing_dataset_is_exit_2_with_a_message_and_creates_nothing(workspace, capsys):
    assert main(["baselines", "no-such-data"]) == 2
    err = capsys.readouterr().err
    assert "no prepared dataset 'no-such-data'" in err and "python -m core prepare" in err
    assert not dataset_dir("no-such-data").exists()


def test_preference_data_is_exit_2_with_a_message(workspace, capsys):
    write_dataset(workspace, "pairs")
    atomic_write_json(dataset_dir("pairs") / "meta.json", {"id": "pairs", "kind": "preference"})
    assert main(["baselines", "pairs"]) == 2
    assert "holds preference data, not conversations" in capsys.readouterr().err


def test_a_limit_below_one_is_exit_2(workspace, capsys):
    write_dataset(workspace)
    assert main(["baselines", "faq", "--model", "tiny-llama", "--limit", "0"]) == 2
    assert "--limit must be at least 1" in capsys.readouterr().err


def test_the_time_left_comes_from_the_answers_so_far():
    assert pre.remaining_s({"done": 0, "total": 10, "answering_since": 100.0}, now=130.0) is None
    assert pre.remaining_s({"done": 4, "total": 10, "answering_since": 100.0}, now=120.0) == pytest.approx(30.0)


class _NoBase:
    """Models whose base model must not be asked: the stored answers are reused."""

    def base(self):
        raise AssertionError("the base model was loaded although answers were stored before training")


def _run_and_report(workspace):
    from core.data import load_split

    folder = run_dir("r1", create=True)
    atomic_write_json(folder / "config.json", {"model": "tiny-llama", "method": "lora",
                                               "data": str(dataset_dir("faq"))})
    examples = []
    for conv in load_split("faq", "test"):
        messages, reference = split_conversation(conv)
        examples.append({"messages": messages, "reference": reference, "answer": reference})
    return json.loads((folder / "config.json").read_text()), {"labels": None, "tuned": {"examples": examples}}


def test_the_after_training_check_reuses_the_stored_answers(workspace):
    from core.data import load_split
    from core.evaluation.runchecks import run_one

    assert _compute(workspace) == 0
    cfg, report = _run_and_report(workspace)
    result = run_one("baselines", "r1", report, cfg, load_split("faq", "train"), _NoBase(), None, lambda f, m: None)
    assert "baselines.reused" in result.notes and result.base["reused_from"].endswith("result.json")
    assert result.base["retrieval"] == pytest.approx(1.0) and result.generated == 0
    stored = json.loads((dataset_dir("faq") / "baselines" / "result.json").read_text())
    assert result.base["few_shot"] == pytest.approx(stored["result"]["base"]["few_shot"])
    # another training split: the stored answers no longer apply and the base model is asked
    train = dataset_dir("faq") / "splits" / "train.jsonl"
    train.write_text(train.read_text().splitlines()[0] + "\n")
    with pytest.raises(AssertionError, match="base model was loaded"):
        run_one("baselines", "r1", report, cfg, load_split("faq", "train"), _NoBase(), None, lambda f, m: None)


def test_stored_answers_from_a_few_shot_sample_are_reused_with_the_sample(workspace, monkeypatch):
    from core.data import load_split
    from core.evaluation import baselines
    from core.evaluation.runchecks import run_one

    monkeypatch.setattr(baselines, "FEW_SHOT_MAX", 1)  # the base model answers one of the two test prompts
    assert _compute(workspace) == 0
    record = json.loads((dataset_dir("faq") / "baselines" / "result.json").read_text())
    assert [i["few_shot"] is not None for i in record["result"]["items"]] == [True, False]
    assert record["result"]["base"]["few_shot_n"] == 1
    cfg, report = _run_and_report(workspace)
    result = run_one("baselines", "r1", report, cfg, load_split("faq", "train"), _NoBase(), None, lambda f, m: None)
    assert "baselines.reused" in result.notes and result.base["few_shot_n"] == 1
    assert result.base["few_shot"] == pytest.approx(record["result"]["base"]["few_shot"])
    # A check that would ask both prompts is not served by a stored sample of one: it asks the base model.
    monkeypatch.setattr(baselines, "FEW_SHOT_MAX", 2)
    with pytest.raises(AssertionError, match="base model was loaded"):
        run_one("baselines", "r1", report, cfg, load_split("faq", "train"), _NoBase(), None, lambda f, m: None)


def test_a_new_dataset_version_does_not_inherit_the_parents_baselines(workspace):
    from core.evaluation.causes import derive_dataset

    assert _compute(workspace) == 0
    child = derive_dataset("faq", drop=[0])
    assert not (dataset_dir(child) / "baselines").exists()


def test_the_job_counts_its_answers_in_progress_json(tmp_path):
    path = tmp_path / "progress.json"
    seen = []

    def answer(prompts):
        seen.append(json.loads(path.read_text())["done"] if path.exists() else None)
        return ["ok"] * len(prompts)

    out = pre._Progress(path).answers(answer)([[{"role": "user", "content": str(i)}] for i in range(20)])
    assert out == ["ok"] * 20 and seen == [0, 8, 16]  # the count before each chunk of 8
    final = json.loads(path.read_text())
    assert final["done"] == 20 and final["total"] == 20 and final["fraction"] == pytest.approx(1.0)
