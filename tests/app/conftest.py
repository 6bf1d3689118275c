"""AppTest helpers: open a page of the app in a language, seeded workspaces with a tiny model."""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
SAMPLE_CSV = ROOT / "assets" / "samples" / "support_faq_en.csv"
LANGS = ["en", "zh"]


def open_page(page: str, lang: str = "en", run: bool = True):
    """An AppTest of app.py switched to ``pages/<page>.py`` (or the home page) in ``lang``."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["lang"] = lang
    at.run()
    assert not at.exception, at.exception
    if page != "home":
        at.switch_page(f"pages/{page}.py")
        if run:
            at.run()
            assert not at.exception, at.exception
    return at


def texts(at) -> str:
    """Every visible text of an AppTest (markdown, titles, captions, alerts, labels) joined for searching."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success",
                 "text"):
        parts += [str(e.value) for e in getattr(at, kind)]
    for kind in ("button", "text_input", "text_area", "selectbox", "radio", "number_input", "checkbox", "toggle",
                 "slider", "multiselect"):
        parts += [str(e.label) for e in getattr(at, kind)]
    parts += [str(e.label) for e in at.get("tab")]
    parts += [str(e.proto.label) for e in at.get("expander")]
    return "\n".join(parts)


def write_project(home: Path, **fields) -> dict:
    """A project.json with a tiny base model (so no test loads SmolLM2)."""
    project = {"name": "Test Helper", "purpose": "support", "persona": "brief",
               "system_prompt": "You are a test helper.", "base_model": "tiny-llama", **fields}
    home.mkdir(parents=True, exist_ok=True)
    (home / "project.json").write_text(json.dumps(project), encoding="utf-8")
    return project


def seed_upload(home: Path) -> dict:
    """Copy the English sample into the workspace's uploads, as the upload page does."""
    folder = home / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "support_faq_en-seeded.csv"
    path.write_bytes(SAMPLE_CSV.read_bytes())
    return {"path": str(path), "display_name": "support_faq_en.csv", "format": None, "mapping": None}


def seed_dataset(home: Path, dataset_id: str = "demo-data", n: int = 40) -> Path:
    """A prepared dataset folder (the `datasets/<id>/` layout of docs/architecture.md) built from the sample CSV's first
    ``n`` rows."""
    with open(SAMPLE_CSV, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[:n]
    convs = [{"messages": [{"role": "user", "content": r["question"]}, {"role": "assistant", "content": r["answer"]}],
              "meta": {"row": i + 1}} for i, r in enumerate(rows)]
    folder = home / "datasets" / dataset_id
    (folder / "splits").mkdir(parents=True, exist_ok=True)
    (folder / "raw").mkdir(exist_ok=True)
    (folder / "raw" / "support_faq_en.csv").write_bytes(SAMPLE_CSV.read_bytes())
    cut1, cut2 = int(n * 0.8), int(n * 0.9)
    for split, part in (("train", convs[:cut1]), ("val", convs[cut1:cut2]), ("test", convs[cut2:])):
        (folder / "splits" / f"{split}.jsonl").write_text(
            "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in part), encoding="utf-8")
    (folder / "normalized.jsonl").write_text("".join(json.dumps(c) + "\n" for c in convs), encoding="utf-8")
    (folder / "meta.json").write_text(json.dumps({"rows_in": n, "format": "qa"}), encoding="utf-8")
    (folder / "quality.json").write_text(json.dumps({"score": 90}), encoding="utf-8")
    return folder


RUN_CONFIG = {"method": "lora", "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
              "train": {"epochs": 1, "max_steps": 4, "batch_size": 4, "max_seq_len": 256, "eval_every": 2,
                        "save_every": 2, "seed": 1}}


def seed_run_files(home: Path, run_id: str, state: str, steps: int = 6, error: str | None = None) -> Path:
    """A run folder as the trainer leaves it (status, metrics, log); no weights — for pages that only read files."""
    folder = home / "runs" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({**RUN_CONFIG, "model": "tiny-llama", "data": "x"}))
    (folder / "status.json").write_text(json.dumps(
        {"state": state, "pid": None, "step": steps, "total_steps": steps if state == "completed" else steps * 2,
         "heartbeat": time.time(), "error": error, "run_id": run_id}))
    lines = [{"step": s, "epoch": s / steps, "loss": 3.0 - 0.3 * s, "lr": 1e-3, "grad_norm": 1.0,
              "tokens_per_s": 500.0 + s, "elapsed_s": 2.0 * s, "eta_s": 2.0 * (steps - s)} for s in range(1, steps + 1)]
    lines.append({"step": steps, "eval_loss": 2.1, "eval_ppl": 8.2})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
    (folder / "train.log").write_text("loading model\nstep 1\nTraceback: boom\n" if state == "failed" else "ok\n")
    return folder


@pytest.fixture
def seeded(workspace):
    """Workspace with a project (tiny model), an upload, a prepared dataset and a run config."""
    upload = seed_upload(workspace)
    seed_dataset(workspace)
    write_project(workspace, upload=upload, active_dataset="demo-data", run_config=RUN_CONFIG)
    return workspace


@pytest.fixture
def trained_run(seeded):
    """A real tiny LoRA run trained in-process by the engine (skipped while the engine is incomplete)."""
    try:
        from core.data import load_split  # noqa: F401
        from core.training.cli import train_command  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"training engine not available yet: {exc}")
    from core.__main__ import main

    cfg = {**RUN_CONFIG, "model": "tiny-llama", "data": str(seeded / "datasets" / "demo-data"),
           "system_prompt": "You are a test helper."}
    path = seeded / "run.json"
    path.write_text(json.dumps(cfg))
    assert main(["train", "--config", str(path), "--run-id", "tiny-run"]) == 0
    project = json.loads((seeded / "project.json").read_text())
    project["active_run"] = "tiny-run"
    (seeded / "project.json").write_text(json.dumps(project))
    return "tiny-run"
