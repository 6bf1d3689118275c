"""core.checkpoints.usable_weights: which weights chat, evaluation and export may load for a run."""
import os

from safetensors.torch import load_file

from core import checkpoints as C
from core.fileio import atomic_write_json, read_json
from core.workspace import run_dir
from tests.training.conftest import stopped_run


def test_stopped_run_offers_its_newest_verified_checkpoint(tmp_path):
    folder = stopped_run(tmp_path)
    w = C.usable_weights("stopped-run")
    assert w == C.UsableWeights(folder / "checkpoints" / "step-3", 3, 8, False)
    assert w.describe() == "as of step 3 of 8"
    (folder / "checkpoints" / "step-3" / "peft.safetensors").write_bytes(b"\x00" * 10)
    assert C.usable_weights("stopped-run") == C.UsableWeights(folder / "checkpoints" / "step-2", 2, 8, False)


def test_loaded_checkpoint_weights_are_the_saved_ones(tmp_path):
    from core.models import tiny_model
    from core.peft import peft_state_dict

    folder = stopped_run(tmp_path)
    model, _ = tiny_model("tiny-llama")
    C.load_weights(model, C.usable_weights("stopped-run"), read_json(folder / "config.json"))
    saved = load_file(str(folder / "checkpoints" / "step-3" / "peft.safetensors"))
    got = peft_state_dict(model)
    assert set(got) == set(saved) and all((got[k] == saved[k]).all() for k in saved)


def test_completed_run_offers_its_final_adapter(tmp_path, chat_data):
    from core.training.config import TrainingConfig
    from core.training.trainer import AdvancedTrainer
    from tests.training.conftest import tiny_config

    folder = run_dir("done", create=True)
    cfg = TrainingConfig.from_dict(tiny_config(chat_data, max_steps=2))
    assert AdvancedTrainer(cfg, folder).train() == "completed"
    assert C.usable_weights("done") == C.UsableWeights(folder / "adapter", 2, 2, True)
    assert C.usable_weights("done").describe() == "final"


def test_active_or_empty_runs_offer_nothing(tmp_path):
    folder = stopped_run(tmp_path)
    atomic_write_json(folder / "status.json", {**read_json(folder / "status.json"), "state": "running",
                                               "pid": os.getpid(), "pid_started": None})
    assert C.usable_weights("stopped-run") is None  # still writing and pruning its checkpoints
    empty = run_dir("empty", create=True)
    atomic_write_json(empty / "status.json", {"state": "failed"})
    assert C.usable_weights("empty") is None


def test_resume_when_no_checkpoint_verifies_is_exit_2(tmp_path, capsys):
    from core.__main__ import main

    folder = stopped_run(tmp_path)
    for _, step_dir in C.step_dirs(folder):
        (step_dir / "optimizer.safetensors").unlink()
    capsys.readouterr()
    assert main(["train", "--resume", "stopped-run"]) == 2
    err = capsys.readouterr().err
    assert "No checkpoint of run 'stopped-run' can be resumed: step-3 (optimizer_missing)" in err
    assert "Traceback" not in err


def test_run_stopped_before_its_first_step_offers_nothing(tmp_path, chat_data):
    import pytest

    from core.chat import run_weights
    from core.errors import UserError
    from core.training.config import TrainingConfig
    from core.training.trainer import AdvancedTrainer
    from tests.training.conftest import tiny_config

    folder = run_dir("early", create=True)
    cfg = TrainingConfig.from_dict(tiny_config(chat_data, max_steps=4))
    cfg.save(folder / "config.json")
    trainer = AdvancedTrainer(cfg, folder)
    trainer.request_stop()  # arrives during the baseline validation
    assert trainer.train() == "stopped"
    assert [p.name for _, p in C.step_dirs(folder)] == ["step-0"]
    assert C.usable_weights("early") is None  # step 0 holds the base model's weights: nothing to chat with
    with pytest.raises(UserError, match="stopped before a usable checkpoint"):
        run_weights("early")


def test_verify_names_each_kind_of_damage(tmp_path):
    import json

    folder = stopped_run(tmp_path)
    step = folder / "checkpoints" / "step-3"
    assert C.verify(step) is None
    state = json.loads((step / "trainer_state.json").read_text())
    (step / "trainer_state.json").write_text(json.dumps({k: v for k, v in state.items() if k != "steps_per_epoch"}))
    assert C.verify(step) == "state_unreadable"  # a hostile or older file without what resume needs
    (step / "trainer_state.json").write_text(json.dumps(state))
    (step / "rng.safetensors").unlink()
    assert C.verify(step) == "rng_missing"
    (step / "trainer_state.json").unlink()
    assert C.verify(step) == "state_missing"
