"""evaluate_run / the eval verb on a fabricated tiny run: report contents, HTML offline, errors for bad input."""
import json
import re
from html.parser import HTMLParser

import pytest

from core.__main__ import main
from core.errors import UserError
from core.evaluation import evaluate_run
from core.workspace import run_dir
from tests.evaluation.conftest import LABELS, make_run, write_qa_jsonl


class _ExternalRefs(HTMLParser):
    """Collects every attribute that would make a browser fetch something from another host."""

    def __init__(self):
        super().__init__()
        self.external, self.scripts, self.inline_scripts = [], 0, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts += 1
            self.inline_scripts += "src" not in attrs
        for key in ("src", "href", "data", "poster", "srcset", "action"):
            value = (attrs.get(key) or "").strip().lower()
            if value.startswith(("http:", "https:", "//", "ftp:")):
                self.external.append((tag, key, value))


def assert_offline(html: str) -> None:
    parser = _ExternalRefs()
    parser.feed(html)
    assert parser.external == []
    assert parser.scripts >= 1 and parser.inline_scripts == parser.scripts  # plotly.js is inline
    # CSS outside plotly's bundle must not import remote fonts or sheets.
    styles = " ".join(re.findall(r"<style[^>]*>(.*?)</style>", html, flags=re.S))
    assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", styles)
    # Our own markup (scripts removed) holds no URL at all.
    markup = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)
    assert not re.search(r"https?://", markup)


@pytest.fixture(scope="module")
def report_and_html(tmp_path_factory):
    import os

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before the autouse one_thread fixture
    home = tmp_path_factory.mktemp("ws")
    old = os.environ.get("ASSISTANT_FACTORY_HOME")
    os.environ["ASSISTANT_FACTORY_HOME"] = str(home / "workspace")
    try:
        run_id = make_run(home)
        seen = []
        report = evaluate_run(run_id, data=str(home / "intents.csv"), limit=6,
                              progress=lambda f, m: seen.append((f, m)))
        html = (run_dir(run_id) / "eval" / "report.html").read_text(encoding="utf-8")
        on_disk = json.loads((run_dir(run_id) / "eval" / "report.json").read_text(encoding="utf-8"))
    finally:
        torch.set_num_threads(threads)
        if old is None:
            os.environ.pop("ASSISTANT_FACTORY_HOME", None)
        else:
            os.environ["ASSISTANT_FACTORY_HOME"] = old
    return report, html, on_disk, seen


def test_report_has_every_section(report_and_html):
    report, html, on_disk, seen = report_and_html
    assert on_disk["run_id"] == report["run_id"] and on_disk["n_test"] == 6
    assert report["task"] == "classification" and report["labels"] == sorted(LABELS)
    assert report["decoding"]["do_sample"] is False
    for who in ("base", "tuned"):
        r = report[who]
        assert r["loss"]["loss"] > 0 and r["loss"]["perplexity"] > 1
        assert set(r["metrics"]["classification"]) >= {"accuracy", "macro_f1", "confusion"}
        assert r["label_scoring"]["n"] == 6 and r["label_scoring"]["mode"] == "pruned"
        assert len(r["examples"]) == 6 and all(e["scored_label"] in LABELS for e in r["examples"])
    # base and tuned really are different models (the adapter is not zero)
    assert report["base"]["loss"]["loss"] != report["tuned"]["loss"]["loss"]
    metrics = [row["metric"] for row in report["comparison"]]
    assert "accuracy (label scoring)" in metrics and "validation loss" in metrics
    assert set(report["errors"]["tuned"]["categories"]) == {"empty", "cut_off", "repetition_loop",
                                                           "label_not_in_set", "wrong_label"}
    assert set(report["robustness"]["perturbations"]) == {"typos", "case", "punctuation_whitespace",
                                                          "irrelevant_prefix", "prompt_injection", "zh_en_mixing"}
    assert report["robustness"]["n"] == 6, "half the test prompts, but at least ROBUSTNESS_MIN (10): all 6 here"
    assert [p["name"] for p in report["performance"]] == ["base", "tuned (unmerged)", "tuned (merged LoRA)"]
    assert all(p["peak_rss_mb"] > 0 and p["latency_p95_s"] >= p["latency_p50_s"] for p in report["performance"])
    assert len(report["training_curves"]) == 4
    assert seen[-1] == (1.0, "done") and all(0 <= f <= 1 for f, _ in seen)
    for heading in ("Data quality", "Training curves", "Metrics: base vs tuned", "Error analysis", "Robustness",
                    "Speed"):
        assert f"<h2>{heading}</h2>" in html


def test_report_html_opens_offline(report_and_html):
    _, html, _, _ = report_and_html
    assert_offline(html)
    assert html.count("Plotly.newPlot") >= 4  # curves, metrics, confusion, robustness, speed charts


def test_offline_check_catches_a_cdn():
    with pytest.raises(AssertionError):
        assert_offline('<html><script src="https://cdn.plot.ly/plotly.min.js"></script></html>')


def test_merged_and_unmerged_give_same_answers(tmp_path):
    from core.chat import load_run_model
    from core.evaluation.generation import Decoding, generate_batch
    from core.evaluation.prompts import prompt_ids

    run_id = make_run(tmp_path)
    tuned, tok, _ = load_run_model(run_id)
    merged, _, _ = load_run_model(run_id, merged=True)
    prompts = [prompt_ids(tok, [{"role": "user", "content": q}]) for q in ("a", "where is my card", "汇率")]
    d = Decoding(max_new_tokens=10, batch_size=3)
    assert generate_batch(tuned, tok, prompts, d) == generate_batch(merged, tok, prompts, d)


def test_batched_generation_equals_one_by_one(tiny):
    from core.evaluation.generation import Decoding, generate_batch
    from core.evaluation.prompts import prompt_ids

    model, tok = tiny
    prompts = [prompt_ids(tok, [{"role": "user", "content": q}]) for q in ("hi", "a much longer question?", "中文")]
    batched = generate_batch(model, tok, prompts, Decoding(max_new_tokens=12, batch_size=3))
    single = [generate_batch(model, tok, [p], Decoding(max_new_tokens=12, batch_size=1))[0] for p in prompts]
    assert batched == single
    assert all(not a.finished and a.n_tokens == 12 for a in batched)  # random weights never emit the end token


def test_eval_verb_errors(tmp_path, capsys):
    make_run(tmp_path, run_id="no-adapter", with_adapter=False)
    assert main(["eval", "no-adapter"]) == 2
    assert "no trained adapter" in capsys.readouterr().err
    run_id = make_run(tmp_path)
    qa = write_qa_jsonl(tmp_path / "qa.jsonl")
    assert main(["eval", run_id, "--data", str(qa)]) == 2
    err = capsys.readouterr().err
    assert "chat data" in err and "classification data" in err
    with pytest.raises(UserError, match="--limit"):
        evaluate_run(run_id, limit=0)


def test_eval_verb_free_text_json(tmp_path, capsys):
    qa = write_qa_jsonl(tmp_path / "qa.jsonl")
    run_id = make_run(tmp_path, data=qa)
    assert main(["eval", run_id, "--data", str(qa), "--json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["task"] == "chat" and doc["n_test"] == 3
    assert "different_language" in doc["errors"]["tuned"]["categories"]
    assert {"exact_match", "token_f1", "rouge_l", "bleu", "chrf", "answer_length"} <= set(doc["tuned"]["metrics"]["text"])
    assert "[" in captured.err and "%" in captured.err  # progress went to stderr
    assert (run_dir(run_id) / "eval" / "report.html").exists()


def test_prepared_dataset_run_reports_quality_and_uses_the_test_split(tmp_path, capsys):
    from core.data import load_split, prepare_dataset
    from tests.evaluation.conftest import write_classification_csv

    csv_path = write_classification_csv(tmp_path / "intents.csv")
    dataset_id = prepare_dataset(csv_path, model=None, split=(0.5, 0.25, 0.25), name="intents")
    run_id = make_run(tmp_path, data=dataset_id)
    code = main(["eval", run_id, "--no-robustness", "--no-performance", "--label-scoring", "off", "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_test"] == len(load_split(dataset_id, "test")) and doc["data"].startswith("intents")
    assert doc["data_quality"] and "score" in doc["data_quality"]
    assert doc["robustness"] is None and doc["performance"] == []
    assert "label_scoring" not in doc["tuned"]
    html = (run_dir(run_id) / "eval" / "report.html").read_text(encoding="utf-8")
    assert "score" in html.split("<h2>Data quality</h2>")[1].split("<h2>")[0]
    assert_offline(html)


def test_prefix_run_scores_labels_with_the_batched_fallback(tmp_path):
    run_id = make_run(tmp_path, method="prefix")
    report = evaluate_run(run_id, data=str(tmp_path / "intents.csv"), limit=3, robustness=False)
    assert report["tuned"]["label_scoring"]["mode"] == "batched"
    assert report["base"]["label_scoring"]["mode"] == "pruned"
    assert [p["name"] for p in report["performance"]] == ["base", "tuned (unmerged)"]  # no merge for prefix
    assert report["base"]["loss"]["loss"] != report["tuned"]["loss"]["loss"]


def test_base_results_are_reused_only_for_the_same_prompts_and_settings(tmp_path, monkeypatch):
    from core.evaluation.metrics import MultiMetricEvaluator

    run_id = make_run(tmp_path)
    data = str(tmp_path / "intents.csv")
    calls = []
    real = MultiMetricEvaluator.evaluate_model

    def counting(self, model, test, val=(), progress=None, name="model"):
        calls.append((name, len(test)))
        return real(self, model, test, val, progress, name)

    monkeypatch.setattr(MultiMetricEvaluator, "evaluate_model", counting)
    first = evaluate_run(run_id, data=data, limit=3, robustness=False, performance=False)
    second = evaluate_run(run_id, data=data, limit=3, robustness=False, performance=False)
    assert calls == [("base", 3), ("tuned", 3), ("tuned", 3)], "the second evaluation reuses the base results"
    assert second["base"]["cached"] is True and "cached" not in first["base"]
    assert second["base"]["metrics"] == first["base"]["metrics"]
    assert [e["answer"] for e in second["base"]["examples"]] == [e["answer"] for e in first["base"]["examples"]]
    calls.clear()
    evaluate_run(run_id, data=data, limit=2, robustness=False, performance=False)  # other prompts: scored anew
    evaluate_run(run_id, data=data, limit=2, robustness=False, performance=False, reuse_base=False)
    assert calls == [("base", 2), ("tuned", 2), ("base", 2), ("tuned", 2)]
    # label scores: a cached result with them serves a request without them, not the other way round
    calls.clear()
    scored = evaluate_run(run_id, data=data, limit=2, robustness=False, performance=False, label_scoring=True)
    plain = evaluate_run(run_id, data=data, limit=2, robustness=False, performance=False, label_scoring=False)
    assert calls == [("tuned", 2), ("tuned", 2)] and scored["base"]["cached"] and plain["base"]["cached"]
    assert "label_scoring" in scored["base"] and "label_scoring" not in plain["base"]
    assert all("scored_label" not in e for e in plain["base"]["examples"])


def test_stopped_run_is_evaluated_as_of_its_last_verified_checkpoint(tmp_path, capsys):
    from tests.training.conftest import stopped_run

    stopped_run(tmp_path)
    capsys.readouterr()
    assert main(["eval", "stopped-run", "--limit", "2", "--no-robustness", "--no-performance"]) == 0
    assert "weights as of step 3 of 8 (the run did not finish)" in capsys.readouterr().out
    on_disk = json.loads((run_dir("stopped-run") / "eval" / "report.json").read_text(encoding="utf-8"))
    assert on_disk["weights"] == {"step": 3, "total_steps": 8, "final": False}


def test_eval_of_a_truncated_adapter_is_exit_2(tmp_path, capsys):
    run_id = make_run(tmp_path)
    weights = run_dir(run_id) / "adapter" / "adapter.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    data = str(tmp_path / "intents.csv")
    assert main(["eval", run_id, "--data", data, "--limit", "2", "--no-robustness", "--no-performance"]) == 2
    err = capsys.readouterr().err
    assert "damaged or incomplete" in err and "loading the base model" not in err  # refused before any work
