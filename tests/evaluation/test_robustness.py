"""Each perturbation: deterministic for a seed, different across seeds, actually changes the prompt."""
import pytest

from core.evaluation.robustness import (INJECTION_EN, INJECTION_ZH, PERTURBATIONS, RobustnessTester, code_mix,
                                        perturb, rng_for)

EN = [{"role": "system", "content": "You are a bank assistant."},
      {"role": "user", "content": "How can I pay with my new card today, please?"}]
ZH = [{"role": "user", "content": "我的卡什么时候到？请帮助我查一下订单。"}]


@pytest.mark.parametrize("name", list(PERTURBATIONS))
@pytest.mark.parametrize("messages", [EN, ZH], ids=["en", "zh"])
def test_perturbation_is_deterministic_and_changes_text(name, messages):
    a = perturb(messages, name, seed=7, index=3)
    b = perturb(messages, name, seed=7, index=3)
    assert a == b
    if name == "case" and messages is ZH:  # Chinese has no letter case: the perturbation is a no-op there
        assert a == messages
        return
    assert a[-1]["content"] != messages[-1]["content"]
    assert a[:-1] == messages[:-1]  # only the last user message changes
    assert messages[-1]["content"] in (EN[-1]["content"], ZH[-1]["content"])  # input untouched


@pytest.mark.parametrize("name", ["typos", "case", "punctuation_whitespace", "zh_en_mixing"])
def test_seeds_give_different_perturbations(name):
    outs = {perturb(EN, name, seed=s, index=0)[-1]["content"] for s in range(8)}
    assert len(outs) > 1


def test_rng_is_process_independent():
    # string seeding is hash-randomisation free: fixed expected first draw
    assert rng_for(1, "typos", 0).random() == rng_for(1, "typos", 0).random()
    assert rng_for(1, "typos", 0).random() != rng_for(2, "typos", 0).random()


def test_injection_and_mixing_content():
    assert INJECTION_EN in perturb(EN, "prompt_injection", 0, 0)[-1]["content"]
    assert INJECTION_ZH in perturb(ZH, "prompt_injection", 0, 0)[-1]["content"]
    import random
    mixed = code_mix("Where is my card", random.Random(0))
    assert any(ch in mixed for ch in "卡我哪里")
    mixed_zh = code_mix("我的卡丢了", random.Random(0))
    assert any(w in mixed_zh for w in ("my", "card", "I"))


def test_tester_reports_drop_and_unchanged_share():
    msgs = [[{"role": "user", "content": f"question number {i}"}] for i in range(4)]
    refs = ["x"] * 4
    clean = ["x"] * 4

    def answer_fn(prompts):  # a fake model that breaks when the prompt is upper-cased
        return ["x" if p[-1]["content"].lower() == p[-1]["content"] else "y" for p in prompts]

    def score_fn(answers, references):
        return sum(a == r for a, r in zip(answers, references)) / len(answers)

    out = RobustnessTester(seed=3, perturbations=["case", "irrelevant_prefix"]).run(
        msgs, refs, clean, answer_fn, score_fn, "accuracy")
    case = out["perturbations"]["case"]
    assert case["drop"] == pytest.approx(1 - case["score"])
    assert case["unchanged_share"] == case["score"]
    assert out["perturbations"]["irrelevant_prefix"]["drop"] == 1.0  # the prefix starts upper-case
    assert out["perturbations"]["irrelevant_prefix"]["changed_prompts"] == 4
    again = RobustnessTester(seed=3, perturbations=["case"]).run(msgs, refs, clean, answer_fn, score_fn)
    assert again["perturbations"]["case"]["score"] == case["score"]


def test_case_on_chinese_reports_no_changed_prompt():
    msgs = [[{"role": "user", "content": "我的卡丢了"}]]
    out = RobustnessTester(seed=0, perturbations=["case"]).run(msgs, ["x"], ["x"], lambda ps: ["x"] * len(ps),
                                                                lambda a, r: 1.0)
    assert out["perturbations"]["case"]["changed_prompts"] == 0  # no letter case in Chinese: not applicable


def test_all_perturbations_are_answered_in_one_batch_and_unchanged_prompts_are_not_regenerated():
    msgs = [[{"role": "user", "content": f"where is order {i}?"}] for i in range(3)] + \
        [[{"role": "user", "content": "退款"}]]  # case change cannot change Chinese text
    calls = []

    def answer_fn(prompts):
        calls.append(len(prompts))
        return ["a"] * len(prompts)

    out = RobustnessTester(seed=1, perturbations=["case", "typos"]).run(
        msgs, ["a"] * 4, ["a"] * 4, answer_fn, lambda a, r: sum(x == y for x, y in zip(a, r)) / len(a))
    changed = sum(e["changed_prompts"] for e in out["perturbations"].values())
    assert len(calls) == 1 and calls[0] == changed == out["answers"] < 8
    assert out["seconds"] >= 0
