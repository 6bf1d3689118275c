"""The CLI lists every verb and maps bad input to exit code 2, and a missing module to a loud failure."""
import json
import subprocess
import sys

import pytest

from core.__main__ import VERBS, main

DESIGN_VERBS = ["analyze", "prepare", "estimate", "train", "eval", "chat", "export", "bench"]


def test_help_lists_every_verb():
    out = subprocess.run([sys.executable, "-m", "core", "--help"], capture_output=True, text=True, check=True).stdout
    for verb in DESIGN_VERBS:
        assert verb in out and verb in VERBS


def test_no_verb_is_exit_2(capsys):
    assert main([]) == 2


def test_a_missing_verb_module_fails_loudly(monkeypatch):
    monkeypatch.setitem(VERBS, "bench", ("core.no_such_module", "x", "help"))
    with pytest.raises(ModuleNotFoundError):
        main(["bench"])


def test_bench_verb_runs_bench_in_a_child_and_passes_exit_2_through():
    out = subprocess.run([sys.executable, "-m", "core", "bench", "no-such-bench"], capture_output=True, text=True)
    assert out.returncode == 2 and "Unknown benchmark" in out.stderr


# ---------------------------------------------------------------- recommend
@pytest.fixture
def intents_csv(tmp_path):
    path = tmp_path / "intents.csv"
    rows = [f"please help with thing {i} number {j},label_{i}" for i in range(6) for j in range(8)]
    path.write_text("text,intent\n" + "\n".join(rows) + "\n")
    return path


def test_recommend_prints_the_config_reasons_and_estimate_and_writes_a_trainable_config(
        intents_csv, tmp_path, monkeypatch, capsys):
    import yaml

    from core.training.config import TrainingConfig
    from tests.strategy.helpers import fix_speed

    fix_speed(monkeypatch)
    out = tmp_path / "run.yaml"
    args = ["recommend", str(intents_csv), "--model", "tiny-llama", "--budget", "5", "--system-prompt", "Route it."]
    assert main(args + ["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "# Why:" in printed and "# Estimate: peak memory" in printed and "# Expected quality:" in printed
    config = yaml.safe_load(out.read_text())
    assert config["model"] == "tiny-llama" and config["system_prompt"] == "Route it."
    assert config["method"] == "lora" and config["train"]["epochs"] >= 1
    assert TrainingConfig.from_file(out).method == "lora"  # train --config accepts what recommend wrote
    assert main(args + ["--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["config"] == config and doc["task"] == "classification"
    assert doc["reasons"] and all(r["text"] and r["text"] != r["code"] for r in doc["reasons"])
    assert doc["estimate"]["memory_bytes"] > 0 and doc["estimate"]["total_s"] > 0


def test_recommend_calls_the_function_the_page_calls(intents_csv, monkeypatch, capsys):
    import core.strategy.dataset as dataset_module

    seen = {}
    real = dataset_module.recommend_for_dataset

    def spy(*args, **kwargs):
        seen.update(kwargs, data=args[0])
        return real(*args, **kwargs)

    from tests.strategy.helpers import fix_speed

    fix_speed(monkeypatch)
    monkeypatch.setattr(dataset_module, "recommend_for_dataset", spy)
    assert main(["recommend", str(intents_csv), "--model", "tiny-llama", "--budget", "2"]) == 0
    assert seen["data"] == str(intents_csv) and seen["time_budget_s"] == 120.0


@pytest.mark.parametrize("content,budget,words", [
    (b"", None, "empty"),
    (b"\x00\x01\xff binary", None, "binary"),
    (b"text,intent\n", None, "no"),
    (b"text,intent\nhello,greet\nbye,leave\n", "0", "--budget"),
    (b"text,intent\nhello,greet\nbye,leave\n", "nan", "--budget"),
])
def test_recommend_bad_input_is_exit_2_with_a_message(tmp_path, capsys, content, budget, words):
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    args = ["recommend", str(path), "--model", "tiny-llama"] + (["--budget", budget] if budget else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and "Traceback" not in err


def test_recommend_a_missing_file_is_exit_2(tmp_path, capsys):
    assert main(["recommend", str(tmp_path / "nope.csv")]) == 2
    assert "neither a dataset id" in capsys.readouterr().err
