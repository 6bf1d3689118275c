"""Each error category on planted examples, worst-example ranking and confused pairs."""
from core.evaluation.errors import ErrorAnalyzer, is_repetition_loop, script


def _ex(i, question, answer, reference, finished=True, **kw):
    return dict(index=i, messages=[{"role": "user", "content": question}], answer=answer, reference=reference,
                finished=finished, **kw)


def test_repetition_loop_rule():
    assert is_repetition_loop("I am sorry I am sorry I am sorry I am sorry")
    assert is_repetition_loop("好的好的好的好的好的好的")
    assert not is_repetition_loop("no no no")  # too short to be a loop
    assert not is_repetition_loop("The card arrives in three to five working days after you order it.")


def test_script_detection():
    assert script("你好，我的卡丢了") == "zh"
    assert script("Where is my card?") == "latin"
    assert script("?") is None


def test_free_text_categories_counted():
    examples = [
        _ex(0, "What is 2+2?", "   ", "4"),                                         # empty
        _ex(1, "Tell me a story", "Once upon a time there was", "…", finished=False),  # cut off
        _ex(2, "Hi", "hello hello hello hello hello hello hello", "hi"),              # loop
        _ex(3, "天气怎么样？", "The weather is nice.", "天气很好。"),                    # other language
        _ex(4, "Capital of France?", "Paris", "Paris"),                               # fine
    ]
    report = ErrorAnalyzer(examples).analyze()
    counts = {k: v["count"] for k, v in report["categories"].items()}
    assert counts == {"empty": 1, "cut_off": 1, "repetition_loop": 1, "different_language": 1}
    assert report["categories"]["different_language"]["examples"][0]["prompt"] == "天气怎么样？"
    assert report["categories"]["empty"]["share"] == 0.2


def test_classification_categories_and_confused_pairs():
    labels = ["card_arrival", "card_linking", "exchange_rate"]
    rows = [("card_arrival", "card_linking"), ("card_arrival", "card_linking"), ("exchange_rate", "card_arrival"),
            ("exchange_rate", None), ("card_linking", "card_linking")]
    examples = []
    for i, (gold, pred) in enumerate(rows):
        answer = pred if pred else "I think you are asking about rates"
        examples.append(_ex(i, "q", answer, gold, predicted_label=pred, correct=float(pred == gold)))
    report = ErrorAnalyzer(examples, labels).analyze()
    counts = {k: v["count"] for k, v in report["categories"].items()}
    assert counts["wrong_label"] == 3 and counts["label_not_in_set"] == 1 and counts["empty"] == 0
    assert "different_language" not in counts
    assert report["confused_pairs"][0] == {"gold": "card_arrival", "predicted": "card_linking", "count": 2}
    worst = report["worst"]["correct"]
    assert [w["index"] for w in worst] == [0, 1, 2, 3, 4]  # wrong ones first (stable order), the right one last
    assert worst[0]["value"] == 0.0 and worst[-1]["value"] == 1.0


def test_worst_by_token_f1_lists_prompt_reference_answer():
    examples = [_ex(0, "q0", "good answer", "good answer", token_f1=1.0),
                _ex(1, "q1", "bad", "good answer", token_f1=0.0)]
    worst = ErrorAnalyzer(examples, n_examples=1).worst("token_f1")
    assert worst == [{"index": 1, "prompt": "q1", "reference": "good answer", "answer": "bad", "value": 0.0}]
