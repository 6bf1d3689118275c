"""Step 5 · Choose: the expected quality band from the calibration table, or a note that nothing was measured."""
import json

import pytest

from tests.app.conftest import LANGS, open_page, seed_dataset, texts, write_project
from ui.i18n import t


def _table(tmp_path, rows: list):
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"schema": 1, "rows": rows}))
    return path


FAQ_ROW = {"data_kind": "faq", "rows": 32, "engine": "ours", "method": "lora", "rank": 4,
           "targets": ["q_proj", "v_proj"], "lr": 0.002, "epochs": 1, "dropout": 0.1, "metric": "token_f1",
           "train_s": 120, "source": "a test", "from_sweep": True}


@pytest.mark.parametrize("lang", LANGS)
def test_choose_shows_the_band_similar_runs_reached(workspace, tmp_path, monkeypatch, lang):
    import core.strategy.calibration as calibration

    rows = [{**FAQ_ROW, "id": "faq-a", "value": 0.42}, {**FAQ_ROW, "id": "faq-b", "value": 0.55}]
    monkeypatch.setattr(calibration, "CALIBRATION_FILE", _table(tmp_path, rows))
    seed_dataset(workspace)
    write_project(workspace, active_dataset="demo-data")
    at = open_page("5_choose", lang)
    body = texts(at)
    assert t("choose.quality_band", lang, low=42, high=55, metric="token_f1", minutes=2.0, rows="faq-a, faq-b") in body


def test_choose_says_when_no_similar_run_was_measured(workspace, tmp_path, monkeypatch):
    import core.strategy.calibration as calibration

    monkeypatch.setattr(calibration, "CALIBRATION_FILE", _table(tmp_path, []))
    seed_dataset(workspace)
    write_project(workspace, active_dataset="demo-data")
    at = open_page("5_choose")
    assert t("choose.quality_band_none") in texts(at)
