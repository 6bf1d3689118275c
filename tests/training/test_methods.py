"""Every PEFT method (and GPT-2) trains through the same loop; stop + resume in-process is exact for each."""
import json

import pytest

from core.fileio import read_jsonl
from core.training.config import TrainingConfig
from core.training.trainer import AdvancedTrainer
from tests.training.conftest import tiny_config

SECTIONS = {"adapter": {"bottleneck": 8}, "prefix": {"num_virtual_tokens": 4, "projection_dim": 16},
            "full": {}, "freeze": {"trainable_layers": 1}}


def _cfg(data, method, model="tiny-llama", **train):
    d = tiny_config(data, max_steps=6, eval_every=3, save_every=2, **train)
    d["method"], d["model"] = method, model
    if method in SECTIONS:
        d[method] = SECTIONS[method]
    if model == "tiny-gpt2":
        d["lora"]["target_modules"] = ["c_attn"]
    return TrainingConfig.from_dict(d)


def _losses(run):
    return [(r["step"], r.get("loss", r.get("eval_loss"))) for r in read_jsonl(run / "metrics.jsonl")]


@pytest.mark.parametrize("method, model", [("adapter", "tiny-llama"), ("prefix", "tiny-llama"),
                                           ("full", "tiny-llama"), ("freeze", "tiny-llama"),
                                           ("lora", "tiny-gpt2"), ("prefix", "tiny-gpt2")])
def test_method_trains_stops_and_resumes_exactly(tmp_path, chat_data, monkeypatch, method, model):
    cfg = _cfg(chat_data, method, model)
    ref = AdvancedTrainer(cfg, tmp_path / "ref")
    assert ref.train() == "completed"
    assert ref.packing is (method != "prefix")  # prefix tuning trains on padded batches only
    meta = json.loads((tmp_path / "ref" / "adapter" / "adapter_config.json").read_text())
    assert meta["method"] == method

    real_step = AdvancedTrainer._train_step

    def stop_after_4(self, micro):
        out = real_step(self, micro)
        if self.step == 4:
            self.request_stop()
        return out

    monkeypatch.setattr(AdvancedTrainer, "_train_step", stop_after_4)
    assert AdvancedTrainer(cfg, tmp_path / "live").train() == "stopped"
    monkeypatch.setattr(AdvancedTrainer, "_train_step", real_step)
    assert AdvancedTrainer(cfg, tmp_path / "live", resume=True).train() == "completed"
    got, want = _losses(tmp_path / "live"), _losses(tmp_path / "ref")
    assert [s for s, _ in got] == [s for s, _ in want]
    assert all(abs(a - b) <= 1e-5 for (_, a), (_, b) in zip(got, want)), (got, want)
