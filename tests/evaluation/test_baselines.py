"""Check 5: the few-shot and retrieval baselines, and the learning curve's verdict."""
from core.evaluation.baselines import (FEW_SHOT_K, check_baselines, few_shot_prompt, few_shot_examples,
                                       retrieval_answers, sample_indices)
from core.evaluation.curve import more_data_verdict, subset_indices
from tests.evaluation.planted import QA, example, report, train_rows


def test_the_retrieval_baseline_answers_an_exact_training_question_with_that_rows_answer():
    questions = [q for q, _ in QA]
    assert retrieval_answers(train_rows(), questions) == [a for _, a in QA]


def test_the_few_shot_prompt_puts_k_training_examples_before_the_question():
    shots = few_shot_examples(train_rows())
    msgs = few_shot_prompt([{"role": "system", "content": "S"}, {"role": "user", "content": "Q?"}], shots)
    assert len(shots) == FEW_SHOT_K and msgs[0]["role"] == "system" and msgs[-1]["content"] == "Q?"
    assert [m["content"] for m in msgs[1:-1:2]] == [q for q, _ in shots]
    labelled = few_shot_examples([{"messages": [{"role": "user", "content": f"t{i}"},
                                                {"role": "assistant", "content": lab}]}
                                  for i, lab in enumerate("aaabbc")], 3, labels=["a", "b", "c"])
    assert [a for _, a in labelled] == ["a", "b", "c"]  # every label shown once


def test_tuning_beats_the_baselines_only_when_above_both():
    rep = report("r", {})
    prompts_seen = []

    def copycat(prompts):  # a base model that answers the reference exactly: few-shot then wins
        prompts_seen.extend(prompts)
        return ["Refunds reach your card within five working days."] * len(prompts)

    lost = check_baselines(copycat, rep, train_rows()).to_dict()
    assert lost["tuned"]["beats_baselines"] is False and lost["base"]["few_shot"] == 1.0
    assert lost["generated"] == 1 and len(prompts_seen[0]) == 2 * FEW_SHOT_K + 1
    # A question no training row answers: retrieval returns some other row's answer, the tuned model knows it.
    rep["tuned"]["examples"] = [example(0, "What colour is the logo?", "The logo is teal.", "The logo is teal.", 1.0)]
    won = check_baselines(lambda p: ["no idea"] * len(p), rep, train_rows()).to_dict()
    assert won["tuned"]["beats_baselines"] is True and won["tuned"]["score"] == 1.0


def test_the_few_shot_sample_spreads_over_the_split_and_is_compared_on_the_same_prompts():
    assert sample_indices(385, 100)[:3] == [0, 4, 8] and sample_indices(385, 100)[-1] == 384
    assert len(sample_indices(385, 100)) == 100 and sample_indices(5, 100) == [0, 1, 2, 3, 4]
    assert sample_indices(9, None) == list(range(9)) and sample_indices(9, 1) == [0]
    rep = report("r", {})
    # Six prompts: the tuned model is right on the even ones only; a few-shot sample of 3 asks prompts 0, 2/3, 5.
    rep["tuned"]["examples"] = [example(i, q, a, a if i % 2 == 0 else "no idea", 0.0)
                                for i, (q, a) in enumerate(QA[:6])]
    asked = []

    def half_right(prompts):  # right on every prompt it is asked
        asked.extend(p[-1]["content"] for p in prompts)
        return [dict(QA)[p[-1]["content"]] for p in prompts]

    result = check_baselines(half_right, rep, train_rows(), few_shot_max=3).to_dict()
    assert asked == [QA[i][0] for i in sample_indices(6, 3)] and result["generated"] == 3
    assert result["base"]["few_shot_n"] == 3 and result["base"]["few_shot"] == 1.0
    assert [i["few_shot"] is not None for i in result["items"]] == [i in sample_indices(6, 3) for i in range(6)]
    on_sample = sum(i % 2 == 0 for i in sample_indices(6, 3)) / 3
    assert result["tuned"]["score_on_few_shot_prompts"] == on_sample
    assert result["tuned"]["beats_baselines"] is False and "baselines.few_shot_sampled" in result["notes"]


def test_the_curve_says_more_data_helps_from_the_last_segment():
    assert more_data_verdict([{"fraction": 0.25, "score": 0.2}, {"fraction": 0.5, "score": 0.4},
                              {"fraction": 1.0, "score": 0.6}]) == "more_data_helps"
    assert more_data_verdict([{"fraction": 0.25, "score": 0.2}, {"fraction": 0.5, "score": 0.6},
                              {"fraction": 1.0, "score": 0.6}]) == "plateau"
    assert more_data_verdict([{"fraction": 1.0, "score": 0.6}, {"fraction": 0.5, "score": None}]) == "unknown"
    small, large = subset_indices(100, 0.25), subset_indices(100, 0.5)
    assert len(small) == 25 and set(small) <= set(large) and len(subset_indices(100, 1.0)) == 100


def test_the_learning_curve_queues_three_runs_on_growing_subsets_then_reads_their_scores(workspace, monkeypatch):
    import json

    import core.runs
    from core.evaluation import curve
    from core.fileio import atomic_write_json
    from core.workspace import dataset_dir, run_dir
    from tests.evaluation.planted import write_dataset

    write_dataset(workspace)
    atomic_write_json(run_dir("parent", create=True) / "config.json",
                      {"model": "tiny-llama", "data": str(dataset_dir("faq")), "method": "lora",
                       "lora": {"r": 4}, "train": {"seed": 3, "max_seq_len": 128}})
    launched = []
    monkeypatch.setattr(core.runs, "launch", lambda cfg: launched.append(cfg) or f"c{len(launched)}")
    plan = curve.launch_curve("parent", 90)
    assert [p["rows"] for p in plan["points"]] == [2, 4, 9]  # 25 %, 50 %, 100 % of 9 training rows
    assert [c["data"] for c in launched] == [str(dataset_dir(p["dataset"])) for p in plan["points"]]
    assert all(c["lora"]["r"] == 4 and c["train"]["seed"] == 3 and c["train"]["max_steps"] for c in launched)
    for p in plan["points"]:
        assert json.loads((dataset_dir(p["dataset"]) / "meta.json").read_text())["parent"] == "faq"

    scores = {"c1": 0.2, "c2": 0.4, "c3": 0.7}
    monkeypatch.setattr(core.runs, "status", lambda rid: {"state": "completed"})
    evaluated = []

    def evaluate(rid, limit=None, robustness=True, performance=True):  # the last run has no report yet
        evaluated.append((rid, limit, robustness, performance))
        return {"labels": None, "tuned": {"examples": [{"answer": "x", "reference": "x"}] * 7
                                          + [{"answer": "x", "reference": "y"}] * 3}}

    for rid in ("c1", "c2"):
        n = int(scores[rid] * 10)
        atomic_write_json(run_dir(rid, create=True) / "eval" / "report.json", {"labels": None, "tuned": {"examples":
                          [{"answer": "x", "reference": "x"}] * n + [{"answer": "x", "reference": "y"}] * (10 - n)}})
    result = curve.check_curve("parent", limit=4, evaluate=evaluate).to_dict()
    assert evaluated == [("c3", 4, False, False)]
    assert [round(p["score"], 2) for p in result["items"]] == [0.2, 0.4, 0.7]
    assert result["tuned"]["verdict"] == "more_data_helps" and "curve.more_data_helps" in result["notes"]


def test_before_training_the_baselines_run_on_the_datasets_test_split(workspace):
    from core.evaluation.baselines import dataset_baselines
    from tests.evaluation.planted import write_dataset

    write_dataset(workspace)
    seen = []
    result = dataset_baselines("faq", lambda p: seen.extend(p) or ["We ship to Canada."] * len(p), "Be brief.")
    assert result.tuned == {} and result.generated == 2 and seen[0][0] == {"role": "system", "content": "Be brief."}
    assert result.base["retrieval"] > 0.9  # both test questions are paraphrases of training questions
    assert 0 < result.base["few_shot"] < result.base["retrieval"]
