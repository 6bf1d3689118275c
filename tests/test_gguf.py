"""``python -m core export RUN_ID --format gguf``: the GGUF loads back through transformers' GGUF loader with the
merged model's logits, carries the tokenizer, chat template and system prompt, and sits beside an Ollama Modelfile."""
from __future__ import annotations

import pytest
import torch

from core.__main__ import main
from core.fileio import atomic_write_json
from core.peft import LoRAConfig, PrefixConfig, apply_peft, save_adapter
from core.workspace import run_dir
from tests.peft.helpers import fresh, right_padded_batch, train_steps

SYSTEM = "You are Lumen, the help desk of Contoso. Answer in one sentence."
QUESTIONS = [
    "How do I reset my password?", "What are your opening hours?", "Can I return a laptop after 30 days?",
    "Where is my order #12345?", "Do you ship to Canada?", "My screen flickers, what should I do?",
    "How much does the premium plan cost?", "Can I pay with PayPal?", "Is there a student discount?",
    "How do I cancel my subscription?", "我的订单什么时候到？", "请问如何修改收货地址？", "Who are you?",
    "Tell me a joke.", "What is 17 * 3?", "Translate 'hello' into French.", "Is the store open on Sunday?",
    "I forgot my username.", "Can I talk to a human?", "Thanks, bye!",
]
F16_REL_TOL = 1e-2  # max |logit diff| / max |logit|: float16 weights (measured: tiny 3e-4, SmolLM2 8e-4)
F16_SAME = 19  # of the 20 prompts, at least this many keep their greedy next token under f16 (measured: 20)
Q8_SAME = 18  # ... and under q8_0, i.e. >= 90% (measured: tiny 20, SmolLM2 18: two prompts have near-tied top-2)


def make_run(run_id: str, model, cfg, kind: str) -> None:
    """A finished run folder (config.json with a system prompt, adapter/) for an already-adapted model."""
    folder = run_dir(run_id, create=True)
    atomic_write_json(folder / "config.json", {"model": kind, "method": cfg.method, cfg.method: cfg.to_dict(),
                                               "system_prompt": SYSTEM})
    save_adapter(model, folder / "adapter")


def trained_lora_run(run_id: str = "run-g"):
    """A tiny-llama LoRA (all linear layers, DoRA) trained a few steps: its B matrices are non-zero."""
    model, tok = fresh("tiny-llama")
    cfg = LoRAConfig(r=4, alpha=8, target_modules="all-linear", use_dora=True)
    apply_peft(model, cfg)
    train_steps(model, right_padded_batch(tok), steps=3)
    make_run(run_id, model, cfg, "tiny-llama")
    return model, tok


def prompts(tok) -> list[torch.Tensor]:
    """The 20 questions in the chat format with the run's system prompt, as (1, n) id tensors."""
    rows = [tok.apply_chat_template([{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}],
                                    add_generation_prompt=True, tokenize=False) for q in QUESTIONS]
    return [torch.tensor([tok(r, add_special_tokens=False)["input_ids"]]) for r in rows]


def same_greedy(got: torch.Tensor, ref: torch.Tensor) -> int:
    """How many prompts keep their greedy next token (an int: 18/20 as a float32 share is below 0.9)."""
    return int((got.argmax(-1) == ref.argmax(-1)).sum())


def last_logits(model, batches) -> torch.Tensor:
    """(20, vocab) next-token logits, one prompt at a time (no padding)."""
    with torch.no_grad():
        return torch.cat([model(input_ids=ids).logits[:, -1].float() for ids in batches])


def export_and_load(run_id: str, out, quant: str):
    """Run the CLI export, then load the GGUF back with transformers: (path, model, tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert main(["export", run_id, "--format", "gguf", "--quant", quant, "--out", str(out)]) == 0
    files = sorted(out.glob("*.gguf"))
    assert [f.name for f in files] == [f"{run_id}-{quant}.gguf"]
    model = AutoModelForCausalLM.from_pretrained(out, gguf_file=files[0].name, dtype=torch.float32).eval()
    return files[0], model, AutoTokenizer.from_pretrained(out, gguf_file=files[0].name)


def test_f16_and_q8_0_match_the_merged_lora_model(tmp_path):
    model, tok = trained_lora_run()
    batches = prompts(tok)
    ref = last_logits(model, batches)
    path16, g16, _ = export_and_load("run-g", tmp_path / "f16", "f16")
    got = last_logits(g16, batches)
    assert (got - ref).abs().max().item() <= F16_REL_TOL * ref.abs().max().item()
    assert same_greedy(got, ref) >= F16_SAME
    path8, g8, _ = export_and_load("run-g", tmp_path / "q8", "q8_0")
    assert same_greedy(last_logits(g8, batches), ref) >= Q8_SAME
    assert path8.stat().st_size < path16.stat().st_size


def test_tensor_layout_follows_llama_cpp(tmp_path):
    import gguf
    import numpy as np

    from core.gguf import _permute

    model, _ = trained_lora_run()
    assert main(["export", "run-g", "--format", "gguf", "--out", str(tmp_path / "g")]) == 0
    reader = gguf.GGUFReader(tmp_path / "g" / "run-g-f16.gguf")
    tensors = {t.name: t for t in reader.tensors}
    per_block = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
                 "ffn_down"}
    expected = {"token_embd.weight", "output_norm.weight"} | {f"blk.{i}.{n}.weight" for i in (0, 1) for n in per_block}
    assert set(tensors) == expected  # tied embeddings: no output.weight
    assert tensors["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert tensors["blk.0.attn_k.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    from core.peft.io import merge_lora
    merge_lora(model)
    k = model.model.layers[0].self_attn.k_proj.weight.detach().numpy()
    stored = np.asarray(tensors["blk.0.attn_k.weight"].data, dtype=np.float32)
    assert np.abs(stored - _permute(k, 4, 2)).max() < 1e-3  # rows in llama.cpp's interleaved RoPE order
    assert np.abs(stored - k).max() > 1e-2  # and that order differs from HF's


def test_tokenizer_template_and_system_prompt_survive(tmp_path):
    import gguf

    _, tok = trained_lora_run()
    path, _, gtok = export_and_load("run-g", tmp_path / "g", "f16")
    for text in ("Hello, world!", "  two spaces\nand a newline", "你好，世界。请问如何修改收货地址？",
                 "<|im_start|>user\nhi<|im_end|>", "emoji 🙂 ok"):
        ids = tok(text)["input_ids"]
        assert gtok(text)["input_ids"] == ids
        assert gtok.decode(ids) == text
    assert gtok.chat_template == tok.chat_template
    assert (gtok.bos_token_id, gtok.eos_token_id, gtok.pad_token_id) == (tok.bos_token_id, tok.eos_token_id,
                                                                         tok.pad_token_id)
    fields = gguf.GGUFReader(path).fields
    assert fields["tokenizer.ggml.model"].contents() == "gpt2"
    assert fields["assistant_factory.system_prompt"].contents() == SYSTEM
    assert SYSTEM in fields["general.description"].contents()
    modelfile = (path.parent / "Modelfile").read_text()
    assert modelfile.startswith(f"FROM ./{path.name}\n")
    assert f'SYSTEM """{SYSTEM}"""' in modelfile
    assert "TEMPLATE" in modelfile and "<|im_start|>{{ .Role }}" in modelfile and "{{ .System }}" in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile


def test_unmergeable_method_and_other_architectures_exit_2(tmp_path, capsys):
    model, _ = fresh("tiny-llama")
    cfg = PrefixConfig(num_virtual_tokens=3, projection_dim=0)
    apply_peft(model, cfg)
    make_run("run-p", model, cfg, "tiny-llama")
    assert main(["export", "run-p", "--format", "gguf", "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "'prefix'" in err and "Traceback" not in err
    gpt2, _ = fresh("tiny-gpt2")
    lora = LoRAConfig(r=4, alpha=8, target_modules=("c_attn",))
    apply_peft(gpt2, lora)
    make_run("run-2", gpt2, lora, "tiny-gpt2")
    assert main(["export", "run-2", "--format", "gguf", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "Llama-architecture" in err and "'gpt2'" in err and "Traceback" not in err
    assert main(["export", "run-2", "--format", "merged", "--quant", "q8_0", "--out", str(tmp_path / "m")]) == 2
    assert "--quant applies to --format gguf only" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in ("p", "x", "m"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind


@pytest.mark.slow
def test_smollm2_lora_gguf_matches(tmp_path, capsys):
    from core.defaults import DEFAULT_MODEL
    from core.models import load_model

    model, tok = load_model(DEFAULT_MODEL)  # our own copy: the session's default_model must stay un-adapted
    cfg = LoRAConfig(r=8, alpha=16, target_modules=("q_proj", "k_proj", "v_proj", "o_proj"))
    torch.manual_seed(0)  # the same LoRA A and B in every run: the q8_0 agreement is measured on these
    apply_peft(model, cfg)
    with torch.no_grad():  # a random LoRA: B is zero at init, which would test nothing
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    make_run("run-s", model, cfg, DEFAULT_MODEL)
    batches = prompts(tok)
    ref = last_logits(model, batches)
    for quant in ("f16", "q8_0"):
        path, loaded, gtok = export_and_load("run-s", tmp_path / quant, quant)
        got = last_logits(loaded, batches)
        same = same_greedy(got, ref)
        rel = (got - ref).abs().max().item() / ref.abs().max().item()
        with capsys.disabled():
            print(f"\nSmolLM2 LoRA {quant}: {path.stat().st_size} bytes, same greedy token {same}/20, "
                  f"max |diff| / max |logit| {rel:.4f}")
        assert same >= (F16_SAME if quant == "f16" else Q8_SAME)
        if quant == "f16":
            assert rel <= F16_REL_TOL
        assert gtok("Hello 你好 <|im_end|>")["input_ids"] == tok("Hello 你好 <|im_end|>")["input_ids"]
