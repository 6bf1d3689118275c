"""Check 1: a model made to forget is flagged, with the probes that flipped; a broken refusal is a safety note;
the limit covers every category; a tiny random model answers through our decoder."""
from core.evaluation.forgetting import check_forgetting
from core.evaluation.probes import CATEGORIES, load_probes

BY_PROMPT = {p.prompt: p for p in load_probes("all")}


def knows_everything(prompts):
    """A fake model that answers every probe correctly (the probe's own example answer)."""
    return [BY_PROMPT[p[-1]["content"]].example for p in prompts]


def forgot_facts(prompts):
    """A fake tuned model that lost its general knowledge but still refuses and answers as before."""
    out = []
    for p in prompts:
        probe = BY_PROMPT[p[-1]["content"]]
        out.append(probe.example if probe.category in ("must_refuse", "must_not_refuse") else "Your card is on its way.")
    return out


def complies_with_everything(prompts):
    """A fake tuned model that keeps its knowledge but no longer refuses harmful requests."""
    return [("Sure, here it is: step one…" if BY_PROMPT[p[-1]["content"]].category == "must_refuse"
             else BY_PROMPT[p[-1]["content"]].example) for p in prompts]


def test_a_model_made_to_forget_is_flagged():
    result = check_forgetting(knows_everything, forgot_facts, lang="en")
    n = len(load_probes("en"))
    assert result.base["passed"] == result.base["total"] == n
    lost = sum(1 for p in load_probes("en") if p.category in ("fact", "arithmetic", "instruction"))
    assert result.tuned["passed"] == n - lost and result.tuned["broke"] == lost and result.tuned["fixed"] == 0
    assert "check.forgetting.forgot" in result.notes and "check.forgetting.safety" not in result.notes
    assert {i["category"] for i in result.items} == {"fact", "arithmetic", "instruction"}
    assert all(i["flip"] == "broke" and i["base_passed"] and not i["tuned_passed"] for i in result.items)
    assert result.tuned["categories"]["fact"]["passed"] == 0
    assert result.tuned["categories"]["must_refuse"] == result.base["categories"]["must_refuse"]
    assert result.generated == 2 * n and result.to_dict()["name"] == "forgetting"


def test_a_lost_refusal_is_a_safety_regression_and_the_reverse_is_fixed():
    result = check_forgetting(knows_everything, complies_with_everything, lang="zh")
    assert "check.forgetting.safety" in result.notes
    assert {i["category"] for i in result.items} == {"must_refuse"}
    back = check_forgetting(complies_with_everything, knows_everything, lang="zh")
    assert {i["flip"] for i in back.items} == {"fixed"} and back.tuned["fixed"] == len(back.items) > 0
    assert back.notes == ["check.forgetting.none_broke"]


def test_same_model_flips_nothing():
    result = check_forgetting(knows_everything, knows_everything, lang="all")
    assert result.items == [] and result.base == {k: v for k, v in result.tuned.items() if k in result.base}
    assert result.base["total"] >= 60


def test_limit_covers_every_category_and_progress_runs_to_the_end():
    calls = []
    result = check_forgetting(knows_everything, forgot_facts, lang="en", limit=7,
                              progress=lambda f, code: calls.append((f, code)))
    assert result.base["total"] == 7 and set(result.base["categories"]) == set(CATEGORIES)
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {c for _, c in calls} == {"check.forgetting.base", "check.forgetting.tuned"}


def test_a_tiny_random_model_through_our_decoder_is_flagged():
    from core.chat_template import prompt_ids
    from core.decoding import Decoder, SamplingParams
    from core.models import tiny_model

    model, tok = tiny_model("tiny-llama")
    calls = []

    def tiny_answers(prompts):
        calls.append(len(prompts))
        ids = [prompt_ids(tok, p) for p in prompts]
        return [a.text for a in Decoder(model, tok).generate(ids, SamplingParams(max_new_tokens=6), 8)]

    result = check_forgetting(knows_everything, tiny_answers, lang="en", limit=10)
    assert sum(calls) == 10
    assert result.tuned["passed"] < result.base["passed"] == 10
    assert "check.forgetting.forgot" in result.notes
    assert all(isinstance(i["tuned_answer"], str) for i in result.items) and result.generated == 20


def test_a_limit_below_one_is_refused():
    import pytest

    from core.errors import UserError

    with pytest.raises(UserError, match="at least 1"):
        check_forgetting(knows_everything, knows_everything, limit=0)


def test_an_answerer_that_drops_answers_is_an_error_not_a_silent_pass():
    import pytest

    with pytest.raises(ValueError, match="answers for"):
        check_forgetting(knows_everything, lambda prompts: ["x"], lang="en")
    with pytest.raises(TypeError, match="strings"):
        check_forgetting(knows_everything, lambda prompts: [None] * len(prompts), lang="en")


def test_as_many_broken_as_fixed_is_still_reported():
    en = load_probes("en")
    sums = {p.prompt for p in en if p.category == "arithmetic"}
    facts = {p.prompt for p in en if p.category == "fact"}
    facts = set(sorted(facts)[:len(sums)])                              # as many broken as fixed

    def fails(wrong):
        return lambda prompts: [("No idea, sorry." if p[-1]["content"] in wrong else BY_PROMPT[p[-1]["content"]].example)
                                for p in prompts]

    result = check_forgetting(fails(sums), fails(facts), lang="en")   # base fails sums, tuned fails facts
    assert result.tuned["broke"] == len(facts) and result.tuned["fixed"] == len(sums)
    assert result.notes == ["check.forgetting.some_broke"]
