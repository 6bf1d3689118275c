"""AdvancedTrainer in-process on tiny-llama + LoRA: learning, checkpoints, adapter, non-finite steps, early stopping."""
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from core.fileio import read_jsonl
from core.training import trainer as trainer_mod
from core.training.config import TrainingConfig
from core.training.trainer import AdvancedTrainer, latest_checkpoint
from tests.training.conftest import tiny_config


def _train(tmp_path, data, name="run", **train):
    cfg = TrainingConfig.from_dict(tiny_config(data, **train))
    run = tmp_path / name
    state = AdvancedTrainer(cfg, run).train()
    return state, run, list(read_jsonl(run / "metrics.jsonl")), json.loads((run / "status.json").read_text())


def test_loss_falls_and_adapter_is_saved(tmp_path, chat_data):
    from core.models import tiny_model
    from core.peft import load_adapter, peft_state_dict

    state, run, lines, status = _train(tmp_path, chat_data, epochs=3)
    assert state == "completed" and status["state"] == "completed" and status["error"] is None
    evals = [r["eval_loss"] for r in lines if "eval_loss" in r]
    train = [r["loss"] for r in lines if "loss" in r]
    assert evals[0] - evals[-1] > 0.25, evals  # clearly learned the pattern (frozen tiny embeddings cap the fall)
    assert sum(train[-5:]) / 5 < sum(train[:5]) / 5
    assert [r["step"] for r in lines if "loss" in r] == list(range(1, status["total_steps"] + 1))
    assert lines[0]["step"] == 0 and "eval_loss" in lines[0]  # evaluated before training
    assert all(math.exp(r["eval_loss"]) == pytest.approx(r["eval_ppl"]) for r in lines if "eval_loss" in r)
    assert all(r["tokens_per_s"] > 0 and r["peak_mem_mb"] > 0 and r["eta_s"] >= 0 for r in lines if "loss" in r)
    # The final adapter reloads onto a fresh base model with the trained tensors.
    model, _ = tiny_model("tiny-llama")
    model = load_adapter(model, run / "adapter")
    final = load_file(str(latest_checkpoint(run) / "peft.safetensors"))
    for k, v in peft_state_dict(model).items():
        assert torch.equal(v, final[k])


def test_checkpoints_are_safetensors_json_and_pruned(tmp_path, chat_data):
    state, run, _, status = _train(tmp_path, chat_data, epochs=1, save_every=3, keep_checkpoints=2)
    total = status["total_steps"]
    steps = sorted(int(p.name.split("-")[1]) for p in (run / "checkpoints").iterdir())
    assert steps == [(total - 1) // 3 * 3, total]  # the last periodic one and the final one
    ckpt = latest_checkpoint(run)
    names = {p.name for p in ckpt.iterdir()}
    assert names == {"peft.safetensors", "optimizer.safetensors", "optimizer.json", "rng.safetensors", "rng.json",
                     "trainer_state.json"}
    for p in ckpt.iterdir():
        assert p.read_bytes()[:1] != b"\x80"  # no pickle anywhere
    opt = load_file(str(ckpt / "optimizer.safetensors"))
    assert any(k.endswith("::exp_avg") for k in opt)
    ts = json.loads((ckpt / "trainer_state.json").read_text())
    assert ts["step"] == total and ts["epoch_index"] == 1 and ts["batch_index"] == 0
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]


def _inject_nan(monkeypatch, bad_calls):
    """Make the training loss NaN on the given (0-based) training forward calls; evals are untouched."""
    real = trainer_mod.causal_lm_loss
    calls = {"n": 0}

    def fake(model, batch):
        loss, n = real(model, batch)
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] - 1 in bad_calls:
                loss = loss * float("nan")
        return loss, n

    monkeypatch.setattr(trainer_mod, "causal_lm_loss", fake)


def test_nan_step_is_skipped_and_logged(tmp_path, chat_data, monkeypatch, capsys):
    _inject_nan(monkeypatch, {2, 3})
    state, run, lines, status = _train(tmp_path, chat_data, epochs=1)
    assert state == "completed"
    skipped = [r for r in lines if r.get("skipped")]
    assert [r["step"] for r in skipped] == [3, 4]
    assert all("non-finite loss" in r["reason"] for r in skipped) and skipped[0]["loss"] is None
    assert status["skipped_steps"] == 2
    assert "skipping step 3: non-finite loss" in capsys.readouterr().out
    weights = load_file(str(latest_checkpoint(run) / "peft.safetensors"))
    assert all(torch.isfinite(t).all() for t in weights.values())  # the NaN never reached the weights
    assert all(math.isfinite(r["loss"]) for r in lines if "loss" in r and not r.get("skipped"))


def test_repeated_non_finite_steps_fail_the_run(tmp_path, chat_data, monkeypatch):
    _inject_nan(monkeypatch, set(range(1, 1000)))
    state, run, lines, status = _train(tmp_path, chat_data, epochs=1, nonfinite_patience=3)
    assert state == "failed" and status["state"] == "failed"
    assert "3 consecutive steps had a non-finite loss" in status["error"]
    assert status["step"] == 4 and [r["step"] for r in lines if r.get("skipped")] == [2, 3, 4]
    assert not (run / "adapter").exists()


def test_early_stopping_on_validation_loss(tmp_path, chat_data, monkeypatch):
    losses = iter([5.0, 4.0, 4.5, 4.6, 4.7, 4.8, 4.9, 5.0, 5.1])

    def fake_eval(self, limit=None):
        return next(losses)

    monkeypatch.setattr(AdvancedTrainer, "evaluate", fake_eval)
    state, run, lines, status = _train(tmp_path, chat_data, epochs=3, eval_every=2, early_stopping_patience=2)
    assert state == "completed" and status["early_stopped"] is True and status["best_eval_loss"] == 4.0
    assert [r["step"] for r in lines if "eval_loss" in r] == [0, 2, 4, 6]
    assert max(r["step"] for r in lines) == 6 < status["total_steps"]
    assert (run / "adapter" / "adapter_config.json").exists()


def test_same_seed_same_losses_on_cpu(tmp_path, chat_data):
    _, _, a, _ = _train(tmp_path, chat_data, name="a", max_steps=6)
    _, _, b, _ = _train(tmp_path, chat_data, name="b", max_steps=6)
    assert [r.get("loss") for r in a] == [r.get("loss") for r in b]
    _, _, c, _ = _train(tmp_path, chat_data, name="c", max_steps=6, seed=7)
    assert [r.get("loss") for r in a] != [r.get("loss") for r in c]
