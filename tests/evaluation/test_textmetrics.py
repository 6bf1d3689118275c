"""Each answer metric against values computed by hand (English and Chinese)."""
import math

import pytest

from core.evaluation import textmetrics as tm


def test_segment_splits_cjk_into_characters_and_words_elsewhere():
    assert tm.segment("我爱NLP!") == ["我", "爱", "nlp"]
    assert tm.segment("Hello, World 42") == ["hello", "world", "42"]
    assert tm.segment("ＡＢＣ") == ["abc"]  # full-width letters are NFKC-normalised


def test_exact_match_ignores_case_punctuation_articles():
    assert tm.exact_match("The Paris.", "paris") == 1.0
    assert tm.exact_match("Paris, France", "Paris") == 0.0
    assert tm.exact_match("北京。", "北京") == 1.0


def test_token_f1_english_by_hand():
    # pred tokens [cat, sat, on, mat] (article dropped), ref [cat, sat] -> common 2, P=2/4, R=2/2, F1=2/3
    assert tm.token_f1("the cat sat on the mat", "cat sat") == pytest.approx(2 / 3)
    assert tm.token_f1("dog", "cat") == 0.0
    assert tm.token_f1("", "") == 1.0 and tm.token_f1("", "x") == 0.0


def test_token_f1_chinese_on_characters():
    # pred 我喜欢北京 (5 chars), ref 我爱北京 (4 chars): common 我 北 京 = 3 -> P=3/5 R=3/4 F1=2/3
    assert tm.token_f1("我喜欢北京", "我爱北京") == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    # repeated characters are a multiset: pred 好好 vs ref 好 -> common 1, P=1/2, R=1, F1=2/3
    assert tm.token_f1("好好", "好") == pytest.approx(2 / 3)


def test_lcs_and_rouge_l_by_hand():
    assert tm.lcs_length(list("ABCBDAB"), list("BDCABA")) == 4
    # pred [a, b, c, d], ref [a, c, d, e]: LCS a c d = 3 -> P=3/4 R=3/4 F=0.75
    assert tm.rouge_l("a b c d", "a c d e") == pytest.approx(0.75)


def test_rouge_l_chinese_characters():
    # pred 今天天气很好 (6), ref 今天天气不错 (6): LCS 今天天气 = 4 -> F = 4/6
    assert tm.rouge_l("今天天气很好", "今天天气不错") == pytest.approx(4 / 6)


def test_bleu_by_hand():
    # hyp 7 tokens, ref 6: n-gram precisions 6/7, 5/6, 4/5, 3/4, no brevity penalty (hyp longer)
    expected = 100 * (6 / 7 * 5 / 6 * 4 / 5 * 3 / 4) ** 0.25
    assert tm.bleu(["the cat sat on the mat today"], ["the cat sat on the mat"]) == pytest.approx(expected, abs=1e-6)


def test_bleu_chinese_uses_character_tokens():
    # 7 of 9 characters, all n-grams match -> BLEU = brevity penalty exp(1 - 9/7)
    assert tm.bleu(["我爱北京天安门"], ["我爱北京天安门广场"]) == pytest.approx(100 * math.exp(1 - 9 / 7), abs=1e-2)


def test_chrf_by_hand():
    # chars hyp "ab" ref "ac": 1-grams P=R=1/2; 2-grams P=R=0; orders 3..6 absent -> averaged P=R=1/4,
    # F_beta=2 = (1+4)·P·R / (4P + R) = 0.25 -> 25.0
    assert tm.chrf(["ab"], ["ac"]) == pytest.approx(25.0)
    assert tm.chrf(["same text"], ["same text"]) == pytest.approx(100.0)


def test_answer_length_counts_words_and_cjk_characters():
    assert tm.answer_length("two words") == 2
    assert tm.answer_length("我爱你 ok") == 4


def test_text_metrics_aggregates_means():
    m = tm.text_metrics(["paris", "dog"], ["Paris", "cat"])
    assert m["exact_match"] == 0.5 and m["token_f1"] == 0.5 and m["rouge_l"] == 0.5 and m["n"] == 2


def test_match_label_is_lenient_on_form_only():
    labels = ["card_arrival", "exchange_rate"]
    assert tm.match_label(" Card arrival.", labels) == "card_arrival"
    assert tm.match_label("exchange_rate\nbecause ...", labels) == "exchange_rate"
    assert tm.match_label("my card has not arrived", labels) is None


def test_classification_metrics_by_hand():
    gold = ["a", "a", "b", "b"]
    pred = ["a", "b", "b", None]
    m = tm.classification_metrics(pred, gold, ["a", "b"])
    assert m["accuracy"] == 0.5
    # a: tp1 fp0 fn1 -> P1 R.5 F 2/3 ; b: tp1 fp1 fn1 -> P.5 R.5 F .5 ; macro = (2/3+1/2)/2
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.5) / 2)
    assert m["confusion_columns"] == ["a", "b", tm.NOT_A_LABEL]
    assert m["confusion"] == [[1, 1, 0], [0, 1, 1]]
    assert m["in_label_set"] == 0.75
