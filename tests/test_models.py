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


# ---------------------------------------------------------------- choosing a model: facts, cache scan, templates
def _save(folder, family="qwen2", template=True):
    from tests.families.builders import family_model

    model, tok = family_model(family)
    if not template:
        tok.chat_template = None
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return model


def test_describe_reads_size_family_context_and_template_without_weights(tmp_path, monkeypatch):
    model = _save(tmp_path / "qwen")
    monkeypatch.setattr("transformers.AutoModelForCausalLM.from_pretrained",
                        lambda *a, **k: pytest.fail("describe_model must not load the weights"))
    facts = models.describe_model(str(tmp_path / "qwen"))
    assert facts["family"] == "qwen2" and facts["context"] == model.config.max_position_embeddings
    assert facts["params"] == sum(p.numel() for p in model.parameters()) and facts["has_chat_template"]
    assert facts["source"] == "local"


def test_hf_cache_scan_lists_causal_lms_only(tmp_path, monkeypatch):
    hub = tmp_path / "hf" / "hub"
    _save(hub / "models--acme--tiny-qwen" / "snapshots" / "abc123")
    (hub / "models--acme--encoder" / "snapshots" / "r1").mkdir(parents=True)
    (hub / "models--acme--encoder" / "snapshots" / "r1" / "config.json").write_text(
        '{"architectures": ["BertModel"]}')
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    found = models.scan_hf_cache()
    assert [m["id"] for m in found] == ["acme/tiny-qwen"]
    assert found[0]["path"].endswith("abc123")


def test_model_without_template_is_refused_until_one_is_chosen(tmp_path):
    from core.chat_template import prompt_ids

    folder = str(tmp_path / "base")
    _save(folder, template=False)
    assert not models.describe_model(folder)["has_chat_template"]
    with pytest.raises(ModelLoadError, match="no chat template.*chatml, llama3, plain"):
        models.load_model(folder)
    models.choose_chat_template(folder, "llama3")
    facts = models.describe_model(folder)
    assert facts["has_chat_template"] and facts["chosen_template"] == "llama3" and not facts["own_chat_template"]
    model, tok = models.load_model(folder)
    ids = prompt_ids(tok, [{"role": "user", "content": "hi"}])
    assert tok.convert_tokens_to_ids("<|eot_id|>") in ids, "the chosen template's markers are single tokens"
    assert model.get_input_embeddings().num_embeddings >= len(tok)
    with torch.no_grad():
        assert torch.isfinite(model(torch.tensor([ids])).logits).all()
    with pytest.raises(ModelLoadError, match="Unknown chat template"):
        models.choose_chat_template(folder, "vicuna")
    # an adapter does not save the marker tokens' rows: every load must rebuild the same ones
    again, _ = models.load_model(folder)
    assert torch.equal(again.get_input_embeddings().weight, model.get_input_embeddings().weight)


def test_models_verb_lists_facts_and_chooses_a_template(tmp_path, capsys):
    from core.__main__ import main

    folder = str(tmp_path / "base")
    _save(folder, family="gpt_neox", template=False)
    assert main(["models", "--model", folder]) == 0
    out = capsys.readouterr().out
    assert "smollm2" in out.lower() and "gpt_neox" in out and "NONE (choose with --chat-template)" in out
    assert main(["models", "--model", folder, "--chat-template", "chatml"]) == 0
    assert models.template_choices()[folder] == "chatml"
    assert main(["models", "--chat-template", "plain"]) == 2  # which model? says so, exit 2
