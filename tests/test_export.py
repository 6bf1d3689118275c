"""core.export: a run's usable weights (final adapter or a stopped run's checkpoint) exported and zipped, and
evaluated, with the step they stand for."""
import json
import shutil
import zipfile

import pytest
import torch

from core.checkpoints import usable_weights
from core.errors import UserError
from core.chat import load_run_model, run_weights
from core.export import build_export, zip_path
from tests.app.conftest import seeded, trained_run  # noqa: F401 - fixtures


@pytest.fixture
def stopped(trained_run, workspace):  # noqa: F811
    folder = workspace / "runs" / trained_run
    shutil.rmtree(folder / "adapter")
    status = json.loads((folder / "status.json").read_text())
    (folder / "status.json").write_text(json.dumps({**status, "state": "stopped"}))
    return trained_run


def _logits(model, tok):
    ids = tok("Where is my order?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_checkpoint_export_loads_back_to_the_same_model(stopped, workspace):
    from core.models import load_model
    from core.peft import load_adapter

    weights = usable_weights(stopped)
    model, tok, cfg = load_run_model(stopped)
    used = run_weights(stopped)
    assert used == weights and not used.final
    target = build_export(stopped, "adapter")
    assert target == zip_path(stopped, "adapter", weights) and f"-step{weights.step}-" in target.name
    out = workspace / "unzipped"
    with zipfile.ZipFile(target) as zf:
        zf.extractall(out)
    base, _ = load_model(cfg["model"])
    again = load_adapter(base, next(out.iterdir()))
    assert torch.allclose(_logits(model, tok), _logits(again, tok), atol=1e-5)
    base2, _ = load_model(cfg["model"])
    assert not torch.allclose(_logits(model, tok), _logits(base2, tok), atol=1e-5)  # the weights are not a no-op


def test_final_export_keeps_its_plain_name(trained_run):  # noqa: F811
    target = build_export(trained_run, "peft")
    assert target.name == f"{trained_run}-peft.zip"
    with zipfile.ZipFile(target) as zf:
        assert any(n.endswith("adapter_config.json") for n in zf.namelist())


def test_a_run_without_weights_is_refused_in_words(workspace):
    folder = workspace / "runs" / "empty-run"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model": "tiny-llama", "method": "lora"}))
    (folder / "status.json").write_text(json.dumps({"state": "stopped", "step": 0}))
    with pytest.raises(UserError, match="no trained adapter yet"):
        build_export("empty-run", "adapter")


def test_evaluating_a_checkpoint_records_its_step(stopped):
    from core.evaluation import evaluate_run

    report = evaluate_run(stopped, limit=2, robustness=False, performance=False)
    weights = usable_weights(stopped)
    assert report["weights"] == {"step": weights.step, "total_steps": weights.total_steps, "final": False}
    assert all(row["code"] for row in report["comparison"])
