"""Shared helpers for the training tests: a tiny learnable chat dataset, run configs, `python -m core train` runners."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]


def make_chat_data(path: Path, n: int = 48, seed: int = 0) -> Path:
    """A learnable pattern: the user gives a code 0-5, the assistant answers its word three times."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(n):
            k = rng.randrange(len(WORDS))
            conv = {"messages": [{"role": "user", "content": f"code {k}"},
                                 {"role": "assistant", "content": " ".join([WORDS[k]] * 3)}]}
            fh.write(json.dumps(conv) + "\n")
    return path


def tiny_config(data: Path, **train) -> dict:
    """A fast run config on tiny-llama with LoRA (dropout on, so RNG restore matters for exact resume)."""
    base = {"epochs": 2, "batch_size": 4, "max_seq_len": 128, "lr": 5e-2, "warmup_ratio": 0.1, "eval_every": 5,
            "save_every": 4, "seed": 1, "max_eval_examples": 8, "keep_checkpoints": 2,
            "packing": True}  # the packed path is the one with most to get wrong: resume, DDP, masks
    base.update(train)
    return {"model": "tiny-llama", "data": str(data), "method": "lora", "system_prompt": "Map codes.",
            "lora": {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]}, "train": base}


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(json.dumps(cfg))
    return path


def core_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env.pop("AF_DEBUG_STEP_DELAY", None)
    env.setdefault("OMP_NUM_THREADS", "1")  # tiny models: one thread each is fastest on a shared CPU
    env.update(extra or {})
    return env


def train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "core", "train", *args]


def run_train(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m core train ...` to the end."""
    return subprocess.run(train_cmd(*args), cwd=ROOT, env=core_env(env), capture_output=True, text=True,
                          timeout=timeout)


def read_metrics(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines if x.strip()]


def wait_for(predicate, timeout: float = 120, every: float = 0.1, what: str = "condition"):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def chat_data(tmp_path) -> Path:
    return make_chat_data(tmp_path / "pattern.jsonl")


def stopped_run(tmp_path: Path, run_id: str = "stopped-run", stop_at: int = 3, max_steps: int = 8) -> Path:
    """A real run in the workspace that trained ``stop_at`` of ``max_steps`` steps and was stopped (checkpoints
    step-2 and step-``stop_at``, no adapter), as `python -m core train` + Stop leaves it."""
    from core.training.config import TrainingConfig
    from core.training.trainer import AdvancedTrainer
    from core.workspace import run_dir

    data = make_chat_data(tmp_path / f"{run_id}.jsonl")
    cfg = TrainingConfig.from_dict(tiny_config(data, max_steps=max_steps, save_every=2, eval_every=100,
                                               keep_checkpoints=3))
    folder = run_dir(run_id, create=True)
    cfg.save(folder / "config.json")
    trainer = AdvancedTrainer(cfg, folder, run_id=run_id)
    real_step = trainer._train_step

    def step_then_stop(micro):
        out = real_step(micro)
        if trainer.step >= stop_at:
            trainer.request_stop()
        return out

    trainer._train_step = step_then_stop
    assert trainer.train() == "stopped"
    return folder
