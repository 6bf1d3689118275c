"""torchrun with 2 CPU processes (gloo) equals 1 process with the same global batch, and writes files once."""
import json
import subprocess
import sys

import pytest

from tests.training.conftest import ROOT, core_env, read_metrics, run_train, tiny_config, write_config

pytestmark = pytest.mark.slow


def test_two_processes_match_one_with_same_global_batch(tmp_path, workspace, chat_data):
    env = {"ASSISTANT_FACTORY_HOME": str(workspace)}
    # Global batch 8 both ways: 2 processes x 4 x accumulation 1 == 1 process x 4 x accumulation 2.
    ddp_cfg = write_config(tmp_path / "ddp.json", tiny_config(chat_data, epochs=2, grad_accum=1, save_every=3))
    one_cfg = write_config(tmp_path / "one.json", tiny_config(chat_data, epochs=2, grad_accum=2, save_every=3))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "core", "train", "--config", str(ddp_cfg), "--run-id", "ddp"]
    ddp = subprocess.run(cmd, cwd=ROOT, env=core_env(env), capture_output=True, text=True, timeout=600)
    assert ddp.returncode == 0, ddp.stdout[-3000:] + ddp.stderr[-3000:]
    one = run_train("--config", str(one_cfg), "--run-id", "one", env=env)
    assert one.returncode == 0, one.stderr

    a, b = read_metrics(workspace / "runs" / "ddp"), read_metrics(workspace / "runs" / "one")
    assert [(r["step"], "loss" in r) for r in a] == [(r["step"], "loss" in r) for r in b]  # same steps, each once
    for ra, rb in zip(a, b):
        key = "loss" if "loss" in ra else "eval_loss"
        assert abs(ra[key] - rb[key]) <= 1e-4, (ra, rb)
    steps = [r["step"] for r in a if "loss" in r]
    assert steps == sorted(set(steps))  # rank 1 wrote no duplicate lines
    assert ddp.stdout.splitlines().count("ddp") == 1 and ddp.stdout.splitlines()[0] == "ddp"
    assert ddp.stdout.count("step 1/") == 1  # progress lines from rank 0 only
    status = json.loads((workspace / "runs" / "ddp" / "status.json").read_text())
    assert status["state"] == "completed" and status["world_size"] == 2
    assert (workspace / "runs" / "ddp" / "adapter" / "adapter.safetensors").exists()
    runs_dir = workspace / "runs" / "ddp"
    assert not [p for p in runs_dir.rglob("*") if ".tmp" in p.name]
