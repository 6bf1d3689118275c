"""Shared fixtures: a temporary workspace per test, one model cache per session, tiny models."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()
# One default-model cache for the whole session (and across sessions): converting takes ~30 s.
os.environ.setdefault("ASSISTANT_FACTORY_MODELS", str(ROOT / "workspace" / "models"))
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def workspace(tmp_path, monkeypatch) -> Path:
    """Every test gets an empty workspace of its own."""
    home = tmp_path / "workspace"
    monkeypatch.setenv("ASSISTANT_FACTORY_HOME", str(home))
    return home


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (real public datasets); tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(params=["tiny-llama", "tiny-gpt2"])
def tiny(request):
    """(model, tokenizer) for each tiny architecture, fresh per test."""
    from core.models import tiny_model

    return tiny_model(request.param)


@pytest.fixture(scope="session")
def default_model():
    """The real SmolLM2-135M-Instruct, loaded once per session."""
    from core.models import load_model

    return load_model("smollm2-135m-instruct")
