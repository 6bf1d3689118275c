"""``python -m core export RUN_ID --format adapter|peft|merged --out DIR`` on a run folder."""
import pytest
import torch

from core.__main__ import main
from core.peft import AdapterConfig, LoRAConfig, apply_peft, load_adapter, save_adapter
from core.fileio import atomic_write_json
from core.workspace import run_dir
from tests.peft.helpers import fresh, logits, right_padded_batch, train_steps


def make_run(run_id, kind, cfg):
    """A finished run as the trainer leaves it: config.json and adapter/."""
    model, tok = fresh(kind)
    apply_peft(model, cfg)
    batch = right_padded_batch(tok)
    train_steps(model, batch, steps=2)
    folder = run_dir(run_id, create=True)
    atomic_write_json(folder / "config.json", {"model": kind, "method": cfg.method, cfg.method: cfg.to_dict()})
    save_adapter(model, folder / "adapter")
    return model, batch


@pytest.mark.parametrize("kind", ["tiny-llama", "tiny-gpt2"])
def test_export_merged_is_a_standalone_model(kind, tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, batch = make_run("run-1", kind, LoRAConfig(r=4, alpha=8, target_modules="all-linear", use_dora=True))
    assert main(["export", "run-1", "--format", "merged", "--out", str(tmp_path / "m")]) == 0
    assert str(tmp_path / "m") in capsys.readouterr().out
    assert (tmp_path / "m" / "model.safetensors").exists()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "m").eval()
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert (logits(merged, batch) - logits(model, batch)).abs().max().item() < 1e-5
    assert AutoTokenizer.from_pretrained(tmp_path / "m").chat_template


def test_export_peft_and_adapter(tmp_path):
    peft = pytest.importorskip("peft")
    model, batch = make_run("run-2", "tiny-llama", LoRAConfig(r=4, alpha=8))
    assert main(["export", "run-2", "--format", "peft", "--out", str(tmp_path / "p")]) == 0
    loaded = peft.PeftModel.from_pretrained(fresh("tiny-llama")[0], str(tmp_path / "p")).eval()
    assert (logits(loaded, batch) - logits(model, batch)).abs().max().item() < 1e-5
    assert main(["export", "run-2", "--format", "adapter", "--out", str(tmp_path / "a")]) == 0
    again = load_adapter(fresh("tiny-llama")[0], tmp_path / "a")
    assert torch.equal(logits(again, batch), logits(model, batch))


def test_non_lora_runs_cannot_be_merged_or_peft_exported(tmp_path, capsys):
    make_run("run-3", "tiny-gpt2", AdapterConfig(bottleneck=4))
    assert main(["export", "run-3", "--format", "merged", "--out", str(tmp_path / "m")]) == 2
    assert "only available for LoRA" in capsys.readouterr().err
    assert main(["export", "run-3", "--format", "peft", "--out", str(tmp_path / "p")]) == 2
    assert "LoRA only" in capsys.readouterr().err
    assert not (tmp_path / "m").exists() and not (tmp_path / "p").exists()
    assert main(["export", "run-3", "--format", "adapter", "--out", str(tmp_path / "a")]) == 0


def test_freeze_run_merged_export_saves_the_model(tmp_path):
    from transformers import AutoModelForCausalLM

    from core.peft import FreezeConfig

    model, batch = make_run("run-4", "tiny-llama", FreezeConfig(trainable_layers=1))
    assert main(["export", "run-4", "--format", "merged", "--out", str(tmp_path / "m")]) == 0
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "m").eval()
    assert torch.equal(logits(saved, batch), logits(model, batch))


def test_unknown_run_and_unfinished_run(tmp_path, capsys):
    assert main(["export", "nope", "--format", "adapter", "--out", str(tmp_path / "x")]) == 2
    assert "not found" in capsys.readouterr().err
    folder = run_dir("run-5", create=True)
    atomic_write_json(folder / "config.json", {"model": "tiny-llama", "method": "lora"})
    assert main(["export", "run-5", "--format", "merged", "--out", str(tmp_path / "x")]) == 2
    assert "no trained adapter yet" in capsys.readouterr().err


def test_out_inside_the_run_or_onto_a_file_is_refused(tmp_path, capsys):
    make_run("run-6", "tiny-llama", LoRAConfig(r=4, alpha=8))
    adapter = run_dir("run-6") / "adapter"
    before = {p.name: p.read_bytes() for p in adapter.iterdir()}
    for out in (adapter, run_dir("run-6") / "checkpoints" / "x", run_dir("run-6")):
        assert main(["export", "run-6", "--format", "adapter", "--out", str(out)]) == 2
        assert "inside (or holds) the run's own folder" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in adapter.iterdir()} == before
    (tmp_path / "file.txt").write_text("keep me")
    assert main(["export", "run-6", "--format", "peft", "--out", str(tmp_path / "file.txt")]) == 2
    err = capsys.readouterr().err
    assert "is an existing file" in err and "Traceback" not in err
    assert (tmp_path / "file.txt").read_text() == "keep me"


def test_non_empty_out_needs_force_and_is_then_replaced(tmp_path, capsys):
    make_run("run-7", "tiny-llama", LoRAConfig(r=4, alpha=8))
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    assert main(["export", "run-7", "--format", "adapter", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and (out / "old.txt").exists()
    assert main(["export", "run-7", "--format", "adapter", "--out", str(out), "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["adapter.safetensors", "adapter_config.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_app_export_area_is_regenerated_without_force(tmp_path):
    make_run("run-8", "tiny-llama", LoRAConfig(r=4, alpha=8))
    out = run_dir("run-8") / "export" / "adapter"
    assert main(["export", "run-8", "--format", "adapter", "--out", str(out)]) == 0
    assert main(["export", "run-8", "--format", "adapter", "--out", str(out)]) == 0


def test_stopped_run_exports_its_last_verified_checkpoint(tmp_path, capsys):
    from safetensors.torch import load_file

    from tests.training.conftest import stopped_run

    folder = stopped_run(tmp_path)
    capsys.readouterr()
    assert main(["export", "stopped-run", "--format", "adapter", "--out", str(tmp_path / "a")]) == 0
    assert "as of step 3 of 8" in capsys.readouterr().err
    loaded = load_adapter(fresh("tiny-llama")[0], tmp_path / "a")
    saved = load_file(str(folder / "checkpoints" / "step-3" / "peft.safetensors"))
    from core.peft import peft_state_dict
    assert all(torch.equal(v, saved[k]) for k, v in peft_state_dict(loaded).items())
    assert main(["export", "stopped-run", "--format", "merged", "--out", str(tmp_path / "m")]) == 0


def test_truncated_adapter_export_is_exit_2(tmp_path, capsys):
    make_run("run-9", "tiny-llama", LoRAConfig(r=4, alpha=8))
    weights = run_dir("run-9") / "adapter" / "adapter.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    assert main(["export", "run-9", "--format", "peft", "--out", str(tmp_path / "p")]) == 2
    assert "damaged or incomplete" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
