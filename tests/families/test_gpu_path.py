"""The device choice and precision policy; the CUDA paths themselves run only where a GPU is (skipped here)."""
import pytest
import torch

from core import device as D
from core.errors import UserError
from core.training import loss as L

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_auto_is_the_cpu_here_with_float32_and_every_cpu_trick(monkeypatch):
    monkeypatch.delenv(D.DEVICE_ENV, raising=False)
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    dev = D.choose_device()
    assert dev.type in ("cpu", "mps")
    assert D.autocast_dtype(torch.device("cpu")) is None and D.grad_scaler(torch.device("cpu"), None) is None
    assert D.cpu_tricks(torch.device("cpu")) == D.CPU_TRICKS and D.cpu_tricks(torch.device("cuda")) == ()


def test_asking_for_a_missing_gpu_or_an_unknown_device_says_what_to_do(monkeypatch):
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            D.choose_device("cuda")
    monkeypatch.setenv(D.DEVICE_ENV, "tpu")
    with pytest.raises(UserError, match="auto, cuda, mps, cpu"):
        D.choose_device()
    monkeypatch.setenv(D.DEVICE_ENV, "cpu")
    assert D.choose_device() == torch.device("cpu") == D.choose_device("auto")


def test_unpadding_is_a_cpu_only_trick(monkeypatch):
    monkeypatch.setattr(L, "UNPAD_MIN_ROW_TOKENS", 1)
    monkeypatch.setattr(L, "UNPAD_MIN_PADDING", 1.0)
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 4:] = 0
    from core.models import tiny_model

    model = tiny_model("tiny-llama")[0]
    assert L._unpaddable(model, {"attention_mask": mask})  # noqa: SLF001 - the switch under test
    monkeypatch.setattr(D, "cpu_tricks", lambda dev: ())  # what CUDA gets
    assert not L._unpaddable(model, {"attention_mask": mask})


def test_gpu_memory_estimate_adds_up_and_halves_activations_in_bf16():
    from core.strategy.arch import arch_of
    from core.models import tiny_model

    arch = arch_of(tiny_model("tiny-llama")[0].config)
    fp32 = D.gpu_memory_estimate(arch, 1000, 10, 512, None)
    bf16 = D.gpu_memory_estimate(arch, 1000, 10, 512, torch.bfloat16)
    assert fp32["total"] == sum(v for k, v in fp32.items() if k != "total")
    assert bf16["activations"] * 2 == fp32["activations"] and bf16["weights"] == fp32["weights"] == 4000


@CUDA
def test_bf16_training_step_on_cuda_is_close_to_float32():
    from tests.families.builders import family_model
    from tests.families.test_training_matrix import batch

    model = family_model("qwen2")[0].cuda().train()
    b = {k: (v.cuda() if torch.is_tensor(v) else v) for k, v in batch("padded").items()}
    ref, _ = L.causal_lm_loss(model, b)
    dtype = D.autocast_dtype(torch.device("cuda"))
    with D.autocast(torch.device("cuda"), dtype):
        low, _ = L.causal_lm_loss(model, b)
    assert float(low) == pytest.approx(float(ref), rel=2e-2)


@CUDA
def test_gpu_memory_estimate_bounds_the_measured_peak():
    from core.peft import LoRAConfig, apply_peft, trainable_parameters
    from core.strategy.arch import arch_of
    from tests.families.builders import family_model
    from tests.families.test_training_matrix import batch

    model = apply_peft(family_model("llama")[0], LoRAConfig(r=4, target_modules="attention")).cuda().train()
    b = {k: (v.cuda() if torch.is_tensor(v) else v) for k, v in batch("padded").items()}
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    with D.autocast(torch.device("cuda"), torch.bfloat16):
        total, n = L.causal_lm_loss(model, b)
    total.backward()
    peak = torch.cuda.max_memory_allocated() - base
    trainable, params = trainable_parameters(model)
    est = D.gpu_memory_estimate(arch_of(model.config), params, trainable, b["input_ids"].numel(), torch.bfloat16)
    assert peak <= est["total"] - est["weights"] + 8 * 2**20  # the allocator's 8 MiB slack


def test_models_load_on_the_device_named_by_af_device(monkeypatch):
    from core.models import load_model

    monkeypatch.setenv(D.DEVICE_ENV, "cpu")
    model, _ = load_model("tiny-llama")
    assert next(model.parameters()).device.type == "cpu"
    monkeypatch.setenv(D.DEVICE_ENV, "quantum")
    with pytest.raises(UserError, match="not one of"):
        load_model("tiny-llama")


@CUDA
def test_chat_runs_on_cuda_when_af_device_says_so(monkeypatch):
    from core import chat
    from core.models import load_model

    monkeypatch.setenv(D.DEVICE_ENV, "cuda")
    model, tok = load_model("tiny-llama")
    assert next(model.parameters()).is_cuda
    assert isinstance(chat.generate(model, tok, [{"role": "user", "content": "hi"}], max_new_tokens=4), str)
