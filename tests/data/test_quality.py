"""Each quality check finds a planted defect (naming the right rows) and finds nothing in clean data."""
from __future__ import annotations

import random

import pytest

from core.data import DataQualityAnalyzer
from core.data.findings import CODES, render_finding
from core.data.minhash import near_duplicate_groups, signatures
from core.data.pii import find_pii
from core.models import tiny_tokenizer

from .helpers import cls_rows, convs_of, qa_rows, sentence


def analyze(convs, fmt="qa", **kw):
    return DataQualityAnalyzer(tokenizer=kw.pop("tokenizer", None), **kw).analyze(convs, {"format": fmt})


def cls_convs(rows):
    return [{"messages": [{"role": "user", "content": r["text"]}, {"role": "assistant", "content": r["label"]}],
             "meta": {"row": i + 1, "label": r["label"]}} for i, r in enumerate(rows)]


def deductions(report, check):
    return [d for d in report["deductions"] if d["check"] == check]


def only(report, check):
    """The single deduction of a check, asserting that nothing else was deducted."""
    assert {d["check"] for d in report["deductions"]} == {check}, report["deductions"]
    (found,) = deductions(report, check) if len(deductions(report, check)) == 1 else (deductions(report, check)[0],)
    assert found["points"] > 0 and found["fix"] and found["cause"]
    return found


def test_clean_qa_file_scores_100():
    report = analyze(convs_of(qa_rows()))
    assert report["score"] == 100 and report["deductions"] == []
    assert report["checks"]["duplicates"]["exact"] == 0 and report["checks"]["duplicates"]["near"] == 0
    assert report["checks"]["pii"]["rows"] == 0 and report["checks"]["script"]["main"] == "latin"


def test_clean_classification_file_scores_100():
    report = analyze(cls_convs(cls_rows()), "classification")
    assert report["score"] == 100 and report["num_labels"] == 4
    assert report["checks"]["labels"]["imbalance_ratio"] == 1.0


def test_clean_file_with_real_tokenizer_shape():
    report = analyze(convs_of(qa_rows()), tokenizer=tiny_tokenizer())
    lengths = report["checks"]["lengths"]
    assert report["score"] == 100
    # byte-level tokenizer: one token per byte plus the ChatML overhead
    assert lengths["min"] > 60 and lengths["max"] < 250 and lengths["p50"] <= lengths["p95"] <= lengths["max"]


def test_size_few_rows():
    assert only(analyze(convs_of(qa_rows(10))), "size")["cause"] == "only 10 examples"


def test_empty_answer_and_trailing_user_turn():
    convs = convs_of(qa_rows())
    convs[4]["messages"][1]["content"] = "  "
    convs[9]["messages"].append({"role": "user", "content": "and then?"})
    report = analyze(convs)
    empty = deductions(report, "empty")
    assert [d["rows"] for d in empty] == [[5], [10]]
    assert report["checks"]["empty"] == {"empty_fields": 1, "no_answer": 1, "ends_with_user": 1}


def test_exact_duplicate_ignores_case_and_spacing():
    rows = qa_rows()
    rows[50] = {"question": rows[3]["question"].upper(), "answer": "  " + rows[3]["answer"]}
    report = analyze(convs_of(rows))
    assert deductions(report, "duplicates")[0]["rows"] == [51]
    assert report["checks"]["duplicates"]["exact"] == 1


def test_near_duplicate_paraphrase():
    rows = qa_rows()
    words = rows[7]["answer"].split()
    rows[60] = {"question": rows[7]["question"], "answer": " ".join(words[:-1] + ["kalons."])}
    report = analyze(convs_of(rows))
    d = deductions(report, "near_duplicates")[0]
    assert d["rows"] == [61] and report["checks"]["duplicates"]["near_examples"] == [[8, 61]]
    assert not deductions(report, "duplicates")


def test_conflicting_answers():
    rows = cls_rows()
    rows[30] = {"text": rows[2]["text"], "label": "label_3"}  # same text as row 3, which has label_2
    report = analyze(cls_convs(rows), "classification")
    d = deductions(report, "conflicts")[0]
    assert d["rows"] == [3, 31] and "different labels" in d["cause"]


def test_too_long_rows_with_tokenizer():
    rows = qa_rows()
    rows[11]["answer"] = ("word " * 300).strip()
    report = analyze(convs_of(rows), tokenizer=tiny_tokenizer(), max_seq_len=512)
    d = only(report, "lengths")
    assert d["rows"] == [12] and report["checks"]["lengths"]["over_max"] == 1


def test_script_minority():
    rows = qa_rows()
    for i in (5, 6, 7):
        rows[i] = {"question": f"今天天气怎么样{i}？", "answer": "今天是晴天，适合出去散步。"}
    report = analyze(convs_of(rows))
    d = only(report, "script")
    assert d["rows"] == [6, 7, 8] and d["code"] == "script_minority" and d["params"] == {"rows": 3, "script": "latin"}
    assert report["checks"]["script"]["shares"]["han"] == round(3 / 120, 4)


def test_script_check_measures_writing_systems_not_languages():
    rows = qa_rows()
    french = [("Quel temps fait-il aujourd'hui ?", "Il fait beau, allons nous promener."),
              ("Où se trouve la gare ?", "Au bout de la rue, à gauche."),
              ("Combien coûte le billet ?", "Douze euros pour un adulte.")]
    for i, (q, a) in zip((5, 6, 7), french):  # French is written in the Latin script like English
        rows[i] = {"question": q, "answer": a}
    report = analyze(convs_of(rows))
    assert report["deductions"] == [] and report["checks"]["script"]["counts"] == {"latin": 120}


@pytest.mark.parametrize("text,kind", [
    ("mail me at john.doe@example.com please", "email"),
    ("call +44 20 7946 0958 tomorrow", "phone"),
    ("my number is 13800138000", "phone"),
    ("ring (555) 123-4567", "phone"),
    ("card 4111 1111 1111 1111 expires soon", "card"),
    ("身份证 11010519491231002X 号", "national_id"),
    ("ssn 123-45-6789 on file", "national_id"),
])
def test_pii_kinds(text, kind):
    assert find_pii(text) == {kind: 1}
    rows = qa_rows()
    rows[20]["answer"] = rows[20]["answer"] + " " + text
    d = only(analyze(convs_of(rows)), "pii")
    assert d["rows"] == [21] and d["params"]["by_kind"] == {kind: 1}


@pytest.mark.parametrize("text", ["order 113542617735902 shipped", "card 4111 1111 1111 1112", "id 110105194912310021",
                                  "version 1.2.3", "call 12345"])
def test_pii_false_positives_rejected(text):
    assert find_pii(text) == {}


def test_rare_label():
    rows = cls_rows(120, labels=3)
    rows += [{"text": sentence(random.Random(99 + i)), "label": "rare_one"} for i in range(2)]
    report = analyze(cls_convs(rows), "classification")
    assert {d["check"] for d in report["deductions"]} == {"labels"}
    rare = [d for d in report["deductions"] if "rare" in d["cause"]][0]
    assert "rare_one" in rare["cause"] and rare["rows"] == [121, 122]
    assert report["checks"]["labels"]["rare"] == ["rare_one"]


def test_label_imbalance_without_rare():
    rows = [{"text": sentence(random.Random(i)), "label": "big" if i < 220 else "small"} for i in range(240)]
    report = analyze(cls_convs(rows), "classification", rare_label_min=5)
    causes = [d["cause"] for d in deductions(report, "labels")]
    assert any("imbalanced" in c for c in causes)


def test_label_spelling_variants():
    rows = cls_rows(120, labels=4)
    for i in range(0, 120, 4):  # every label_0 row spelled "Label 0" instead
        rows[i]["label"] = "Label 0" if i % 8 else "label_0"
    report = analyze(cls_convs(rows), "classification")
    d = [x for x in deductions(report, "labels") if "spelled" in x["cause"]][0]
    assert report["checks"]["labels"]["variants"] == [["Label 0", "label_0"]] and len(d["rows"]) == 30


def test_low_answer_diversity():
    rows = qa_rows()
    for i in range(0, 120, 2):
        rows[i]["answer"] = "Please contact support."
    d = only(analyze(convs_of(rows)), "diversity")
    assert d["count"] == 60 and d["rows"][:3] == [1, 3, 5]


def test_formatting_noise():
    rows = qa_rows()
    rows[1]["answer"] = "<p>Hello <b>there</b></p>"
    rows[2]["answer"] = "bad\x07bell"
    rows[3]["answer"] = "too    many spaces"
    report = analyze(convs_of(rows))
    d = only(report, "formatting")
    assert d["rows"] == [2, 3, 4]
    assert report["checks"]["formatting"] == {"control": 1, "html": 1, "whitespace": 1}


def test_every_deduction_is_explained():
    rows = qa_rows()
    rows[1]["answer"] = "<b>x</b> mail a@b.co"
    rows[2] = dict(rows[3])
    report = analyze(convs_of(rows))
    assert report["score"] == 100 - sum(d["points"] for d in report["deductions"])
    for d in report["deductions"]:
        assert set(d) == {"check", "code", "params", "cause", "points", "count", "rows", "fix"} and d["rows"]
        assert d["code"] in CODES and (d["cause"], d["fix"]) == render_finding(d["code"], d["params"])


def test_minhash_estimates_similarity():
    rng = random.Random(3)
    base = sentence(rng, 30)
    edited = base.replace(base.split()[5], "zzzz", 1)
    other = sentence(rng, 30)
    sig = signatures([base, edited, other], num_perm=128)
    assert (sig[0] == sig[1]).mean() > 0.7 and (sig[0] == sig[2]).mean() < 0.1
    assert near_duplicate_groups([base, other, edited, "short", "short!"], threshold=0.7) == [[0, 2]]


def test_pii_repeated_company_contact_is_described_as_such():
    rows = qa_rows()
    for i in range(0, 120, 3):
        rows[i]["answer"] += " Write to support@example.com."
    d = only(analyze(convs_of(rows)), "pii")
    assert "always the same 1 value(s): support@example.com" in d["cause"] and d["count"] == 40
    assert d["points"] <= 5


def test_shared_stock_answer_does_not_make_questions_near_duplicates():
    rows = qa_rows()
    stock = sentence(random.Random(42), 60)
    for r in rows:
        r["answer"] = stock  # every question gets the same long answer
    report = analyze(convs_of(rows))
    assert report["checks"]["duplicates"]["near"] == 0
    assert deductions(report, "diversity")
