"""The trainer never reports what did not happen: learning, checkpoints it resumes from, validation progress, ETA."""
import errno
import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from core import checkpoints as C
from core.errors import UserError
from core.fileio import read_jsonl
from core.training import trainer as trainer_mod
from core.training.config import TrainingConfig
from core.training.monitor import TrainingMetrics
from core.training.optim import SmartOptimizer
from core.training.trainer import AdvancedTrainer
from tests.training.conftest import make_chat_data, tiny_config


def _cfg(data, **train):
    return TrainingConfig.from_dict(tiny_config(data, **train))


def _status(run):
    return json.loads((run / "status.json").read_text())


def _nan_training_loss(monkeypatch):
    real = trainer_mod.causal_lm_loss

    def fake(model, batch):
        loss, n = real(model, batch)
        return (loss * float("nan") if torch.is_grad_enabled() else loss), n

    monkeypatch.setattr(trainer_mod, "causal_lm_loss", fake)


# ---------------------------------------------------------------- 1. completed only if it learned
def test_run_whose_every_step_was_non_finite_fails_even_below_patience(tmp_path, chat_data, monkeypatch):
    _nan_training_loss(monkeypatch)
    run = tmp_path / "run"
    state = AdvancedTrainer(_cfg(chat_data, max_steps=3, nonfinite_patience=50), run).train()
    st = _status(run)
    assert state == "failed" and st["state"] == "failed"
    assert st["failure"] == {"code": "no_finite_step", "params": {"steps": 3}}
    assert "No optimizer step was applied" in st["error"]
    assert not (run / "adapter").exists()


def test_non_finite_weights_at_the_end_fail_and_are_never_checkpointed(tmp_path, chat_data, monkeypatch):
    real_step = SmartOptimizer.step

    def poisoned(self, step):
        lr = real_step(self, step)
        if step + 1 >= 3:  # from optimizer step 3 on, the weights hold NaN
            with torch.no_grad():
                self.params[0].fill_(float("nan"))
        return lr

    monkeypatch.setattr(SmartOptimizer, "step", poisoned)
    run = tmp_path / "run"
    state = AdvancedTrainer(_cfg(chat_data, max_steps=4, save_every=2), run).train()
    st = _status(run)
    assert state == "failed" and st["failure"]["code"] == "nonfinite_weights"
    assert [p.name for _, p in C.step_dirs(run)] == ["step-2"]  # the NaN step-4 did not replace the good one
    assert C.verify(run / "checkpoints" / "step-2") is None
    assert not (run / "adapter").exists()


# ---------------------------------------------------------------- 2. verified checkpoints, fallback on resume
def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _nan_weights(path):
    sd = load_file(str(path))
    sd[next(iter(sd))].fill_(float("nan"))
    save_file(sd, str(path))


DAMAGE = {
    "weights_unreadable": lambda d: _truncate(d / "peft.safetensors"),
    "state_unreadable": lambda d: _truncate(d / "trainer_state.json"),
    "optimizer_missing": lambda d: (d / "optimizer.safetensors").unlink(),
    "weights_nonfinite": lambda d: _nan_weights(d / "peft.safetensors"),
}


@pytest.fixture
def two_checkpoints(tmp_path, chat_data):
    """A completed 6-step run with verified checkpoints step-3 and step-6, and its metrics."""
    run = tmp_path / "run"
    cfg = _cfg(chat_data, max_steps=6, save_every=3, keep_checkpoints=3, eval_every=100)
    assert AdvancedTrainer(cfg, run).train() == "completed"
    return cfg, run, [r for r in read_jsonl(run / "metrics.jsonl") if "loss" in r]


@pytest.mark.parametrize("problem", sorted(DAMAGE))
def test_resume_falls_back_to_the_previous_verified_checkpoint(two_checkpoints, problem, capsys):
    cfg, run, first = two_checkpoints
    DAMAGE[problem](run / "checkpoints" / "step-6")
    assert C.verify(run / "checkpoints" / "step-6") == problem
    capsys.readouterr()
    assert AdvancedTrainer(cfg, run, resume=True).train() == "completed"
    st = _status(run)
    assert st["notes"] == [{"code": "resume_fallback",
                            "params": {"skipped": "step-6", "why": problem, "used": "step-3"}}]
    assert "checkpoint step-6 is damaged" in capsys.readouterr().out
    again = [r for r in read_jsonl(run / "metrics.jsonl") if "loss" in r]
    assert [r["loss"] for r in again] == [r["loss"] for r in first]  # steps 4-6 redone exactly
    assert C.verify(run / "checkpoints" / "step-6") is None


def test_resume_with_no_verified_checkpoint_is_a_user_error(two_checkpoints):
    cfg, run, _ = two_checkpoints
    DAMAGE["weights_unreadable"](run / "checkpoints" / "step-6")
    DAMAGE["optimizer_missing"](run / "checkpoints" / "step-3")
    with pytest.raises(UserError, match="No checkpoint of run 'run' can be resumed: step-6 .*step-3"):
        AdvancedTrainer(cfg, run, resume=True).train()
    assert _status(run)["failure"]["code"] == "user_error"


def test_disk_full_while_saving_leaves_the_previous_checkpoint_newest(tmp_path, chat_data, monkeypatch):
    calls = {"n": 0}
    real = C.save_file

    def full_after_first_checkpoint(tensors, path, *a, **k):
        calls["n"] += 1
        if calls["n"] > 3:  # one checkpoint is three safetensors files
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, path, *a, **k)

    monkeypatch.setattr(C, "save_file", full_after_first_checkpoint)
    run = tmp_path / "run"
    with pytest.raises(UserError, match="disk is full"):
        AdvancedTrainer(_cfg(chat_data, max_steps=4, save_every=2), run).train()
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-2"]  # no half-written folder left
    assert C.verify(C.latest_checkpoint(run)) is None
    assert _status(run)["state"] == "failed" and _status(run)["failure"]["code"] == "disk_full"


def test_disk_full_while_logging_metrics_is_a_user_error(tmp_path, chat_data, monkeypatch):
    from core.training import monitor as monitor_mod

    real = monitor_mod.append_jsonl
    calls = {"n": 0}

    def full_soon(path, record):
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, record)

    monkeypatch.setattr(monitor_mod, "append_jsonl", full_soon)
    run = tmp_path / "run"
    with pytest.raises(UserError, match="disk is full.*Free some space"):
        AdvancedTrainer(_cfg(chat_data, max_steps=4), run).train()
    assert _status(run)["failure"]["code"] == "disk_full"


# ---------------------------------------------------------------- 4. validation: progress, bound, sampled baseline
def test_validation_is_bounded_sampled_first_and_reports_progress(tmp_path, monkeypatch):
    data = make_chat_data(tmp_path / "big.jsonl", n=800)  # 80 validation conversations
    run = tmp_path / "run"
    seen = []
    real = trainer_mod.causal_lm_loss

    def spy(model, batch):
        if not torch.is_grad_enabled():
            st = _status(run)
            seen.append((st["phase"], st["eval_batch"], st["eval_batches"], st["step"]))
        return real(model, batch)

    monkeypatch.setattr(trainer_mod, "causal_lm_loss", spy)
    cfg = _cfg(data, max_steps=2, eval_every=2, max_eval_examples=None, eval_batch_size=8)
    assert AdvancedTrainer(cfg, run).train() == "completed"
    evals = [r for r in read_jsonl(run / "metrics.jsonl") if "eval_loss" in r]
    assert [(r["step"], r["eval_examples"]) for r in evals] == [(0, 16), (2, 64)]
    assert seen == [("eval", i, 2, 0) for i in (1, 2)] + [("eval", i, 8, 2) for i in range(1, 9)]
    st = _status(run)
    assert {"code": "first_eval_sampled", "params": {"examples": 16, "of": 64}} in st["notes"]
    assert st["phase"] is None and st["eval_batch"] is None


# ---------------------------------------------------------------- 5. ETA counts validations still to run
def test_eta_counts_remaining_steps_and_validation_passes(monkeypatch):
    clock = {"t": 100.0}
    monkeypatch.setattr("core.training.monitor.time.perf_counter", lambda: clock["t"])
    m = TrainingMetrics(10, eval_steps=[5, 10])
    assert m.eta(0) is None  # nothing measured yet: no invented number
    clock["t"] += 4.0  # a validation pass over half the set took 4 s -> a full pass 8 s
    m.record_eval(4.0, 0.5)
    for step in (1, 2):
        clock["t"] += 2.0
        rec = m.record(step, 0.0, 1.0, 1e-3, 1.0, 100)
    assert rec["eta_s"] == pytest.approx(8 * 2.0 + 2 * 8.0)
    assert m.eta(5) == pytest.approx(5 * 2.0 + 1 * 8.0)


# ---------------------------------------------------------------- 6. speed honesty
def test_slow_steps_are_reported_with_the_machine_load(tmp_path, chat_data):
    cfg = _cfg(chat_data, max_steps=4, eval_every=100)
    cfg.train.expected_step_s = 1e-6  # no real step is that fast
    run = tmp_path / "run"
    AdvancedTrainer(cfg, run).train()
    slow = _status(run)["slow"]
    assert slow["ratio"] > 1.5 and slow["expected_step_s"] == 1e-6
    assert slow["measured_step_s"] > 0 and 0 <= slow["other_cpu_pct"] <= 100


def test_no_slow_flag_without_an_expectation(tmp_path, chat_data):
    run = tmp_path / "run"
    AdvancedTrainer(_cfg(chat_data, max_steps=4, eval_every=100), run).train()
    assert _status(run)["slow"] is None


# ---------------------------------------------------------------- 7. the test-only delay
def test_step_delay_is_read_once_and_must_be_a_number(tmp_path, chat_data, monkeypatch):
    monkeypatch.setenv(trainer_mod.DEBUG_DELAY_ENV, "0.25")
    trainer = AdvancedTrainer(_cfg(chat_data), tmp_path / "run")
    monkeypatch.setenv(trainer_mod.DEBUG_DELAY_ENV, "0")
    assert trainer.step_delay == 0.25
    monkeypatch.setenv(trainer_mod.DEBUG_DELAY_ENV, "soon")
    with pytest.raises(UserError, match="AF_DEBUG_STEP_DELAY"):
        AdvancedTrainer(_cfg(chat_data), tmp_path / "run2")


def test_finite_losses_still_complete(tmp_path, chat_data):
    run = tmp_path / "run"
    assert AdvancedTrainer(_cfg(chat_data, max_steps=2), run).train() == "completed"
    st = _status(run)
    assert st["failure"] is None and st["phase"] is None and math.isfinite(st["loss"])
