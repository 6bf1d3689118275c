"""Choose a fine-tuning method and predict what a run costs before anything runs (issue 8, DESIGN §1 "choose method").

Three parts:

* :class:`ResourceEstimator` — for a base model, a method and a run config on this machine: exact trainable and
  total parameters (the model is built on the ``meta`` device and the real ``core.peft.apply_peft`` is applied, so
  the numbers equal the trained model's), peak memory split into framework, weights, gradients, optimizer states,
  activations and loss buffers, and time per step / epoch from the dataset's real token counts and a measured
  micro-benchmark of this machine (cached in ``workspace/models/.machine_bench.json``).
* :class:`StrategySelector` — task kind, dataset size, quality report, machine and time budget in; a method with
  hyperparameters, plain-word reasons and the runner-up (with why it lost) out. Never a config that does not fit.
* :func:`fit_check` — the problems of a config on this machine and the smallest change that makes it fit.

The CLI face is ``python -m core estimate --config RUN.yaml [--json]`` (:func:`estimate_command`)::

    from core.strategy import ResourceEstimator, StrategySelector, fit_check
    est = ResourceEstimator(DEFAULT_MODEL)            # this machine (benchmarked once, cached)
    est.parameters("lora", {"r": 8})                             # ParamCount(trainable=..., total=..., ...)
    est.memory("full", batch_size=4, seq_len=512).breakdown      # bytes per part; .fits against the budget
    est.estimate(config_dict_or_TrainingConfig)                  # params + memory + time per step/epoch/run
    rec = StrategySelector().recommend("knowledge_qa", 3000, quality=quality_json, time_budget_s=3600)
    rec.method, rec.params, rec.train, rec.reasons, rec.runner_up, rec.to_config("my-dataset")
    fit_check(config).suggestion                                 # e.g. {"train.batch_size": 2, "train.grad_accum": 4}

Memory is modelled for float32 training on the CPU (measured peak RSS) and, uncalibrated, on a CUDA GPU.
"""
from __future__ import annotations

import functools
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from core.defaults import DEFAULT_MODEL, METHODS
from core.errors import UserError
from core.training.loss import UNPAD_MIN_ROW_TOKENS, UNPADDED

MiB = 1024 ** 2
GiB = 1024 ** 3
BYTES = 4  # the trainer trains in float32 (weights, gradients, activations)
BENCH_FILE = ".machine_bench.json"

# ---------------------------------------------------------------- calibration
# Constants fitted against measured peak RSS and step times of the default model on this project's 2-core machine
# by bench/estimate_bench.py (subprocess per config, ru_maxrss; step times in CPU seconds per thread because the
# machine was shared). They are the only numbers here not derived from the model's structure or the machine's
# measured speed; see the bench's table for how well they hold. Validation run (`python -m core bench estimate
# --quick`, LoRA/Adapter/Prefix/full x batch 1 and 4, 128 tokens) with load average ~10 on 2 cores: peak memory
# within -17%..+6% of ru_maxrss; step time within -49%..+26% of CPU-seconds-per-thread (too noisy there to
# calibrate further), while wall times were 4-10x longer than on an idle machine.
CAL = {
    # Process memory beyond "import torch, transformers" (measured per machine): tokenizer, data, core modules.
    "misc_mb": 150.0,
    # Loss buffers over the logits, in units of (rows x vocab x 4 bytes): logits, their shifted copy, log-softmax,
    # and in backward the dense gradient of each; glibc keeps the freed blocks, so the peak holds ~all of them.
    "logits_buffers": 5.0,
    # Freed-but-kept allocator memory, as a share of the activations (backward frees them in a different order).
    "activation_slack": 0.10,
    # Matmuls in a training step reach this share of the micro-benchmark's GFLOP/s at large batches (odd-shaped
    # GEMMs, transposed operands in backward, attention) ...
    # Refitted on a quiet machine (bench/estimate_bench.py --quick, load < 1.5, 126 GFLOP/s micro-benchmark):
    # 128-token micro-batches reached ~48-56% of it, 512-token ones ~69-80% (two runs); the first fit (0.40 / 233) was made
    # while other jobs shared the cores and over-estimated step time 2.5-3.6x.
    "matmul_efficiency": 0.95,
    # ... and half of it at this many tokens per micro-batch (small GEMMs use the cores poorly): eff * M/(M+M0).
    "matmul_half_tokens": 87.0,
    # LoRA's rank-r matmuls ((tokens x d) @ (d x r) and back) reach only this share of the micro-benchmark: measured
    # on SmolLM2 (8 x 128-token rows), LoRA r=8 on all 7 linear layers cost ~1.1 s/step more than on q/v alone,
    # which is 7.2 GFLOP more at ~10 GFLOP/s.
    "lora_matmul_efficiency": 0.06,
    # Dropout before LoRA's A (mask generation, scaling, and its backward), nanoseconds per input float: measured
    # 5.5-6.0 ns for core.peft.dropout.FastDropout + a rank-8 linear + backward on (650 x 576) against 0.7-0.8 ns
    # without dropout (nn.Dropout: 7.7-8.6 ns).
    "dropout_ns_per_float": 5.0,
    # Element-wise work (norms, activations, softmax, masks) per step, in passes over the activation bytes.
    "elementwise_passes": 6.0,
    # AdamW (foreach=False) + gradient clipping, in passes over the trainable parameters' bytes at the copy
    # bandwidth of the micro-benchmark (a cache-sized copy, so this counts DRAM's slowness too): SmartOptimizer's
    # grad_norm + step over all 134.5M parameters of SmolLM2 took 0.32-0.78 s (measured, steps 2-5), ~70 passes.
    "optimizer_passes": 70.0,
    # Python/dispatch overhead per layer per micro-batch (forward + backward), seconds.
    "per_layer_overhead_s": 0.004,
    # Framework footprint on a GPU (CUDA context, cuBLAS workspaces), bytes.
    "gpu_framework_mb": 600.0,
}


# ================================================================ the machine
@dataclass
class Machine:
    """What the estimator plans for: CPU cores and RAM, or a CUDA GPU and its memory."""

    device: str                     # "cpu" | "cuda"
    cpu_cores: int
    threads: int                    # torch intra-op threads a run will use
    ram_total: int                  # bytes
    ram_available: int              # bytes free now (other programs included)
    gpu_name: Optional[str] = None
    gpu_memory: Optional[int] = None  # bytes
    memory_margin: float = 0.10     # keep this share of the budget free (other programs, fragmentation)

    @classmethod
    def detect(cls, device: str = "auto") -> "Machine":
        """This machine, now (psutil for RAM; torch for the GPU)."""
        import psutil

        vm = psutil.virtual_memory()
        cores = psutil.cpu_count(logical=True) or os.cpu_count() or 1
        use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        if use_cuda and not torch.cuda.is_available():
            raise UserError("train.device is 'cuda' but no CUDA GPU is visible; use device 'auto' or 'cpu'.")
        gpu_name = gpu_mem = None
        if use_cuda:
            props = torch.cuda.get_device_properties(0)
            gpu_name, gpu_mem = props.name, int(props.total_memory)
        return cls(device="cuda" if use_cuda else "cpu", cpu_cores=int(cores), threads=torch.get_num_threads(),
                   ram_total=int(vm.total), ram_available=int(vm.available), gpu_name=gpu_name, gpu_memory=gpu_mem)

    @property
    def memory_budget(self) -> int:
        """Bytes a run may use: the GPU's memory, or the RAM free now, less the safety margin."""
        room = self.gpu_memory if self.device == "cuda" and self.gpu_memory else self.ram_available
        return int(room * (1 - self.memory_margin))

    def describe(self) -> str:
        """One line for people."""
        if self.device == "cuda":
            return f"GPU {self.gpu_name} with {self.gpu_memory / GiB:.1f} GiB, {self.cpu_cores} CPU cores"
        return (f"CPU, {self.cpu_cores} cores ({self.threads} torch threads), {self.ram_total / GiB:.1f} GiB RAM "
                f"({self.ram_available / GiB:.1f} GiB free now)")


@dataclass
class MachineSpeed:
    """Measured speed of this machine: matmul GFLOP/s, memory bandwidth and the framework's own memory."""

    device: str
    threads: int
    matmul_gflops: float
    bandwidth_gbs: float
    framework_mb: float
    measured_at: float


def _cpu_clock() -> float:
    """Process CPU seconds per torch thread: on an idle machine equal to wall time, and unlike wall time not
    stretched when other programs share the cores (this project's development machine is shared)."""
    return time.process_time() / max(1, torch.get_num_threads())


def _timed(fn, clock=time.perf_counter, min_s: float = 0.25, reps: int = 3) -> float:
    """Best seconds per call of ``fn`` over ``reps`` windows of at least ``min_s`` wall seconds (after a warm-up).

    The best window, not the median: estimates describe this machine, not whatever else happens to run on it."""
    fn()
    results = []
    for _ in range(reps):
        n, w0, t0 = 0, time.perf_counter(), clock()
        while True:
            fn()
            n += 1
            if time.perf_counter() - w0 >= min_s:
                break
        results.append((clock() - t0) / n)
    return min(results)


def measure_machine(device: str = "cpu") -> MachineSpeed:
    """A ~2 s micro-benchmark: a model-shaped float32 matmul, a large copy, and the RSS of the bare framework.

    On the CPU the speeds are in CPU seconds per thread (see :func:`_cpu_clock`): what the machine does when the
    run has it to itself. Time estimates are therefore for an otherwise idle machine."""
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    clock = time.perf_counter if dev.type == "cuda" else _cpu_clock
    # (tokens x hidden) @ (hidden x intermediate): the shape of SmolLM2's MLP at a 512-token batch.
    m, k, n = (4096, 2048, 8192) if dev.type == "cuda" else (512, 576, 1536)
    a, b = torch.randn(m, k, device=dev), torch.randn(k, n, device=dev)

    def mm():
        torch.mm(a, b)
        sync()

    gflops = 2 * m * k * n / _timed(mm, clock) / 1e9
    x = torch.empty(16 * MiB // 4 * (16 if dev.type == "cuda" else 4), device=dev)  # 64 MiB (1 GiB on a GPU)
    y = torch.empty_like(x)

    def copy():
        y.copy_(x)
        sync()

    bandwidth = 2 * x.numel() * 4 / _timed(copy, clock) / 1e9  # read + write
    return MachineSpeed(device=device, threads=torch.get_num_threads(), matmul_gflops=round(gflops, 2),
                        bandwidth_gbs=round(bandwidth, 2), framework_mb=round(_framework_rss_mb(), 1),
                        measured_at=time.time())


def _framework_rss_mb() -> float:
    """Peak RSS of a fresh interpreter that imports torch and transformers (what every run pays first)."""
    # What a training process imports before it loads a model (run from the repository, like the trainer).
    code = ("import resource, torch, transformers; from transformers import AutoModelForCausalLM, AutoTokenizer; "
            "import core.models, core.peft, core.training.loss, core.training.optim; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                             cwd=root)
        kib = float(out.stdout.strip().splitlines()[-1])
        return kib / 1024 if platform.system() != "Darwin" else kib / MiB  # macOS reports bytes
    except (subprocess.SubprocessError, ValueError, IndexError, OSError):
        return 300.0  # what it measured on the development machine


def _bench_path() -> Path:
    from core.workspace import kind_dir

    return kind_dir("models") / BENCH_FILE


def machine_speed(machine: Optional[Machine] = None, refresh: bool = False) -> MachineSpeed:
    """The cached micro-benchmark of this machine for its device and thread count (measured on first use)."""
    from core.fileio import atomic_write_json, read_json

    machine = machine or Machine.detect()
    key = f"{machine.device}:{machine.threads}:{platform.node()}"
    path = _bench_path()
    cache = read_json(path, {}) or {}
    if not refresh and isinstance(cache.get(key), dict):
        try:
            return MachineSpeed(**cache[key])
        except TypeError:
            pass  # an older layout: measure again
    speed = measure_machine(machine.device)
    cache[key] = asdict(speed)
    try:
        atomic_write_json(path, cache)
    except OSError:
        pass  # a read-only workspace only costs a re-measure next time
    return speed


# ================================================================ the model's structure
@dataclass
class Arch:
    """The dimensions the memory and time formulas need, read from the model config."""

    family: str
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    gated_mlp: bool
    max_positions: int

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim


UNGATED = ("gpt2", "gpt_bigcode", "gpt_neo", "gpt_neox", "gptj", "opt", "bloom", "falcon", "phi")  # plain MLPs


def arch_of(config) -> Arch:
    """Read an :class:`Arch` from a transformers config (Llama-style or GPT-2 names)."""
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    hidden = getattr(text, "hidden_size", None) or text.n_embd
    heads = getattr(text, "num_attention_heads", None) or text.n_head
    head_dim = getattr(text, "head_dim", None) or hidden // heads
    inter = getattr(text, "intermediate_size", None) or getattr(text, "n_inner", None) or 4 * hidden
    return Arch(family=getattr(text, "model_type", "unknown"),
                layers=getattr(text, "num_hidden_layers", None) or text.n_layer, hidden=hidden,
                intermediate=inter, heads=heads, kv_heads=getattr(text, "num_key_value_heads", None) or heads,
                head_dim=head_dim, vocab=text.vocab_size, tied=bool(getattr(text, "tie_word_embeddings", True)),
                gated_mlp=hasattr(text, "intermediate_size") and getattr(text, "model_type", "") not in UNGATED,
                max_positions=getattr(text, "max_position_embeddings", None) or getattr(text, "n_positions", 2048))


@functools.lru_cache(maxsize=16)
def model_config(name: str):
    """The transformers config of a model name (no weights are read)."""
    from core.models import ensure_default_model, resolve, tiny_model

    info = resolve(name)
    if info.source == "tiny":
        return tiny_model(name)[0].config
    from transformers import AutoConfig

    if info.source == "embedded-gguf":
        return AutoConfig.from_pretrained(ensure_default_model(), trust_remote_code=False)
    if info.source == "local":
        return AutoConfig.from_pretrained(info.path, trust_remote_code=False)
    try:
        return AutoConfig.from_pretrained(name, trust_remote_code=False,
                                          local_files_only=os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", ""))
    except Exception as exc:  # noqa: BLE001 - one actionable message
        raise UserError(f"Could not read the config of {name!r} (offline and not cached?). Give a local model "
                        f"folder, or use the default '{DEFAULT_MODEL}'.") from exc


def _peft_config(method: str, params: Optional[dict]):
    from core.peft import config_from_dict

    if method not in METHODS:
        raise UserError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    return config_from_dict(method, dict(params or {}))


@dataclass
class ParamCount:
    """Trainable and total parameters, counted on the built (meta) model, with what the method added."""

    trainable: int
    total: int
    base: int                      # the base model's own parameters (tied embeddings once)
    added: int                     # parameters the method adds (LoRA A/B, adapters, prefix)
    layers: list = field(default_factory=list)  # per trainable module family: [name, count]
    exact: bool = True

    @property
    def share(self) -> float:
        return self.trainable / max(1, self.total)


@dataclass
class MethodShape:
    """What the activation formula needs to know about the injected method, read from the meta model."""

    lora_modules: list = field(default_factory=list)   # [(parent, d_in, d_out, r, dropout)] in one block
    adapters: list = field(default_factory=list)       # [(bottleneck, dropout)] in one block
    prefix_tokens: int = 0
    trainable_blocks: int = 0                          # freeze: how many top blocks train
    block_linear_params: int = 0                       # base matmul weights in one block
    block_params: int = 0


@functools.lru_cache(maxsize=64)
def _build_meta(model: str, method: str, params_json: str) -> tuple[ParamCount, MethodShape]:
    from transformers import AutoModelForCausalLM

    from core.peft import apply_peft, trainable_parameters

    config = model_config(model)
    cfg = _peft_config(method, json.loads(params_json))
    with torch.device("meta"):
        net = AutoModelForCausalLM.from_config(config)
        base_total = sum(p.numel() for p in net.parameters())
        apply_peft(net, cfg)
    trainable, total = trainable_parameters(net)
    families: dict[str, int] = {}
    for name, p in net.named_parameters():
        if p.requires_grad:
            key = _family(name)
            families[key] = families.get(key, 0) + p.numel()
    count = ParamCount(trainable=trainable, total=total, base=base_total, added=total - base_total,
                       layers=sorted(([k, v] for k, v in families.items()), key=lambda kv: -kv[1]))
    return count, _method_shape(net, cfg)


def _family(name: str) -> str:
    """A parameter name without its layer number, e.g. ``model.layers.*.self_attn.q_proj.lora_A.weight``."""
    return ".".join("*" if part.isdigit() else part for part in name.split("."))


def _method_shape(net, cfg) -> MethodShape:
    from core.peft.inject import find_blocks, is_linear_like

    _, blocks = find_blocks(net)
    block = blocks[0]
    shape = MethodShape()
    for name, mod in block.named_modules():
        if type(mod).__name__ == "LoRALinear":
            drop = getattr(mod.lora_dropout, "p", 0.0)
            parent = name.split(".")[0]
            shape.lora_modules.append((parent, mod.lora_A.in_features, mod.lora_B.out_features, mod.r, drop))
            base = mod.base_layer.weight
            shape.block_linear_params += base.numel()
        elif type(mod).__name__ == "AdapterLayer":
            shape.adapters.append((mod.down.out_features, getattr(mod.dropout, "p", 0.0)))
        elif is_linear_like(mod) and ".adapters." not in f".{name}." and "lora_" not in name \
                and not name.endswith("base_layer"):
            shape.block_linear_params += mod.weight.numel()
    shape.block_params = sum(p.numel() for n, p in block.named_parameters()
                             if "lora_" not in n and "adapters." not in n)
    shape.prefix_tokens = getattr(cfg, "num_virtual_tokens", 0) if cfg.method == "prefix" else 0
    if cfg.method == "freeze":
        shape.trainable_blocks = min(cfg.trainable_layers, len(blocks))
    elif cfg.method != "full":
        shape.trainable_blocks = 0
    else:
        shape.trainable_blocks = len(blocks)
    return shape


# ================================================================ the loss: logits for all tokens or labels only?
@dataclass(frozen=True)
class LossProfile:
    """How the trainer's loss spends memory and time on the output head."""

    mode: str                    # "all": logits for every position; "labels": only where the next token is a label
    chunk: Optional[int] = None  # rows of logits alive at once (chunked cross-entropy), None = all at once
    recompute: bool = False      # chunks are recomputed in backward (activation checkpointing)


@functools.lru_cache(maxsize=1)
def loss_profile() -> LossProfile:
    """Found by running ``core.training.loss.causal_lm_loss`` once on the tiny model and watching its output head,
    so the estimate follows the trainer whichever way its loss is written."""
    try:
        from core.models import tiny_model
        from core.training import loss as loss_module
    except ImportError:
        return LossProfile("all")
    model, _ = tiny_model("tiny-llama")
    seen = []
    head = model.get_output_embeddings()
    handle = head.register_forward_hook(lambda m, i, o: seen.append(o.shape[:-1].numel()))
    ids = torch.randint(0, 200, (2, 32), generator=torch.Generator().manual_seed(0))  # leave the global RNG alone
    labels = torch.full_like(ids, -100)
    labels[:, -4:] = ids[:, -4:]
    try:
        with torch.no_grad():
            loss_module.causal_lm_loss(model, {"input_ids": ids, "labels": labels,
                                               "attention_mask": torch.ones_like(ids)})
    except Exception:  # noqa: BLE001 - an unexpected loss signature: assume the expensive case
        return LossProfile("all")
    finally:
        handle.remove()
    # No call of the head module with every row means the loss projects selected hidden states itself.
    if seen and seen[0] >= ids.numel() - ids.shape[0]:
        return LossProfile("all")
    chunk = getattr(loss_module, "CE_CHUNK", None)
    return LossProfile("labels", chunk=chunk, recompute=bool(getattr(loss_module, "HEAD_RECOMPUTE", False)))


def loss_logits_mode() -> str:
    """"all" or "labels" (see :func:`loss_profile`)."""
    return loss_profile().mode


def _logit_rows(tokens: int, label_tokens: Optional[int]) -> int:
    """Rows of the output head per micro-batch: every token, or the labelled ones (half when unknown)."""
    if loss_profile().mode == "all":
        return tokens
    return min(tokens, label_tokens) if label_tokens is not None else tokens // 2


# ================================================================ estimates
@dataclass
class MemoryEstimate:
    """Peak memory of a training process, with its parts (bytes)."""

    total: int
    breakdown: dict
    budget: int
    device: str

    @property
    def fits(self) -> bool:
        return self.total <= self.budget


@dataclass
class StepTime:
    """Seconds per optimizer step, with its parts, and the FLOPs behind the matmul part."""

    seconds: float
    breakdown: dict
    flops: float
    tokens: int


@dataclass
class Estimate:
    """Everything ``estimate`` reports for one run config."""

    model: str
    method: str
    params: ParamCount
    memory: MemoryEstimate
    step: StepTime
    epoch_s: Optional[float]
    steps_per_epoch: Optional[int]
    total_steps: Optional[int]
    total_s: Optional[float]
    data: dict
    machine: dict
    speed: dict
    problems: list = field(default_factory=list)
    suggestion: Optional[dict] = None

    def to_dict(self) -> dict:
        """JSON-able form (the ``--json`` output)."""
        d = asdict(self)
        d["params"]["share"] = self.params.share
        d["memory"]["fits"] = self.memory.fits
        return d


class ResourceEstimator:
    """Parameters, peak memory and time of a training run for one base model on one machine."""

    def __init__(self, model: str = DEFAULT_MODEL, machine: Optional[Machine] = None,
                 speed: Optional[MachineSpeed] = None):
        self.model = model
        self.machine = machine or Machine.detect()
        self._speed = speed
        self.arch = arch_of(model_config(model))

    @property
    def speed(self) -> MachineSpeed:
        """The machine's measured speed (benchmarked once, then cached on disk)."""
        if self._speed is None:
            self._speed = machine_speed(self.machine)
        return self._speed

    # ------------------------------------------------------------ parameters
    def parameters(self, method: str, params: Optional[dict] = None) -> ParamCount:
        """Exact (trainable, total) by applying the method to the model built on the meta device."""
        return self._meta(method, params)[0]

    def _meta(self, method: str, params: Optional[dict]) -> tuple[ParamCount, MethodShape]:
        return _build_meta(self.model, method, json.dumps(params or {}, sort_keys=True, default=list))

    # ------------------------------------------------------------ memory
    def activation_floats(self, method: str, params: Optional[dict], seq_len: int, masked: bool,
                          unpadded: Optional[bool] = None) -> dict:
        """Floats saved for backward per token, per part (per layer x layers that keep them, plus the ends).

        Per layer, a block that gradients flow through keeps (Llama-style, measured with saved-tensor hooks):
        the two norm inputs and their scales (2d+2), attention's q, k, v and output (2q+2kv), the MLP's
        gate and up (2m: core.training.swiglu recomputes the activation; a GPT-2 MLP keeps 2m too) and the
        attention log-sum-exp (h). A trained block also keeps
        its matmul inputs (5d+q+2kv). LoRA keeps each distinct input of its wrapped layers (d_in; with dropout,
        each layer's dropped copy and bool mask instead: 1.25 d_in, core.peft.dropout) and A's output (r); an
        adapter its input and bottleneck (d+2b). An explicit
        attention mask (padding or prefix) is saved per layer (T (+P) floats per token; none when a padded batch
        runs unpadded: ``unpadded``, by default rows of at least UNPAD_MIN_ROW_TOKENS) and, with a mask,
        grouped-query keys and values are expanded to all heads (2(q-kv)); prefix adds P keys/values per layer
        (2qP/T per token; 2kvP/T unpadded, where sdpa groups the heads itself).
        """
        a, (_, shape) = self.arch, self._meta(method, params)
        d, m, q, kv, h = a.hidden, a.intermediate, a.q_dim, a.kv_dim, a.heads
        mlp = 2 * m  # gate and up (the trainer's lean SwiGLU recomputes silu(gate)), or GPT-2's fc and act input
        through = 2 * d + 2 + 2 * q + 2 * kv + mlp + h
        per_layer = {"blocks": through}
        if method in ("full", "freeze"):
            per_layer["trained matmul inputs"] = 5 * d + q + 2 * kv
        if shape.lora_modules:
            # Without dropout, A keeps the wrapped layer's input (shared by siblings); with it, its own dropped copy.
            inputs = {(parent, d_in) for parent, d_in, _, _, p in shape.lora_modules if p == 0}
            per_layer["lora"] = (sum(d_in for _, d_in in inputs) + sum(r for *_, r, _ in shape.lora_modules)
                                 + sum(1.25 * d_in for _, d_in, _, _, p in shape.lora_modules if p > 0))
        if shape.adapters:
            per_layer["adapter"] = sum(d + 2 * b + (0.25 * d if p > 0 else 0) for b, p in shape.adapters)
        P = shape.prefix_tokens
        if masked or P:
            # Padded batches run unpadded (per-example attention, no mask tensor); one row keeps its 2-D mask.
            if unpadded is None:
                unpadded = UNPADDED and seq_len >= UNPAD_MIN_ROW_TOKENS
            if unpadded:  # no mask tensor, and sdpa groups the heads itself (enable_gqa)
                per_layer["attention mask"] = 2 * kv * P / seq_len
            else:  # transformers' sdpa with a mask expands grouped keys/values to every head
                per_layer["attention mask"] = seq_len + P + (2 * (q - kv) if kv < q else 0) + 2 * q * P / seq_len
        layers = a.layers if method != "freeze" else shape.trainable_blocks
        out = {k: v * layers for k, v in per_layer.items()}
        out["embeddings and final norm"] = 2 * d + 1
        return out

    def memory(self, method: str, params: Optional[dict] = None, *, batch_size: int = 8, seq_len: int = 512,
               label_tokens: Optional[int] = None, masked: Optional[bool] = None,
               unpadded: Optional[bool] = None) -> MemoryEstimate:
        """Peak memory of training: framework, weights, gradients, AdamW states, activations, loss buffers.

        ``label_tokens``: labelled tokens in the largest batch (only matters when the loss computes logits for
        labelled positions only); ``masked``: whether batches carry an attention mask — padded batches and packed
        rows of several examples both do (a block-diagonal mask); only one example per row goes without.
        """
        count, _ = self._meta(method, params)
        if masked is None:
            masked = True
        tokens = batch_size * seq_len
        floats = sum(self.activation_floats(method, params, seq_len, masked, unpadded).values())
        activations = floats * tokens * BYTES * (1 + CAL["activation_slack"])
        rows = _logit_rows(tokens, label_tokens)
        alive = min(rows, loss_profile().chunk or rows)  # a chunked loss holds one chunk of logits at a time
        logits = CAL["logits_buffers"] * alive * self.arch.vocab * BYTES + rows * self.arch.hidden * BYTES
        cuda = self.machine.device == "cuda"
        framework = (CAL["gpu_framework_mb"] if cuda else self.speed.framework_mb + CAL["misc_mb"]) * MiB
        breakdown = {
            "framework": int(framework),
            "weights": int(count.total * BYTES),
            "gradients": int(count.trainable * BYTES),
            "optimizer states": int(2 * count.trainable * BYTES),  # AdamW: exp_avg and exp_avg_sq in float32
            "activations": int(activations),
            "loss buffers (logits)": int(logits),
        }
        return MemoryEstimate(total=sum(breakdown.values()), breakdown=breakdown,
                              budget=self.machine.memory_budget, device=self.machine.device)

    # ------------------------------------------------------------ time
    def flops(self, method: str, params: Optional[dict], *, tokens: int, seq_len: int, logit_rows: int,
              masked: bool) -> dict:
        """Training FLOPs of one micro-batch, per part (forward, backward to inputs, backward to weights)."""
        a, (count, shape) = self.arch, self._meta(method, params)
        lin = 2 * shape.block_linear_params                     # forward matmul FLOPs per token per block
        ctx = seq_len + shape.prefix_tokens if (masked or shape.prefix_tokens) else (seq_len + 1) / 2
        attn = 4 * ctx * a.q_dim                                # QK^T and AV per token per block
        extra = 2 * sum(2 * a.hidden * b for b, _ in shape.adapters)
        lora = 2 * sum(r * (d_in + d_out) for _, d_in, d_out, r, _ in shape.lora_modules)  # A and B per token
        head = 2 * a.hidden * a.vocab                           # output projection per logit row
        grad_layers = shape.trainable_blocks if method == "freeze" else a.layers
        fwd = tokens * a.layers * (lin + attn + extra) + logit_rows * head
        recompute = logit_rows * head if loss_profile().recompute else 0  # checkpointed head runs again
        bwd_in = tokens * grad_layers * (lin + 2 * attn + extra) + logit_rows * head + recompute
        weight_share = {"full": 1.0, "freeze": shape.trainable_blocks / a.layers}.get(method, 0.0)
        bwd_w = tokens * a.layers * (lin * weight_share + extra) + (logit_rows * head if method == "full" else 0)
        # LoRA's rank-r matmuls (forward, backward to inputs, backward to A and B) are skinny: timed apart.
        return {"forward": fwd, "backward (inputs)": bwd_in, "backward (weights)": bwd_w,
                "lora (rank-r matmuls)": 3 * tokens * a.layers * lora}

    def step_time(self, method: str, params: Optional[dict] = None, *, batches: list[tuple[int, int, int]],
                  masked: Optional[bool] = None) -> StepTime:
        """Seconds for one optimizer step over micro-batches given as (batch, seq_len, label_tokens)."""
        if masked is None:
            masked = True
        count, shape = self._meta(method, params)
        speed, total_flops, tokens, act_bytes, matmul_s = self.speed, 0.0, 0, 0.0, 0.0
        dropout_floats = sum(d_in for _, d_in, _, _, p in shape.lora_modules if p > 0)
        lora_s = dropout_s = 0.0
        for b, t, labels in batches:
            rows = _logit_rows(b * t, labels)
            parts = self.flops(method, params, tokens=b * t, seq_len=t, logit_rows=rows, masked=masked)
            lora = parts.pop("lora (rank-r matmuls)")
            flops = sum(parts.values())
            total_flops += flops + lora
            matmul_s += flops / self._gflops(b * t)
            lora_s += self._lora_seconds(lora)
            dropout_s += CAL["dropout_ns_per_float"] * 1e-9 * b * t * self.arch.layers * dropout_floats
            tokens += b * t
            floats = sum(self.activation_floats(method, params, t, masked).values())
            act_bytes += (floats * b * t + 3 * rows * self.arch.vocab * (2 if loss_profile().recompute else 1)) * BYTES
        bandwidth = speed.bandwidth_gbs * 1e9
        breakdown = {
            "matmuls": matmul_s,
            "lora matmuls": lora_s,
            "dropout": dropout_s,
            "element-wise": CAL["elementwise_passes"] * act_bytes / bandwidth,
            "optimizer": CAL["optimizer_passes"] * count.trainable * BYTES / bandwidth,
            "overhead": CAL["per_layer_overhead_s"] * self.arch.layers * len(batches),
        }
        return StepTime(seconds=sum(breakdown.values()), breakdown=breakdown, flops=total_flops, tokens=tokens)

    def _gflops(self, tokens: int) -> float:
        """FLOP/s a training step's matmuls reach with ``tokens`` tokens per micro-batch (calibrated share)."""
        share = CAL["matmul_efficiency"] * tokens / (tokens + CAL["matmul_half_tokens"])
        return self.speed.matmul_gflops * 1e9 * share

    def _lora_seconds(self, flops: float) -> float:
        """Seconds of LoRA's skinny rank-r matmuls (a calibrated share of the micro-benchmark's FLOP/s)."""
        return flops / (self.speed.matmul_gflops * 1e9 * CAL["lora_matmul_efficiency"])

    def forward_time(self, method: str, params: Optional[dict], *, batches: list[tuple[int, int]]) -> float:
        """Seconds of no-grad forward passes of the loss (evaluation) over (batch, seq_len) batches."""
        seconds = 0.0
        for b, t in batches:
            rows = _logit_rows(b * t, None)
            parts = self.flops(method, params, tokens=b * t, seq_len=t, logit_rows=rows, masked=True)
            seconds += parts["forward"] / self._gflops(b * t)
            seconds += self._lora_seconds(parts["lora (rank-r matmuls)"] / 3)  # forward only
            seconds += 3 * rows * self.arch.vocab * BYTES / (self.speed.bandwidth_gbs * 1e9)  # softmax passes
            seconds += CAL["per_layer_overhead_s"] * self.arch.layers / 3  # forward only: a third of the calls
        return seconds

    # ------------------------------------------------------------ a whole config
    def estimate(self, config: Any, *, with_data: bool = True) -> Estimate:
        """Parameters, peak memory and time for a run config (dict or TrainingConfig) on this machine."""
        cfg = normalize_config(config)
        method, params, tc = cfg["method"], cfg.get(cfg["method"]) or {}, cfg["train"]
        count = self.parameters(method, params)
        masked = True  # padded batches and packed rows of several examples both carry an attention mask
        data = dataset_shapes(cfg, self.model) if with_data and cfg.get("data") else {}
        B, T = tc["batch_size"], tc["max_seq_len"]
        if data.get("batches"):
            # Each loader batch is a list of forward passes (row groups, shared prefixes): see _micro_batches.
            widest = max((s for groups in data["batches"] for s in groups), key=lambda s: s[0] * s[1])
            mem = self.memory(method, params, batch_size=widest[0], seq_len=widest[1], label_tokens=widest[2],
                              masked=masked)
            per_batch = [self.step_time(method, params, batches=groups, masked=masked) for groups in data["batches"]]
            accum = tc["grad_accum"]
            steps = max(1, math.ceil(len(per_batch) / accum))
            opt_s = per_batch[0].breakdown["optimizer"]
            # Each micro-batch pays its own forward/backward; the optimizer runs once per step.
            epoch = sum(p.seconds - p.breakdown["optimizer"] for p in per_batch) + steps * opt_s
            epoch *= data.get("scale", 1.0)
            steps = math.ceil(steps * data.get("scale", 1.0))
            largest = max(data["batches"], key=lambda groups: sum(r * t for r, t, _ in groups))
            step = self.step_time(method, params, batches=largest * accum, masked=masked)
        else:
            mem = self.memory(method, params, batch_size=_rows_per_group(B, T, tc), seq_len=T, masked=masked)
            step = self.step_time(method, params, batches=[(B, T, B * T // 2)] * tc["grad_accum"], masked=masked)
            epoch, steps = None, None
        total_steps = tc.get("max_steps") or (math.ceil(tc["epochs"] * steps) if steps else None)
        total_s = (epoch * total_steps / steps if epoch is not None and total_steps else None)
        val_batches = data.pop("val_batches", None)
        if val_batches and total_steps:
            # The trainer evaluates every eval_every steps and at the end, on up to max_eval_examples examples.
            evals = total_steps // tc["eval_every"] + (1 if total_steps % tc["eval_every"] else 0)
            data["eval_s"] = self.forward_time(method, params, batches=val_batches)
            data["evals"] = evals
            total_s = (total_s or 0.0) + evals * data["eval_s"]
        est = Estimate(model=self.model, method=method, params=count, memory=mem, step=step, epoch_s=epoch,
                       steps_per_epoch=steps, total_steps=total_steps, total_s=total_s,
                       data={k: v for k, v in data.items() if k != "batches"},
                       machine=asdict(self.machine), speed=asdict(self.speed))
        if not mem.fits:
            report = fit_check(cfg, estimator=self)
            est.problems, est.suggestion = report.problems, report.suggestion
        return est


def _rows_per_group(batch: int, seq_len: int, train: dict) -> int:
    """Rows the trainer runs through one forward+backward: it splits a batch into groups of at most
    ``train.micro_batch_tokens`` tokens (core.training.loss.split_rows), so activations follow that budget."""
    budget = train.get("micro_batch_tokens") or batch * seq_len
    return max(1, min(batch, budget // max(1, seq_len)))


# ================================================================ config and data helpers
def normalize_config(config: Any) -> dict:
    """A run config as a plain dict with DESIGN §3 defaults filled in (TrainingConfig when available)."""
    if hasattr(config, "to_dict"):
        return _with_defaults(config.to_dict())
    if isinstance(config, (str, Path)):
        try:
            from core.training.config import TrainingConfig

            return _with_defaults(TrainingConfig.from_file(config).to_dict())
        except ImportError:
            return _with_defaults(_read_config_file(Path(config)))
    if not isinstance(config, dict):
        raise UserError(f"A run config must be a mapping or a file, got {type(config).__name__}.")
    return _with_defaults(config)


def _read_config_file(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"The config file {str(path)!r} does not exist; check the path given to --config.")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        return json.loads(text)
    import yaml

    return yaml.safe_load(text) or {}


TRAIN_DEFAULTS = {"epochs": 3, "max_steps": None, "batch_size": 8, "grad_accum": 1, "lr": None, "max_seq_len": 512,
                  "packing": False, "max_train_examples": None, "eval_every": 50, "max_eval_examples": 200,
                  "eval_batch_size": None}


def _with_defaults(d: dict) -> dict:
    out = dict(d)
    out.setdefault("model", DEFAULT_MODEL)
    out.setdefault("method", "lora")
    if out["method"] not in METHODS:
        raise UserError(f"method must be one of {', '.join(METHODS)}, got {out['method']!r}.")
    out["train"] = {**TRAIN_DEFAULTS, **(out.get("train") or {})}
    return out


def dataset_shapes(cfg: dict, model: str, sample: int = 4000) -> dict:
    """Real batch shapes of the run's training data: [(rows, width, label tokens)] per batch of epoch 0.

    Uses the trainer's own loader (same chat template, truncation, packing). Datasets larger than ``sample``
    conversations are sampled evenly and the epoch is scaled up (``scale``).
    """
    from core.data import load_split
    from core.data.loader import SmartDataLoader
    from core.models import load_tokenizer

    tc = cfg["train"]
    convs = load_split(cfg["data"], "train")
    if tc.get("max_train_examples"):
        convs = convs[: tc["max_train_examples"]]
    n = len(convs)
    if not n:
        raise UserError(f"The data {cfg['data']!r} has no training conversations; prepare a dataset first.")
    scale = 1.0
    if n > sample:
        convs, scale = [convs[int(i * n / sample)] for i in range(sample)], n / sample
    loader = SmartDataLoader(load_tokenizer(model), system_prompt=cfg.get("system_prompt"),
                             max_seq_len=tc["max_seq_len"])
    examples, stats = loader.encode_all(convs)
    packing = bool(tc["packing"]) and cfg["method"] != "prefix"
    shapes = [_micro_batches(batch, tc.get("micro_batch_tokens"))
              for batch in loader.batches(examples, tc["batch_size"], packing=packing, shuffle=True, seed=42, epoch=0)]
    val_batches = []
    try:
        val = load_split(cfg["data"], "val")[: tc.get("max_eval_examples") or None]
    except UserError:
        val = []
    if val:
        val_examples, _ = loader.encode_all(val)
        bs = tc.get("eval_batch_size") or tc["batch_size"]
        val_batches = [tuple(b["input_ids"].shape) for b in loader.batches(val_examples, bs, packing=False,
                                                                         shuffle=False)]
    return {"conversations": n, "examples": int(len(examples) * scale), "val_batches": val_batches,
            "tokens": int(stats.get("tokens", 0) * scale), "label_tokens": int(stats.get("label_tokens", 0) * scale),
            "batches_per_epoch": math.ceil(len(shapes) * scale), "packing": packing, "scale": scale,
            "batches": shapes}


def _micro_batches(batch: dict, max_tokens: Optional[int]) -> list[tuple[int, int, int]]:
    """(rows, tokens per row, label tokens) of each forward pass the trainer makes for one loader batch: the row
    groups of ``split_rows``, and, where the rows share a prompt prefix, that prefix once plus the rows after it."""
    from core.training.loss import IGNORE_INDEX, shared_prefix_length, split_rows, unpadded_pays

    out = []
    for group in split_rows(batch, max_tokens or batch["input_ids"].numel()):
        rows, width = group["input_ids"].shape
        labels = group["labels"]
        keep = torch.zeros_like(labels, dtype=torch.bool)
        keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
        shared = shared_prefix_length(group, keep)
        if shared:
            out.append((1, shared, 0))
        mask = group.get("attention_mask")
        if unpadded_pays(mask):  # unpadded forward: real tokens only, at their mean length
            width = max(1, round(int(mask.sum()) / rows))
        out.append((int(rows), int(width - shared), int(keep.sum())))
    return out


# ================================================================ fit check
@dataclass
class FitReport:
    """Whether a config fits this machine's memory, what is wrong, and the smallest change that fixes it."""

    fits: bool
    memory: int
    budget: int
    problems: list
    suggestion: Optional[dict]    # e.g. {"train.batch_size": 2, "train.grad_accum": 4}
    suggestion_text: str = ""


def _set(cfg: dict, dotted: str, value) -> dict:
    out = json.loads(json.dumps(cfg, default=list))
    if "." in dotted:
        sec, key = dotted.split(".", 1)
        out.setdefault(sec, {})[key] = value
    else:
        out[dotted] = value
    return out


def _config_memory(est: ResourceEstimator, cfg: dict) -> int:
    tc, method = cfg["train"], cfg["method"]
    return est.memory(method, cfg.get(method) or {}, batch_size=tc["batch_size"], seq_len=tc["max_seq_len"],
                      masked=True).total


def fit_check(config: Any, estimator: Optional[ResourceEstimator] = None) -> FitReport:
    """Problems of ``config`` on this machine and the smallest change that makes it fit.

    Changes are tried from least to most disruptive: a smaller batch (grad_accum raised so the effective batch
    stays the same), then a shorter max_seq_len (at least 128), then a lighter method (LoRA, then prefix) with
    the original settings, then a lighter method with a smaller batch. The first change that fits is returned.
    """
    cfg = normalize_config(config)
    est = estimator or ResourceEstimator(cfg["model"])
    need, budget = _config_memory(est, cfg), est.machine.memory_budget
    if need <= budget:
        return FitReport(True, need, budget, [], None)
    tc = cfg["train"]
    problems = [f"The run needs about {need / GiB:.2f} GiB but this machine has {budget / GiB:.2f} GiB to spare "
                f"({est.machine.describe()})."]
    for change, text in _candidate_changes(cfg):
        trial = cfg
        for key, value in change.items():
            trial = _set(trial, key, value)
        if _config_memory(est, trial) <= budget:
            trial_need = _config_memory(est, trial)
            return FitReport(False, need, budget, problems, change,
                             f"{text} (then about {trial_need / GiB:.2f} GiB).")
    problems.append("Nothing smaller fits either (batch 1, 128 tokens, LoRA): free memory, or use a smaller model.")
    return FitReport(False, need, budget, problems, None,
                     "No change to batch, sequence length or method makes it fit; free memory or use a smaller model.")


def _candidate_changes(cfg: dict):
    """(change, explanation) from least to most disruptive."""
    tc, method = cfg["train"], cfg["method"]
    b, accum, T = tc["batch_size"], tc["grad_accum"], tc["max_seq_len"]
    batch = b
    while batch > 1:
        batch = max(1, batch // 2)
        new_accum = accum * math.ceil(b / batch)
        yield ({"train.batch_size": batch, "train.grad_accum": new_accum},
               f"Lower train.batch_size from {b} to {batch} and raise train.grad_accum to {new_accum} "
               f"(the same {b * accum} examples per update)")
    seq = T
    while seq > 128:
        seq = max(128, seq // 2)
        yield ({"train.max_seq_len": seq}, f"Shorten train.max_seq_len from {T} to {seq} tokens "
                                            "(longer examples are truncated)")
    for lighter in ("lora", "prefix"):
        if lighter != method:
            yield ({"method": lighter}, f"Switch the method from {method} to {lighter}, which needs far less memory")
            batch = b
            while batch > 1:
                batch = max(1, batch // 2)
                new_accum = accum * math.ceil(b / batch)
                yield ({"method": lighter, "train.batch_size": batch, "train.grad_accum": new_accum},
                       f"Switch to {lighter} and lower train.batch_size to {batch} "
                       f"(train.grad_accum {new_accum})")
    for lighter in ("lora", "prefix"):
        yield ({"method": lighter, "train.batch_size": 1, "train.grad_accum": b * accum, "train.max_seq_len": 128},
               f"Switch to {lighter}, batch 1 (grad_accum {b * accum}) and 128-token sequences")


# ================================================================ the selector
# The rules below are the whole policy: read them top to bottom. Sizes are counts of training conversations.
TINY = 300      # Li & Liang 2021 ran their low-data experiments with 50-500 examples
SMALL = 1000    # below this, every extra trainable weight is a chance to overfit
LARGE = 20000   # from here on full fine-tuning has the data to use its capacity (Biderman et al. 2024)
TASKS = ("style", "knowledge_qa", "classification", "multi_turn")
TASK_ALIASES = {"support": "knowledge_qa", "persona": "style", "style/persona": "style", "tone": "style",
                "qa": "knowledge_qa", "knowledge": "knowledge_qa", "faq": "knowledge_qa", "routing": "classification",
                "classification/routing": "classification", "intent": "classification", "chat": "multi_turn",
                "multi-turn": "multi_turn", "multiturn": "multi_turn", "dialogue": "multi_turn"}
# Typical conversation length in tokens (chat template included) when no quality report says otherwise.
TYPICAL_TOKENS = {"style": 150, "knowledge_qa": 200, "classification": 60, "multi_turn": 400}
DEFAULT_SEQ_LEN = {"style": 512, "knowledge_qa": 512, "classification": 256, "multi_turn": 1024}
MIN_BUDGET_STEPS = 10  # a time budget never cuts a run below this many steps
EVAL_EVERY, MAX_EVAL = 50, 200  # the run config's defaults: train.eval_every, train.max_eval_examples
FALLBACK_LR = {"lora": 1e-3, "adapter": 1e-3, "prefix": 1e-2, "full": 2e-5, "freeze": 5e-5}

LORA_QV = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}
LORA_ATTN = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
LORA_ALL = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"}
ADAPTER = {"bottleneck": 64, "nonlinearity": "gelu", "placement": ["attn", "mlp"]}
PREFIX = {"num_virtual_tokens": 20, "projection_dim": 512}


@dataclass
class Choice:
    """One method with its section and the reasons for it (or, for a runner-up, why it lost)."""

    method: str
    params: dict
    reasons: list


def _task_rules(task: str, n: int, num_labels: int = 0) -> tuple[Choice, Choice]:
    """(primary, runner-up) for a task kind and dataset size, before memory and time are considered."""
    if task == "style":
        if n < TINY:
            # Li & Liang 2021, Prefix-Tuning: in low-data settings (50-500 examples) prefix tuning beat full
            # fine-tuning on table-to-text and summarisation, training ~0.1% of the parameters.
            return (Choice("prefix", dict(PREFIX), [
                f"With only {n} examples, prefix tuning is the safest bet: in Li & Liang's 2021 low-data "
                "experiments (50-500 examples) it beat full fine-tuning on generation tasks while training ~0.1% "
                "of the weights, so it overfits less.",
                "A tone or persona is a way of conditioning the whole answer, which is what learned virtual "
                "tokens do."]),
                    Choice("lora", dict(LORA_QV), [
                        f"LoRA would also work, but with {n} examples its larger update overfits more easily than a "
                        "prefix; it becomes the better choice after a few hundred examples."]))
        # Hu et al. 2021, LoRA: rank 1-8 on W_q and W_v matched full fine-tuning (GPT-2 E2E, GPT-3).
        return (Choice("lora", dict(LORA_QV), [
            "A style or persona shift is a small, low-rank change: Hu et al. 2021 (LoRA) showed rank 1-8 on the "
            "query and value projections matches full fine-tuning on generation tasks.",
            "LoRA merges into the weights after training, so answers are as fast as the base model's."]),
                Choice("prefix", dict(PREFIX), [
                    f"Prefix tuning's advantage is in low data (Li & Liang 2021); with {n} examples LoRA fits "
                    "better, and a prefix takes up context positions at every answer."]))
    if task == "knowledge_qa":
        params = dict(LORA_ALL) if n >= TINY else {**LORA_ALL, "r": 8, "alpha": 16}
        # Geva et al. 2021: MLP layers act as key-value memories. Hu et al. 2021 (Table 5): adapting more weight
        # types beats a higher rank on one. Dettmers et al. 2023 (QLoRA): LoRA on all linear layers was needed to
        # match full fine-tuning.
        return (Choice("lora", params, [
            "New facts have to be stored, and the MLP layers are where transformers keep them (Geva et al. 2021), "
            "so LoRA goes on every linear layer, not just attention: Hu et al. 2021 found adapting more weight "
            "types beats a higher rank, and Dettmers et al. 2023 (QLoRA) needed all linear layers to match full "
            "fine-tuning.",
            f"Rank {params['r']}: enough capacity for {n} question-answer pairs"
            + (" without the room to memorise noise." if n < TINY else ".")]),
                Choice("adapter", dict(ADAPTER), [
                    "Houlsby adapters would learn the facts about as well, but they add layers in series that slow "
                    "every generated token (Hu et al. 2021, section 3); LoRA merges away after training."]))
    if task == "classification":
        if n < SMALL:
            return (Choice("lora", {**LORA_QV, "r": 16, "alpha": 32} if num_labels > 50 else dict(LORA_QV), [
                f"With {n} labelled examples the fewest trainable weights generalise best: LoRA on query and value "
                "matched full fine-tuning on GLUE classification with a tiny fraction of the weights "
                "(Hu et al. 2021, Table 2)."]
                + ([f"{num_labels} labels: rank 16 for the larger label space."] if num_labels > 50 else [])),
                    Choice("adapter", dict(ADAPTER), [
                        "Adapters train ~10x more weights here (two bottlenecks per block), more than this many "
                        "labelled examples can pin down."]))
        # Houlsby et al. 2019: adapters within 0.4% of full fine-tuning on GLUE with ~3.6% of the parameters.
        params = {**ADAPTER, "bottleneck": 128} if num_labels > 50 else dict(ADAPTER)
        return (Choice("adapter", params, [
            f"For classification with {n} labelled examples, bottleneck adapters (Houlsby et al. 2019) came within "
            "0.4% of full fine-tuning on GLUE while training ~3% of the weights.",
            "The answer is a short label, so the adapters' extra per-token latency hardly matters."]
            + ([f"{num_labels} labels: bottleneck 128 for the larger label space."] if num_labels > 50 else [])),
                Choice("lora", dict(LORA_QV), [
                    "A close second: LoRA is about as accurate on GLUE (Hu et al. 2021, Table 2); adapters add a "
                    "non-linear bottleneck after both attention and MLP, a little more capacity for the label "
                    "mapping when there is enough data to train it."]))
    # multi_turn
    if n < TINY:
        primary = Choice("lora", dict(LORA_QV), [
            f"Following a conversation is mostly attention; with {n} conversations LoRA rank 8 on query and value "
            "(Hu et al. 2021) keeps the update small."])
    else:
        # Hu et al. 2021, Table 5: at a fixed parameter budget, spreading rank over W_q, W_k, W_v, W_o was best.
        primary = Choice("lora", dict(LORA_ATTN), [
            "Following a multi-turn conversation is mostly attention over earlier turns: LoRA on all four "
            "attention projections, which Hu et al. 2021 (Table 5) found best at a fixed parameter budget.",
            "Rank 16 for the variety of many conversations; merges away, so chat stays as fast as the base."])
    return primary, Choice("adapter", dict(ADAPTER), [
        "Adapters would learn the dialogue behaviour too, but their serial layers slow every generated token, which "
        "adds up over long chats (Hu et al. 2021, section 3). Prefix tuning was not considered: it takes context "
        "positions, and Li & Liang 2021 report it weaker on long inputs."])


def _epochs(n: int, method: str) -> int:
    """Fewer passes as data grows: small sets need repetition, large ones do not (and overfit with it)."""
    if n < TINY:
        return 8 if method == "prefix" else 5  # Li & Liang 2021 trained prefixes for 5-10 epochs
    if n < SMALL:
        return 3
    return 2 if n < LARGE else 1


def _seq_len(task: str, quality: Optional[dict], max_positions: int) -> tuple[int, Optional[str]]:
    """Cover 95% of examples (power of two, 64-2048) when the quality report has lengths, else the task's default."""
    p95 = None
    if quality:
        lengths = (quality.get("checks") or {}).get("lengths") or quality.get("lengths") or {}
        p95 = lengths.get("p95")
    if not p95:
        return min(DEFAULT_SEQ_LEN[task], max_positions), None
    seq = 64
    while seq < p95 and seq < 2048:
        seq *= 2
    seq = min(seq, max_positions)
    return seq, f"max_seq_len {seq}: covers 95% of your examples (p95 = {p95} tokens) without wasted padding."


def _recommended_lr(method: str) -> float:
    try:
        from core.training.optim import recommended_lr

        return recommended_lr(method)
    except ImportError:
        return FALLBACK_LR[method]


@dataclass
class Recommendation:
    """What to train and why: method, its section, the train section, reasons, the runner-up, the estimate."""

    task: str
    method: str
    params: dict
    train: dict
    reasons: list
    runner_up: dict            # {"method", "params", "why_not"}
    estimate: dict             # memory and time of the recommended config
    notes: list = field(default_factory=list)
    config: Optional[dict] = None  # a run config, when the recommendation was made for a dataset

    def to_config(self, data: str, model: str = DEFAULT_MODEL, system_prompt: Optional[str] = None) -> dict:
        """A run config (DESIGN §3) with this recommendation filled in."""
        cfg = {"model": model, "data": data, "method": self.method, self.method: dict(self.params),
               "train": dict(self.train)}
        if system_prompt:
            cfg["system_prompt"] = system_prompt
        return cfg

    def to_dict(self) -> dict:
        """JSON-able form."""
        return asdict(self)


class StrategySelector:
    """Recommends a method and its settings for a task, a dataset, this machine and a time budget."""

    def __init__(self, model: str = DEFAULT_MODEL, machine: Optional[Machine] = None,
                 estimator: Optional[ResourceEstimator] = None):
        self.estimator = estimator or ResourceEstimator(model, machine=machine)
        self.machine = self.estimator.machine

    def recommend(self, task: str, n_examples: Optional[int] = None, quality: Optional[dict] = None,
                  time_budget_s: Optional[float] = None, fit_steps: bool = True) -> Recommendation:
        """The recommendation; raises UserError when no method fits this machine's memory at all.

        ``fit_steps=False``: the time budget only rules methods out (full fine-tuning); epochs and steps are left
        for the caller to fit (``fit_time_budget`` on the dataset's real batches).
        """
        task = normalize_task(task)
        n = int(n_examples if n_examples is not None else (quality or {}).get("rows") or 0)
        if n < 1:
            raise UserError("The dataset size is unknown or zero: give the number of training examples "
                            "(or a quality report with 'rows').")
        num_labels = int((quality or {}).get("num_labels") or 0)
        primary, runner = _task_rules(task, n, num_labels)
        seq, seq_note = _seq_len(task, quality, self.estimator.arch.max_positions)
        mean_tokens = self._mean_tokens(task, quality)
        reasons = list(primary.reasons)
        if n >= LARGE:  # enough data to use every weight, if memory and time allow
            full = Choice("full", {}, [])
            why_full_not = self._blocker(full, n, seq, mean_tokens, time_budget_s)
            if why_full_not is None:
                runner = Choice(primary.method, primary.params, [
                    "Trains faster and forgets less of the base model's general skills (Biderman et al. 2024); "
                    f"second because {n} examples are enough for full fine-tuning to pay off."])
                reasons = [f"{n} examples are enough data to use every weight: at this scale full fine-tuning "
                           "learns more than LoRA (Biderman et al. 2024, 'LoRA Learns Less and Forgets Less'), "
                           "and it fits this machine's memory and your time budget."]
                primary = full
            else:
                runner = Choice("full", {}, [f"Full fine-tuning would suit {n} examples, but {why_full_not}."])
        train, fit_notes, chosen = self._fit(primary, runner, n, seq, mean_tokens,
                                             time_budget_s if fit_steps else None)
        if chosen is not primary:  # the primary did not fit at all: the runner-up takes its place
            reasons = [f"{primary.method} would be the first choice ({primary.reasons[0]}), but it does not fit "
                       "this machine's memory even at batch 1."] + chosen.reasons
            runner, primary = Choice(primary.method, primary.params, ["Does not fit this machine's memory."]), chosen
        if seq_note:
            reasons.append(seq_note)
        reasons += fit_notes
        est = self._estimate(primary, train, n, mean_tokens)
        return Recommendation(task=task, method=primary.method, params=primary.params, train=train, reasons=reasons,
                              runner_up={"method": runner.method, "params": runner.params,
                                         "why_not": " ".join(runner.reasons), "why": " ".join(runner.reasons)},
                              estimate=est, notes=_quality_notes(quality))

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _mean_tokens(task: str, quality: Optional[dict]) -> float:
        lengths = ((quality or {}).get("checks") or {}).get("lengths") or (quality or {}).get("lengths") or {}
        return float(lengths.get("mean") or TYPICAL_TOKENS[task])

    def _fits(self, choice: Choice, batch: int, seq: int) -> bool:
        return self.estimator.memory(choice.method, choice.params, batch_size=batch, seq_len=seq).fits

    def _run_time(self, choice: Choice, n: int, batch: int, seq: int, mean_tokens: float,
                  epochs: float) -> tuple[float, float, int]:
        """(seconds per step, seconds per epoch, steps per epoch) from the dataset's size and typical length."""
        # One example per row (the trainer's CPU default, packing off), padded to the batch's longest: about the
        # typical length plus a third (row groups sorted by length trim most of the rest).
        width, rows = int(min(seq, max(16, mean_tokens * 1.3))), n
        steps = max(1, math.ceil(rows / batch))
        step = self.estimator.step_time(choice.method, choice.params,
                                        batches=[(batch, width, batch * width // 2)]).seconds
        return step, step * steps, steps

    def _blocker(self, choice: Choice, n: int, seq: int, mean_tokens: float,
                 budget: Optional[float]) -> Optional[str]:
        """Why ``choice`` cannot be used at batch 8 (memory, or one epoch over the time budget), or None."""
        mem = self.estimator.memory(choice.method, choice.params, batch_size=8, seq_len=seq)
        if not mem.fits:
            return (f"it would need about {mem.total / GiB:.1f} GiB and this machine has "
                    f"{mem.budget / GiB:.1f} GiB to spare")
        _, epoch_s, _ = self._run_time(choice, n, 8, seq, mean_tokens, 1)
        if budget and epoch_s > budget:
            return f"one epoch would take about {_human(epoch_s)}, more than your budget of {_human(budget)}"
        return None

    def _fit(self, primary: Choice, runner: Choice, n: int, seq: int, mean_tokens: float,
             budget: Optional[float]) -> tuple[dict, list, Choice]:
        """The train section: the largest batch (8 down to 1) that fits memory, then epochs/steps for the budget."""
        notes: list[str] = []
        for choice in (primary, runner, Choice("lora", dict(LORA_QV), ["LoRA rank 8 on query and value: the "
                                                                       "lightest method that fits."])):
            for s in (seq, 256, 128):
                if s > seq:
                    continue
                for batch in (8, 4, 2, 1):
                    if self._fits(choice, batch, s):
                        if batch < 8:
                            notes.append(f"batch {batch} with grad_accum {8 // batch}: a batch of 8 would not fit "
                                         f"this machine's memory; accumulation keeps 8 examples per update.")
                        if s < seq:
                            notes.append(f"max_seq_len lowered from {seq} to {s} to fit memory.")
                        train = self._train_section(choice, n, batch, s, mean_tokens, budget, notes)
                        return train, notes, choice
        raise UserError(f"No method fits this machine's memory ({self.machine.describe()}), not even LoRA at batch 1 "
                        "with 128 tokens. Free memory (close other programs) or use a smaller base model.")

    def _train_section(self, choice: Choice, n: int, batch: int, seq: int, mean_tokens: float,
                       budget: Optional[float], notes: list) -> dict:
        epochs = _epochs(n, choice.method)
        train = {"epochs": epochs, "max_steps": None, "batch_size": batch, "grad_accum": max(1, 8 // batch),
                 "lr": _recommended_lr(choice.method), "max_seq_len": seq,
                 "packing": False}  # packed rows need a block-diagonal mask: 2x slower on CPU (measured)
        notes.append(f"{epochs} epoch{'s' if epochs > 1 else ''}: "
                     + ("small datasets need several passes." if n < SMALL else
                        "enough data that more passes mostly overfit."))
        if budget:
            step_s, epoch_s, steps = self._run_time(choice, n, batch, seq, mean_tokens, epochs)
            step_s *= train["grad_accum"]
            steps = math.ceil(steps / train["grad_accum"])
            eval_s = self._eval_s(choice, n, batch, seq, mean_tokens)
            while train["epochs"] > 1 and _run_s(train["epochs"] * steps, step_s, eval_s) > budget:
                train["epochs"] -= 1
            if _run_s(train["epochs"] * steps, step_s, eval_s) > budget:
                # steps * step_s + (steps / EVAL_EVERY + 1) * eval_s <= budget
                max_steps = max(1, int((budget - eval_s) / (step_s + eval_s / EVAL_EVERY)))
                train["max_steps"] = max_steps
                notes.append(f"Your time budget of {_human(budget)} allows about {max_steps} steps "
                             f"(~{min(1.0, max_steps / steps):.0%} of one epoch at ~{step_s:.1f} s/step, "
                             "evaluations included); max_steps caps the run.")
            elif train["epochs"] < epochs:
                notes.append(f"epochs lowered to {train['epochs']} to stay within your time budget of "
                             f"{_human(budget)}.")
        return train

    def _estimate(self, choice: Choice, train: dict, n: int, mean_tokens: float) -> dict:
        mem = self.estimator.memory(choice.method, choice.params, batch_size=train["batch_size"],
                                    seq_len=train["max_seq_len"])
        step_s, epoch_s, steps = self._run_time(choice, n, train["batch_size"], train["max_seq_len"], mean_tokens,
                                                train["epochs"])
        step_s *= train["grad_accum"]
        steps = math.ceil(steps / train["grad_accum"])
        epoch_s = step_s * steps
        total_steps = train["max_steps"] or steps * train["epochs"]
        eval_s = self._eval_s(choice, n, train["batch_size"], train["max_seq_len"], mean_tokens)
        count = self.estimator.parameters(choice.method, choice.params)
        return {"memory_bytes": mem.total, "memory_budget": mem.budget, "fits": mem.fits,
                "memory_breakdown": mem.breakdown, "trainable": count.trainable, "total_params": count.total,
                "step_s": step_s, "epoch_s": epoch_s, "steps_per_epoch": steps, "total_steps": total_steps,
                "eval_s": eval_s, "total_s": _run_s(total_steps, step_s, eval_s),
                "assumes": "an otherwise idle machine (other programs on the same cores stretch the time)"}

    def _eval_s(self, choice: Choice, n: int, batch: int, seq: int, mean_tokens: float) -> float:
        """Seconds of one evaluation: the trainer scores up to MAX_EVAL validation examples (~10% of the data)."""
        val = min(MAX_EVAL, max(1, round(n * 0.1)))
        width = int(min(seq, max(16, mean_tokens * 1.3)))  # padded to the longest in each batch
        return self.estimator.forward_time(choice.method, choice.params,
                                           batches=[(batch, width)] * math.ceil(val / batch))


def recommend_for_dataset(data: str, purpose: Optional[str] = None, model: Optional[str] = None,
                          time_budget_s: Optional[float] = None, system_prompt: Optional[str] = None) -> Recommendation:
    """The recommendation for a prepared dataset (id or folder) or a data file, with a ready run config.

    The size is the training split's; the quality report is the dataset's ``quality.json`` when there is one. Without
    a purpose the task is classification when the data has labels, knowledge Q&A otherwise.
    """
    from core.data import load_split
    from core.fileio import read_json

    model = model or DEFAULT_MODEL
    train = load_split(data, "train")
    folder = Path(data) if Path(data).is_dir() else None
    if folder is None:
        try:
            from core.workspace import dataset_dir

            folder = dataset_dir(data) if dataset_dir(data).is_dir() else None
        except UserError:
            folder = None
    quality = read_json(folder / "quality.json", None) if folder else None
    if purpose:
        task = normalize_task(purpose)
    elif (quality or {}).get("num_labels", 0) >= 2 or \
            sum(bool(c.get("meta", {}).get("label")) for c in train) > len(train) / 2:
        task = "classification"
    elif sum(len(c.get("messages", [])) > 3 for c in train) > len(train) / 2:
        task = "multi_turn"
    else:
        task = "knowledge_qa"
    selector = StrategySelector(model)
    quality = _with_run_lengths(quality, train, model, system_prompt, selector.estimator.arch.max_positions)
    rec = selector.recommend(task, len(train), quality=quality, time_budget_s=time_budget_s, fit_steps=False)
    rec.config = rec.to_config(str(folder or data), model=model, system_prompt=system_prompt)
    if time_budget_s:
        fit_time_budget(rec, time_budget_s, selector.estimator)
    return rec


def _with_run_lengths(quality: Optional[dict], convs: list, model: str, system_prompt: Optional[str],
                      max_positions: int, sample: int = 500) -> dict:
    """The quality report with its token lengths (p95, mean) measured as the trainer will see the examples: the
    run's system prompt and the chat template included. A report made without the system prompt would pick a
    max_seq_len that cuts the answers off."""
    from core.data.loader import SmartDataLoader
    from core.models import load_tokenizer

    if not convs:
        return dict(quality or {})
    step = max(1, len(convs) // sample)
    loader = SmartDataLoader(load_tokenizer(model), system_prompt=system_prompt, max_seq_len=max_positions)
    lengths = sorted(len(ex["input_ids"]) for ex in loader.encode_all(convs[::step])[0])
    if not lengths:
        return dict(quality or {})
    out = dict(quality or {})
    checks = dict(out.get("checks") or {})
    p95 = lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))]
    checks["lengths"] = {**(checks.get("lengths") or {}), "p95": p95, "mean": sum(lengths) / len(lengths),
                         "with_system_prompt": bool(system_prompt)}
    out["checks"] = checks
    out.pop("lengths", None)
    return out


def fit_time_budget(rec: Recommendation, budget_s: float, estimator: ResourceEstimator) -> None:
    """Re-time ``rec.config`` on the dataset's real batches and fit it to ``budget_s`` seconds, in place.

    Reads the data the way the trainer will batch it and takes the most epochs, up to the recommended ones, that
    fit, or one epoch capped by ``max_steps`` (evaluations counted). ``rec`` comes from
    ``StrategySelector.recommend(..., fit_steps=False)``, whose epochs assume no budget.
    """
    est = estimator.estimate(rec.config)
    if not est.total_s or not est.steps_per_epoch or est.epoch_s is None:
        return
    per_epoch = est.steps_per_epoch
    step_s = est.epoch_s / per_epoch
    eval_s, every = float(est.data.get("eval_s") or 0.0), int(normalize_config(rec.config)["train"]["eval_every"])

    def run_s(steps: int) -> float:
        return steps * step_s + math.ceil(steps / every) * eval_s

    wanted = int(rec.train["epochs"])
    epochs, max_steps = _fit_steps(wanted, per_epoch, run_s, budget_s)
    steps = max_steps or epochs * per_epoch
    rec.config["train"].update(epochs=epochs, max_steps=max_steps)
    rec.train = dict(rec.config["train"])
    if max_steps:
        plan = f"{steps} steps ({steps / per_epoch:.1f} of an epoch) fit"
    else:
        plan = f"{epochs} epoch{'s' if epochs > 1 else ''}" + (f" of the {wanted}" if epochs < wanted else "") + \
            f" ({steps} steps) fit"
    rec.reasons.append(f"On your data one epoch is {per_epoch} steps of ~{step_s:.1f} s on this machine: {plan} "
                       f"your time budget of {_human(budget_s)} (about {_human(run_s(steps))}, evaluations "
                       "included).")
    rec.estimate.update(total_steps=steps, total_s=run_s(steps), step_s=step_s)


def _fit_steps(wanted_epochs: int, steps_per_epoch: int, run_s, budget_s: float) -> tuple[int, Optional[int]]:
    """(epochs, max_steps): the most epochs up to ``wanted_epochs`` whose ``run_s`` fits, else one epoch capped."""
    for epochs in range(max(1, wanted_epochs), 0, -1):
        if run_s(epochs * steps_per_epoch) <= budget_s:
            return epochs, None
    lo, hi = MIN_BUDGET_STEPS, max(MIN_BUDGET_STEPS, steps_per_epoch - 1)
    while lo < hi:  # the largest step count that fits (run_s grows with steps), never below the minimum
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if run_s(mid) <= budget_s else (lo, mid - 1)
    return 1, lo


def _run_s(steps: int, step_s: float, eval_s: float) -> float:
    """A run's seconds: its steps plus an evaluation every EVAL_EVERY steps and one at the end."""
    return steps * step_s + (steps // EVAL_EVERY + (1 if steps % EVAL_EVERY else 0)) * eval_s


def normalize_task(task: str) -> str:
    """A task kind from its name or an alias ('persona', 'routing', 'chat', ...)."""
    key = str(task).strip().lower().replace(" ", "_")
    key = TASK_ALIASES.get(key, TASK_ALIASES.get(key.replace("_", "-"), key))
    if key not in TASKS:
        raise UserError(f"Unknown task kind {task!r}; choose one of {', '.join(TASKS)} "
                        "(style/persona, knowledge Q&A, classification/routing, multi-turn chat).")
    return key


def _quality_notes(quality: Optional[dict]) -> list:
    """Data problems worth fixing before training, from the quality report's biggest deductions."""
    if not quality:
        return []
    notes = []
    score = quality.get("score")
    if isinstance(score, (int, float)) and score < 70:
        notes.append(f"Data quality score {score}/100: fixing the data will help more than any setting.")
    for d in (quality.get("deductions") or [])[:3]:
        if isinstance(d, dict) and d.get("points", 0) >= 3 and d.get("fix"):
            notes.append(f"{d.get('cause', d.get('check', 'data'))}: {d['fix']}")
    return notes


def _human(seconds: float) -> str:
    """'45 s', '12 min', '3.2 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ================================================================ the CLI
def estimate_command(args) -> int:
    """``python -m core estimate --config RUN.yaml [--json]``: parameters, memory and time for a run config."""
    cfg = normalize_config(args.config)
    est = ResourceEstimator(cfg["model"], machine=Machine.detect(cfg["train"].get("device", "auto")))
    result = est.estimate(cfg)
    if getattr(args, "json", False):
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        print(format_estimate(result))
    return 0


def format_estimate(e: Estimate) -> str:
    """The readable breakdown ``estimate`` prints."""
    p, m, s = e.params, e.memory, e.step
    lines = [f"Model {e.model}, method {e.method}",
             f"  parameters: {p.trainable:,} trainable of {p.total:,} ({p.share:.3%})"
             + (f"; the method adds {p.added:,}" if p.added else ""),
             f"Peak memory ({m.device}): {m.total / GiB:.2f} GiB of {m.budget / GiB:.2f} GiB available "
             f"-> {'fits' if m.fits else 'DOES NOT FIT'}"]
    lines += [f"  {k:<24}{v / MiB:9.0f} MiB" for k, v in m.breakdown.items()]
    lines.append(f"Time per optimizer step: {s.seconds:.2f} s ({s.tokens:,} tokens, {s.flops / 1e12:.2f} TFLOP; "
                 f"machine {e.speed['matmul_gflops']:.1f} GFLOP/s matmul, {e.speed['bandwidth_gbs']:.1f} GB/s)")
    lines += [f"  {k:<24}{v:9.2f} s" for k, v in s.breakdown.items()]
    if e.epoch_s is not None:
        d = e.data
        lines.append(f"Per epoch: {e.steps_per_epoch} steps, about {_human(e.epoch_s)} "
                     f"({d.get('examples', 0):,} examples, {d.get('tokens', 0):,} tokens, "
                     f"{d.get('label_tokens', 0):,} answer tokens, {'packed' if d.get('packing') else 'padded'})")
        if e.total_s is not None:
            evals = (f", including {d['evals']} evaluation{'s' if d['evals'] > 1 else ''} (about "
                     f"{_human(d['eval_s'])} each)" if d.get("evals") else "")
            lines.append(f"Whole run: {e.total_steps} steps, about {_human(e.total_s)}{evals}")
        lines.append("  (times assume the machine is otherwise idle; other programs on the same cores stretch them)")
    for prob in e.problems:
        lines.append(f"Problem: {prob}")
    if e.suggestion:
        lines.append("Smallest change that fits: " + ", ".join(f"{k}={v}" for k, v in e.suggestion.items()))
    return "\n".join(lines)
