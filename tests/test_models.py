"""Base models: tiny models for tests, the embedded default with its safetensors cache, clear load errors."""
import time

import pytest
import torch

from core import models
from core.errors import ModelLoadError


@pytest.mark.parametrize("kind", models.TINY_MODELS)
def test_tiny_model_builds_generates_and_is_seeded(kind):
    model, tok = models.tiny_model(kind)
    enc = tok.apply_chat_template([{"role": "user", "content": "你好, hello"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    out = model.generate(**enc, max_new_tokens=6, do_sample=False, min_new_tokens=6, pad_token_id=tok.pad_token_id)
    assert out.shape == (1, enc["input_ids"].shape[1] + 6)
    again, _ = models.tiny_model(kind)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    other, _ = models.tiny_model(kind, seed=1)
    assert not torch.equal(next(other.parameters()), next(model.parameters()))


def test_tiny_tokenizer_round_trips_any_language():
    tok = models.tiny_tokenizer()
    text = "Refund 退款 — ça va? 🙂"
    assert tok.decode(tok(text)["input_ids"]) == text
    rendered = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_offline_hub_id_gets_actionable_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="local-dir|folder"):
        models.load_model("nobody-here/no-such-model-123")


def test_local_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="config.json"):
        models.load_model(str(tmp_path))


def test_missing_local_path_is_refused():
    with pytest.raises(ModelLoadError, match="does not exist"):
        models.resolve("./no/such/folder")


def test_local_folder_loads(tmp_path):
    model, tok = models.tiny_model("tiny-llama")
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    loaded, _ = models.load_model(str(tmp_path / "m"))
    ids = torch.tensor([[5, 6, 7]])
    assert torch.allclose(loaded(ids).logits, model(ids).logits, atol=1e-6)


@pytest.mark.slow
def test_default_model_answers_paris(default_model):
    model, tok = default_model
    answer = models.generate_reply(model, tok, "What is the capital of France?")
    print("answer:", answer)
    assert "Paris" in answer


@pytest.mark.slow
def test_cache_makes_second_load_fast_and_truncated_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_FACTORY_MODELS", str(tmp_path / "models"))
    conversions = []
    real_convert = models.convert_default_model
    monkeypatch.setattr(models, "convert_default_model", lambda *a, **k: conversions.append(1) or real_convert(*a, **k))
    steps = []
    t0 = time.perf_counter()
    models.load_model(progress=lambda f, m: steps.append(f))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    model, tok = models.load_model()
    second = time.perf_counter() - t0
    print(f"first load (GGUF conversion) {first:.1f} s, second load (safetensors cache) {second:.2f} s, "
          f"{first / second:.0f}x faster")
    assert conversions == [1], "the second load must come from the cache"
    assert steps[0] < steps[-1] == 1.0 and len(steps) >= 4, "the first conversion reports progress"
    assert first / second >= 5

    weights = models.cache_dir() / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as fh:  # a conversion killed half-way
        fh.truncate(size // 2)
    assert not models.cache_is_complete(models.cache_dir())
    model, tok = models.load_model()
    assert conversions == [1, 1] and weights.stat().st_size == size
    assert "Paris" in models.generate_reply(model, tok, "What is the capital of France?")


@pytest.mark.slow
def test_manifestless_cache_folder_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_FACTORY_MODELS", str(tmp_path / "models"))
    folder = models.cache_dir()
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{")  # half-written, no manifest
    assert models.ensure_default_model() == folder
    assert models.cache_is_complete(folder)


@pytest.mark.parametrize("damage", ["weights", "config"])
def test_local_folder_with_damaged_files_is_a_model_load_error(tmp_path, damage):
    model, tok = models.tiny_model("tiny-llama")
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    name = "model.safetensors" if damage == "weights" else "config.json"
    path = tmp_path / "m" / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(ModelLoadError, match="could not be loaded"):
        models.load_model(str(tmp_path / "m"))
