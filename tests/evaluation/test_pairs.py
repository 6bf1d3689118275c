"""Preference evaluation: held-out pair accuracy (base and tuned), samples side by side, the eval job's report."""
from __future__ import annotations

import json

import pytest
import torch

from core.data.pairs import PreferencePair
from core.evaluation.pairs import pair_accuracy
from core.fileio import read_json
from core.models import tiny_model
from core.training.preference import PairLoader, answer_logps, collate_pairs
from core.workspace import run_dir

WORDS = ["alpha", "bravo", "delta", "tango"]  # one length: summed log-probs compare content, not length


def make_pairs(n: int = 8) -> list[PreferencePair]:
    return [PreferencePair([{"role": "user", "content": f"code {i % 4}"}],
                           [{"role": "assistant", "content": WORDS[i % 4] + " " + WORDS[i % 4]}],
                           [{"role": "assistant", "content": "xx" * (i % 3) + "xyz" + "z" * (8 - 2 * (i % 3))}])
            for i in range(n)]


def swapped(pairs):
    return [PreferencePair(p.prompt, p.rejected, p.chosen) for p in pairs]


def test_pair_accuracy_counts_pairs_where_the_chosen_answer_is_more_likely():
    model, tok = tiny_model()
    pairs = make_pairs(8)
    loader = PairLoader(tok, "Sys.", 128)
    batch = collate_pairs(loader.encode_all([p.to_dict() for p in pairs])[0], loader.pad_id)
    with torch.no_grad():
        c, r = answer_logps(model, batch).chunk(2)
    result = pair_accuracy(model, tok, pairs, "Sys.", 128, batch_size=3)  # batches of 3: uneven last batch
    assert result["n"] == 8
    assert result["accuracy"] == pytest.approx(float((c > r).float().mean()), abs=1e-9)
    assert result["mean_margin"] == pytest.approx(float((c - r).mean()), abs=1e-4)
    flipped = pair_accuracy(model, tok, swapped(pairs), "Sys.", 128)
    assert flipped["accuracy"] == pytest.approx(1 - result["accuracy"], abs=1e-9)  # no ties on a random model


def _preference_run(tmp_path, run_id: str = "pref-run") -> str:
    """A completed DPO LoRA run whose adapter strongly prefers the chosen answers (trained here, 30 steps)."""
    from core.training.config import TrainingConfig
    from core.training.trainer import AdvancedTrainer

    data = tmp_path / "prefs"
    (data / "splits").mkdir(parents=True)
    pairs = make_pairs(16)
    for name, part in (("train", pairs[:12]), ("val", pairs[12:]), ("test", pairs[12:])):
        (data / "splits" / f"{name}.jsonl").write_text("".join(json.dumps(p.to_dict()) + "\n" for p in part))
    (data / "meta.json").write_text(json.dumps({"kind": "preference"}))  # what Prepare writes for pairs
    cfg = TrainingConfig.from_dict({
        "model": "tiny-llama", "data": str(data), "method": "lora", "objective": "dpo", "beta": 0.5,
        "system_prompt": "Sys.", "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"},
        "train": {"max_steps": 10, "batch_size": 4, "lr": 1e-2, "eval_every": 100, "save_every": 100,
                  "warmup_ratio": 0.0, "seed": 3, "max_seq_len": 64}})
    folder = run_dir(run_id, create=True)
    cfg.save(folder / "config.json")
    assert AdvancedTrainer(cfg, folder, run_id=run_id).train() == "completed"
    return run_id


def test_eval_of_a_preference_run_reports_pairs_for_base_and_tuned(tmp_path):
    from core.evaluation import evaluate_run

    run_id = _preference_run(tmp_path)
    report = evaluate_run(run_id, performance=True)
    pairs = report["pairs"]
    assert pairs["base"]["n"] == pairs["tuned"]["n"] == 4
    assert pairs["tuned"]["accuracy"] > pairs["base"]["accuracy"]
    assert pairs["accuracy_gain"] == pytest.approx(pairs["tuned"]["accuracy"] - pairs["base"]["accuracy"])
    assert len(pairs["samples"]) == 4 and all(isinstance(s["base"], str) and isinstance(s["tuned"], str)
                                              for s in pairs["samples"])
    assert [p["name"] for p in report["performance"]] == ["base", "tuned (unmerged)"]
    assert any("reward_margin" in r for r in report["training_curves"])
    on_disk = read_json(run_dir(run_id) / "eval" / "report.json")
    assert on_disk["pairs"]["tuned"]["accuracy"] == pairs["tuned"]["accuracy"]
    assert "Pair accuracy: base" in (run_dir(run_id) / "eval" / "report.html").read_text(encoding="utf-8")
    assert report["comparison"][0]["metric"] == "pair_accuracy"


def test_eval_cli_prints_the_pair_table(tmp_path):
    from core.evaluation.cli import summary_lines

    run_id = _preference_run(tmp_path, "pref-cli")
    from core.evaluation import evaluate_run

    text = "\n".join(summary_lines(evaluate_run(run_id, performance=False)))
    assert "pair_accuracy" in text


def test_report_html_of_a_preference_run_shows_pair_accuracy_and_samples():
    from core.evaluation.report import render_html
    from tests.evaluation.planted import preference_report

    html = render_html(preference_report("pref-html", base_acc=0.5, tuned_acc=0.875))
    assert "Pair accuracy: base 50.0% → tuned 87.5% (gain +37.5 points)" in html
    assert "Free-generation samples: base vs tuned" in html
    for text in ("How long does a refund take?", "About five working days.", "Refunds take forever.", "Never."):
        assert f"<pre>{text}</pre>" in html
    assert "&lt;after&gt;" in html and "<after>" not in html  # the answers are escaped
    assert "1 pairs longer than max_seq_len were left out" in html
    assert "Generation speed" in html and "method lora (dpo)" in html
    assert "Error analysis" not in html and "Robustness" not in html  # conversation sections do not apply
