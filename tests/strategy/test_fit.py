"""fit_check: the smallest change that makes a config fit this machine."""
from __future__ import annotations

import json

from core.strategy import fit_check, render
from tests.strategy.helpers import (
    DEFAULT,
    estimator,
)


# ---------------------------------------------------------------- fit_check
def test_fit_check_suggests_a_change_that_fits():
    est = estimator(DEFAULT, gib=4)
    cfg = {"data": "x", "method": "lora", "train": {"batch_size": 32, "max_seq_len": 1024}}
    report = fit_check(cfg, estimator=est)
    assert not report.fits and report.problems and report.suggestion
    fixed = json.loads(json.dumps(cfg))
    for key, value in report.suggestion.items():
        if "." in key:
            sec, k = key.split(".")
            fixed.setdefault(sec, {})[k] = value
        else:
            fixed[key] = value
    assert fit_check(fixed, estimator=est).fits
    # the smallest change: only the batch shrinks (accumulation keeps 32 examples per update)
    assert set(report.suggestion) == {"train.batch_size", "train.grad_accum"}
    assert report.suggestion["train.batch_size"] * report.suggestion["train.grad_accum"] == 32


def test_fit_check_switches_method_when_batch_and_length_are_not_enough():
    est = estimator(DEFAULT, gib=2.3)
    cfg = {"data": "x", "method": "full", "train": {"batch_size": 8, "max_seq_len": 512}}
    assert not est.memory("full", batch_size=1, seq_len=128).fits
    report = fit_check(cfg, estimator=est)
    assert report.suggestion and report.suggestion["method"] in ("lora", "prefix")


def test_fit_check_passes_a_config_that_fits():
    report = fit_check({"data": "x", "method": "lora", "train": {"batch_size": 2, "max_seq_len": 256}},
                       estimator=estimator(DEFAULT, gib=64))
    assert report.fits and not report.problems and report.suggestion is None




def test_fit_problems_and_suggestion_are_codes_in_both_languages():
    from ui.i18n import t

    est = estimator(DEFAULT, gib=4)
    report = fit_check({"data": "x", "method": "lora", "train": {"batch_size": 32, "max_seq_len": 1024}}, estimator=est)
    assert [p["code"] for p in report.problems] == ["fit_needs"]
    why = report.suggestion_reason
    assert why["code"] == "fit_smaller_batch" and why["params"]["to"] == report.suggestion["train.batch_size"]
    assert report.suggestion_text == render(why) and "then about" in report.suggestion_text
    assert "每次更新仍是 32 条样本" in t(f"strategy.{why['code']}", "zh", **why["params"])
    assert t("strategy.fit_needs", "zh", **report.problems[0]["params"]).startswith("这次训练")
