"""The resource estimator: exact parameters, peak memory and time per step, epoch and run for a config."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import core.strategy.machine as machine_module
from core.defaults import DEFAULT_MODEL, TRAIN_DEFAULTS
from core.strategy.arch import (
    MethodShape,
    ParamCount,
    arch_of,
    build_meta,
    model_config,
)
from core.strategy.loss_profile import logit_rows, loss_profile
from core.strategy.machine import Machine, MachineSpeed, MiB
from core.strategy.objective import answer_share, time_factor
from core.strategy.shapes import dataset_shapes, normalize_config
from core.training.loss import UNPAD_MIN_ROW_TOKENS, UNPADDED

BYTES = 4  # the trainer trains in float32 (weights, gradients, activations)

# Constants fitted against measured peak RSS and step times of the default model on a 2-core machine by
# bench/estimate_bench.py (subprocess per config, ru_maxrss; step times in CPU seconds per thread). They are the
# only numbers here not derived from the model's structure or the machine's measured speed; the bench's table
# shows how well they hold.
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
    # Fitted on a quiet machine (bench/estimate_bench.py --quick, load < 1.5, 126 GFLOP/s micro-benchmark):
    # 128-token micro-batches reached ~48-56% of it, 512-token ones ~69-80%; a fit on a loaded machine
    # over-estimates step time 2.5-3.6x.
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



@dataclass
class MemoryEstimate:
    """Peak memory of a training process, with its parts (bytes)."""

    total: int
    breakdown: dict
    budget: int
    device: str

    @property
    def fits(self) -> bool:
        """Whether the peak stays within the machine's budget."""
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
    epoch_s: float | None
    steps_per_epoch: int | None
    total_steps: int | None
    total_s: float | None
    data: dict
    machine: dict
    speed: dict
    problems: list = field(default_factory=list)
    suggestion: dict | None = None

    def to_dict(self) -> dict:
        """JSON-able form (the ``--json`` output)."""
        d = asdict(self)
        d["params"]["share"] = self.params.share
        d["memory"]["fits"] = self.memory.fits
        return d


class ResourceEstimator:
    """Parameters, peak memory and time of a training run for one base model on one machine."""

    def __init__(self, model: str = DEFAULT_MODEL, machine: Machine | None = None,
                 speed: MachineSpeed | None = None):
        self.model = model
        self.machine = machine or Machine.detect()
        self._speed = speed
        self.arch = arch_of(model_config(model))

    @property
    def speed(self) -> MachineSpeed:
        """The machine's measured speed (benchmarked once, then cached on disk)."""
        if self._speed is None:
            self._speed = machine_module.machine_speed(self.machine)
        return self._speed

    # ------------------------------------------------------------ parameters
    def parameters(self, method: str, params: dict | None = None) -> ParamCount:
        """Exact (trainable, total) by applying the method to the model built on the meta device."""
        return self._meta(method, params)[0]

    def _meta(self, method: str, params: dict | None) -> tuple[ParamCount, MethodShape]:
        return build_meta(self.model, method, json.dumps(params or {}, sort_keys=True, default=list))

    # ------------------------------------------------------------ memory
    def activation_floats(self, method: str, params: dict | None, seq_len: int, masked: bool,
                          unpadded: bool | None = None) -> dict:
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

    def memory(self, method: str, params: dict | None = None, *, batch_size: int = TRAIN_DEFAULTS["batch_size"],
               seq_len: int = TRAIN_DEFAULTS["max_seq_len"], label_tokens: int | None = None,
               masked: bool | None = None, unpadded: bool | None = None) -> MemoryEstimate:
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
        rows = logit_rows(tokens, label_tokens)
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
    def flops(self, method: str, params: dict | None, *, tokens: int, seq_len: int, logit_rows: int,
              masked: bool) -> dict:
        """Training FLOPs of one micro-batch, per part (forward, backward to inputs, backward to weights)."""
        a, (_, shape) = self.arch, self._meta(method, params)
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

    def step_time(self, method: str, params: dict | None = None, *, batches: list[tuple],
                  masked: bool | None = None) -> StepTime:
        """Seconds for one optimizer step over micro-batches given as (batch, seq_len, label_tokens[, masked]).

        A micro-batch's own ``masked`` flag (from the data) wins; otherwise ``masked`` (default: masked)."""
        default_masked = True if masked is None else masked
        count, shape = self._meta(method, params)
        speed, total_flops, tokens, act_bytes, matmul_s = self.speed, 0.0, 0, 0.0, 0.0
        dropout_floats = sum(d_in for _, d_in, _, _, p in shape.lora_modules if p > 0)
        lora_s = dropout_s = 0.0
        for b, t, labels, *flag in batches:
            masked = flag[0] if flag else default_masked
            rows = logit_rows(b * t, labels)
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

    def forward_time(self, method: str, params: dict | None, *, batches: list[tuple[int, int]]) -> float:
        """Seconds of no-grad forward passes of the loss (evaluation) over (batch, seq_len) batches."""
        seconds = 0.0
        for b, t in batches:
            rows = logit_rows(b * t, None)
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
        data = dataset_shapes(cfg, self.model) if with_data and cfg.get("data") else {}
        B, T = tc["batch_size"], tc["max_seq_len"]
        if data.get("batches"):
            # Each loader batch is a list of forward passes (row groups, shared prefixes): see _micro_batches.
            widest = max((s for groups in data["batches"] for s in groups), key=lambda s: s[0] * s[1])
            mem = self.memory(method, params, batch_size=widest[0], seq_len=widest[1], label_tokens=widest[2],
                              masked=widest[3])
            per_batch = [self.step_time(method, params, batches=groups) for groups in data["batches"]]
            accum = tc["grad_accum"]
            steps = max(1, math.ceil(len(per_batch) / accum))
            opt_s = per_batch[0].breakdown["optimizer"]
            # Each micro-batch pays its own forward/backward; the optimizer runs once per step.
            epoch = sum(p.seconds - p.breakdown["optimizer"] for p in per_batch) + steps * opt_s
            epoch *= data.get("scale", 1.0)
            steps = math.ceil(steps * data.get("scale", 1.0))
            largest = max(data["batches"], key=lambda groups: sum(g[0] * g[1] for g in groups))
            step = self.step_time(method, params, batches=largest * accum)
        else:  # no data to look at: padded batches, which carry an attention mask
            mem = self.memory(method, params, batch_size=_rows_per_group(B, T, tc), seq_len=T, masked=True)
            step = self.step_time(method, params, batches=[(B, T, B * T // 2)] * tc["grad_accum"], masked=True)
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
        return with_objective(est, cfg.get("objective"))  # problems and fixes: core.strategy.fit.checked_estimate


def with_objective(est: Estimate, objective: str | None) -> Estimate:
    """The estimate with a preference objective's extra passes counted (core/strategy/objective.py), in place."""
    if objective not in ("dpo", "orpo"):
        return est
    share = answer_share(est.data.get("tokens") or 0, est.data.get("label_tokens") or 0)
    factor = time_factor(objective, 1.0 - share, share)
    est.step.seconds *= factor
    est.step.breakdown = {k: v * factor for k, v in est.step.breakdown.items()}
    est.epoch_s = est.epoch_s * factor if est.epoch_s is not None else None
    est.total_s = est.total_s * factor if est.total_s is not None else None
    est.data["objective"], est.data["objective_factor"] = objective, round(factor, 3)
    return est


def _rows_per_group(batch: int, seq_len: int, train: dict) -> int:
    """Rows the trainer runs through one forward+backward: it splits a batch into groups of at most
    ``train.micro_batch_tokens`` tokens (core.training.loss.split_rows), so activations follow that budget."""
    budget = train.get("micro_batch_tokens") or batch * seq_len
    return max(1, min(batch, budget // max(1, seq_len)))

