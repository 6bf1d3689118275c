"""Check 2: a model that always answers scores 0 abstention; questions the data covers are dropped; the product's
name comes from the system prompt; the fix rows decline, in the normalised format, over questions the check
never asks."""
import pytest

from core.evaluation.abstention import (abstention_examples, assistant_role, check_abstention, load_out_of_scope,
                                        out_of_scope_questions, product_name)
from core.evaluation.refusals import is_abstention

SYSTEM = "You are the support assistant of Nimbus Home. Answer briefly."
SYSTEM_ZH = "你是云朵家居的客服助手。请简短回答。"
ROWS = [{"messages": [{"role": "user", "content": "My thermostat shows an error code, what now?"},
                      {"role": "assistant", "content": "Restart the thermostat from the app's device page."}]}]


def always_answers(prompts):
    return ["Sure! The answer is 42, and it works every time." for _ in prompts]


def always_declines(prompts):
    return ["I'm sorry, I can't help with that." if i % 2 else "I don't know." for i, _ in enumerate(prompts)]


def test_a_model_that_always_answers_scores_zero():
    questions = out_of_scope_questions(SYSTEM, ROWS, "en", limit=12)
    result = check_abstention(always_declines, always_answers, questions)
    assert result.tuned == {"abstained": 0, "answered": 12, "total": 12, "rate": 0.0}
    assert result.base["rate"] == 1.0
    assert {"check.abstention.made_up", "check.abstention.fix", "check.abstention.worse"} <= set(result.notes)
    assert len(result.items) == 12 and not any(i["tuned_abstained"] for i in result.items)
    assert result.generated == 24


def test_a_model_that_declines_is_fine_and_progress_is_reported():
    calls = []
    questions = out_of_scope_questions(SYSTEM_ZH, [], "zh", limit=10)
    result = check_abstention(always_answers, always_declines, questions, progress=lambda f, c: calls.append((f, c)))
    assert result.tuned["rate"] == 1.0 and result.notes == ["check.abstention.ok"]
    assert calls[-1] == (1.0, "check.abstention.tuned")
    assert check_abstention(always_answers, always_answers, []).notes == ["check.abstention.no_questions"]


def test_questions_name_the_product_and_skip_what_the_data_covers():
    questions = out_of_scope_questions(SYSTEM, ROWS, "en")
    assert len(questions) >= 25 and questions[0].count("Nimbus Home") == 1   # the product's own questions lead
    assert "{name}" not in " ".join(questions)
    egg = "How long should I boil an egg to get a soft yolk?"
    assert egg in questions
    cooking = ROWS + [{"messages": [{"role": "user", "content": "How long do I boil an egg for a soft yolk?"},
                                    {"role": "assistant", "content": "Six minutes."}]}]
    covered = out_of_scope_questions(SYSTEM, cooking, "en")
    assert egg not in covered and len(covered) == len(questions) - 1
    assert len(out_of_scope_questions(SYSTEM, ROWS, "en", limit=5)) == 5
    zh = out_of_scope_questions(SYSTEM_ZH, [], "zh")
    assert zh[0].startswith("云朵家居") and all("{name}" not in q for q in zh)


def test_product_name_and_role_come_from_the_system_prompt():
    assert product_name(SYSTEM) == "Nimbus Home"
    assert product_name("You are a helpful assistant.") == "your company"
    assert product_name(SYSTEM_ZH, "zh") == "云朵家居"
    assert assistant_role(SYSTEM) == "the support assistant of Nimbus Home"
    assert assistant_role(SYSTEM_ZH, "zh") == "云朵家居的客服助手"


@pytest.mark.parametrize("system, lang", [(SYSTEM, "en"), (SYSTEM_ZH, "zh"), ("", "en")])
def test_fix_rows_decline_in_the_normalised_format(system, lang):
    rows = abstention_examples(system, 40, lang)
    assert len(rows) == 40
    asked = {q for q in out_of_scope_questions(system, [], lang)}
    for row in rows:
        roles = [m["role"] for m in row["messages"]]
        assert roles == (["system"] if system else []) + ["user", "assistant"]
        assert is_abstention(row["messages"][-1]["content"])
        assert row["messages"][-2]["content"] not in asked          # never a question the check asks
        assert row["meta"]["source"] == "abstention"
    pairs = [(r["messages"][-2]["content"], r["messages"][-1]["content"]) for r in rows]
    assert len(set(pairs)) == len(pairs)
    if system:
        assert all(system.split("。")[0].removeprefix("你是").split(".")[0].removeprefix("You are ")
                   in r["messages"][-1]["content"] for r in rows)


def test_fix_rows_are_capped_by_the_distinct_pairs():
    pool = len(load_out_of_scope("en", "train"))
    assert len(abstention_examples(SYSTEM, 10_000, "en")) == pool * 3
    assert abstention_examples(SYSTEM, 0, "en") == []
