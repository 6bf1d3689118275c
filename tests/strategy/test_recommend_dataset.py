"""recommend_for_dataset (the page's and the recommend verb's function) with a calibration table and preference pairs."""
from __future__ import annotations

import json

import pytest

from core.errors import UserError
from core.strategy import recommend_for_dataset
from tests.strategy.helpers import codes, fix_speed


def _intents(tmp_path, labels: int = 60, per_label: int = 5):
    path = tmp_path / "intents.csv"
    rows = [f"please help with thing {i} number {j},label_{i}" for i in range(labels) for j in range(per_label)]
    path.write_text("text,intent\n" + "\n".join(rows) + "\n")
    return path


def _table(tmp_path, rank: int, value: float = 0.5) -> str:
    row = {"id": f"r{rank}", "data_kind": "classification-many-labels", "labels": 60, "per_label": 5, "rows": 300,
           "engine": "ours", "method": "lora", "rank": rank, "targets": ["q_proj", "v_proj"], "lr": 0.002,
           "epochs": 1, "dropout": 0.1, "metric": "accuracy", "value": value, "train_s": 90, "source": "a test",
           "from_sweep": True}
    path = tmp_path / f"cal-{rank}.json"
    path.write_text(json.dumps({"schema": 1, "rows": [row]}))
    return str(path)


def test_a_data_file_follows_the_table_passed_and_gets_its_quality_band(workspace, tmp_path, monkeypatch):
    fix_speed(monkeypatch)
    data = str(_intents(tmp_path))
    rec = recommend_for_dataset(data, model="tiny-llama", calibration=_table(tmp_path, 4))
    assert rec.config["lora"]["r"] == 4 and rec.config["train"]["lr"] == 0.002 and rec.config["lora"]["dropout"] == 0.1
    assert rec.config["train"]["epochs"] == 1 and "calibration_pick" in codes(rec.reasons)
    assert rec.quality_band["rows"] == ["r4"] and rec.quality_band["high"] == 0.5 and rec.quality_band["minutes"] == 1.5
    # another table, another recommendation for the same data
    assert recommend_for_dataset(data, model="tiny-llama", calibration=_table(tmp_path, 2)).config["lora"]["r"] == 2


def test_a_bad_budget_is_a_user_error(workspace, tmp_path):
    with pytest.raises(UserError, match="positive number of minutes"):
        recommend_for_dataset(str(_intents(tmp_path)), model="tiny-llama", time_budget_s=-60)


def test_preference_pairs_get_a_preference_objective(workspace, tmp_path, monkeypatch):
    fix_speed(monkeypatch)
    folder = tmp_path / "pairs"
    (folder / "splits").mkdir(parents=True)
    pair = {"prompt": [{"role": "user", "content": "Say hi"}], "chosen": [{"role": "assistant", "content": "Hi!"}],
            "rejected": [{"role": "assistant", "content": "No."}]}
    (folder / "splits" / "train.jsonl").write_text("".join(json.dumps(pair) + "\n" for _ in range(40)))
    rec = recommend_for_dataset(str(folder), model="tiny-llama")
    assert rec.task == "preference" and rec.objective in ("dpo", "orpo")
    assert rec.config["objective"] == rec.objective and rec.runner_up["objective"] != rec.objective
