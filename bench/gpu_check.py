"""The GPU check (issue 20): SmolLM2 + LoRA for 100 steps in bf16 on one CUDA GPU, about 5 minutes, one table.

    python bench/gpu_check.py                    # on a machine with CUDA
    python bench/gpu_check.py --smoke            # the same code on the CPU with tiny-llama, 3 steps (a code check)

Rows of the table:
  * loss agreement: the bf16-autocast run's loss curve against a float32 run's on the same data and seed;
  * training tokens/s: our trainer's step (core.training.loss, our LoRA) against HF peft + the model's own loss,
    both under the same autocast, same data, same GPU;
  * peak GPU memory: torch.cuda.max_memory_allocated against core.device.gpu_memory_estimate;
  * decoder tokens/s: core.decoding.Decoder against HF generate, greedy, same prompts.
Without CUDA (and without --smoke) it says so and exits 0.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
from core.defaults import DEFAULT_MODEL  # noqa: E402 - after the path insert

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
LORA = dict(r=8, alpha=16, dropout=0.0, target_modules=("q_proj", "v_proj"))


def batches(tok, n_batches: int, rows: int, seed: int = 0) -> list[dict]:
    """Right-padded chat batches (labels on every real token) of a learnable pattern."""
    rng = random.Random(seed)
    out = []
    for _ in range(n_batches):
        ids = []
        for _ in range(rows):
            k = rng.randrange(len(WORDS))
            msgs = [{"role": "user", "content": f"code {k}: " + " ".join(rng.choices(WORDS, k=rng.randrange(4, 40)))},
                    {"role": "assistant", "content": " ".join([WORDS[k]] * 3)}]
            text = tok.apply_chat_template(msgs, tokenize=False)
            ids.append(tok(text, add_special_tokens=False)["input_ids"])
        width = max(map(len, ids))
        x = torch.full((rows, width), tok.pad_token_id)
        mask = torch.zeros_like(x)
        for i, row in enumerate(ids):
            x[i, :len(row)], mask[i, :len(row)] = torch.tensor(row), 1
        out.append({"input_ids": x, "attention_mask": mask, "labels": x.masked_fill(mask == 0, -100)})
    return out


def _to(batch: dict, dev) -> dict:
    return {k: v.to(dev) for k, v in batch.items()}


def train_ours(name: str, data: list[dict], dev, dtype) -> dict:
    """Our LoRA + our loss path: losses per step, tokens/s, peak memory and the estimate."""
    from core.device import autocast, gpu_memory_estimate, grad_scaler
    from core.models import load_model
    from core.peft import LoRAConfig, apply_peft, trainable_parameters
    from core.strategy.arch import arch_of
    from core.training.loss import causal_lm_loss
    from core.training.swiglu import lean_swiglu

    torch.manual_seed(0)
    model, _ = load_model(name)
    model = apply_peft(model, LoRAConfig(**LORA))
    lean_swiglu(model)
    model.to(dev).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    scaler = grad_scaler(dev, dtype)
    _reset_peak(dev)
    losses, tokens, t0 = [], 0, None
    for i, b in enumerate(data):
        if i == 1:  # the first step warms kernels and the allocator up
            _sync(dev)
            t0 = time.perf_counter()
        b = _to(b, dev)
        with autocast(dev, dtype):
            total, n = causal_lm_loss(model, b)
        loss = total / n
        (scaler.scale(loss) if scaler else loss).backward()
        (scaler.step(opt), scaler.update()) if scaler else opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        tokens += int(b["attention_mask"].sum()) if i else 0
    _sync(dev)
    trainable, total_params = trainable_parameters(model)
    est = gpu_memory_estimate(arch_of(model.config), total_params, trainable, max(b["input_ids"].numel() for b in data),
                              dtype)
    return {"losses": losses, "tok_s": tokens / (time.perf_counter() - t0), "peak": _peak(dev), "estimate": est,
            "model": model}


def train_peft(name: str, data: list[dict], dev, dtype) -> dict:
    """HF peft's LoRA with the model's own loss, same data and autocast: tokens/s."""
    import peft

    from core.device import autocast
    from core.models import load_model

    torch.manual_seed(0)
    base, _ = load_model(name)
    model = peft.get_peft_model(base, peft.LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=0.0,
                                                      target_modules=list(LORA["target_modules"]),
                                                      task_type="CAUSAL_LM")).to(dev).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    tokens, t0 = 0, None
    for i, b in enumerate(data):
        if i == 1:
            _sync(dev)
            t0 = time.perf_counter()
        b = _to(b, dev)
        with autocast(dev, dtype):
            loss = model(**b).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += int(b["attention_mask"].sum()) if i else 0
    _sync(dev)
    return {"tok_s": tokens / (time.perf_counter() - t0)}


def decode_speed(model, tok, dev, n_prompts: int, new_tokens: int) -> tuple[float, float]:
    """Greedy tokens/s of our decoder and of HF generate (batch of ``n_prompts``, ``new_tokens`` each)."""
    from core.chat_template import end_token_ids, prompt_ids
    from core.decoding.batch import Decoder
    from core.decoding.sampling import SamplingParams

    model.eval()
    prompts = [prompt_ids(tok, [{"role": "user", "content": f"Tell me about {w} number {i}."}])
               for i, w in enumerate(WORDS * (n_prompts // len(WORDS) + 1))][:n_prompts]
    ends = end_token_ids(tok)
    _sync(dev)
    t0 = time.perf_counter()
    answers = Decoder(model, tok).generate(prompts, SamplingParams(max_new_tokens=new_tokens), batch_size=n_prompts)
    _sync(dev)
    ours = sum(len(a.token_ids) for a in answers) / (time.perf_counter() - t0)
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), ends[0])
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):  # left padding, as generate wants
        ids[i, width - len(p):], mask[i, width - len(p):] = torch.tensor(p), 1
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), max_new_tokens=new_tokens,
                             do_sample=False, eos_token_id=ends, pad_token_id=ends[0])
    _sync(dev)
    made = sum(int((row[width:] != ends[0]).sum()) for row in out.cpu())
    return ours, made / (time.perf_counter() - t0)


def _sync(dev) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _reset_peak(dev) -> None:
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


def _peak(dev) -> int:
    return torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else 0


def table(rows: list[tuple[str, str, str, str]]) -> str:
    """Rows of (check, ours, reference, verdict) as one aligned text table."""
    head = ("check", "ours", "reference", "result")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(4)]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(head), line(tuple("-" * w for w in widths))] + [line(r) for r in rows])


def main(argv: list[str] | None = None) -> int:
    """Run the check (or explain why not) and print its table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--rows", type=int, default=16, help="rows per training batch")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--smoke", action="store_true", help="run on the CPU with tiny-llama and 3 steps (code check)")
    args = p.parse_args(argv)
    if args.smoke:
        args.model, args.steps, args.rows, dev, dtype = "tiny-llama", 3, 4, torch.device("cpu"), None
    elif not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU on this machine; nothing to check (run it on a machine with one).")
        return 0
    else:
        from core.device import autocast_dtype

        dev = torch.device("cuda", 0)
        dtype = autocast_dtype(dev)
    from core.models import load_tokenizer

    tok = load_tokenizer(args.model)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    data = batches(tok, args.steps, args.rows)
    low = train_ours(args.model, data, dev, dtype)
    full = train_ours(args.model, data, dev, None)
    diff = max(abs(a - b) for a, b in zip(low["losses"], full["losses"]))
    try:
        ref = train_peft(args.model, data, dev, dtype)["tok_s"]
    except ImportError:
        ref = float("nan")
    ours_dec, hf_dec = decode_speed(low["model"], tok, dev, 8 if args.smoke else 32, 8 if args.smoke else 128)
    est = low["estimate"]["total"]
    rows = [
        ("loss agreement bf16 vs fp32 (max |diff|)", f"{diff:.4f}", f"final fp32 {full['losses'][-1]:.4f}",
         "ok" if diff < 0.05 * max(full["losses"][0], 1) else "CHECK"),
        ("training tokens/s (LoRA)", f"{low['tok_s']:,.0f}", f"{ref:,.0f} (HF peft)",
         f"{low['tok_s'] / ref:.2f}x" if ref == ref else "peft missing"),
        ("peak GPU memory (MiB)", f"{low['peak'] / 2**20:,.0f}", f"{est / 2**20:,.0f} (estimate)",
         "within" if low["peak"] <= est else "OVER"),
        ("decoder tokens/s (greedy)", f"{ours_dec:,.0f}", f"{hf_dec:,.0f} (HF generate)", f"{ours_dec / hf_dec:.2f}x"),
    ]
    print(f"gpu_check on {dev} ({'bf16' if dtype == torch.bfloat16 else dtype or 'float32'}), {args.model}, "
          f"{args.steps} steps x {args.rows} rows")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
