"""Training throughput: our LoRA / Adapter / Prefix against HF peft's LoRA and prefix tuning (issue 9).

Every (implementation, method) trains in a fresh subprocess (honest peak RSS) on the same default model,
the same Bitext customer-support examples rendered with the chat template (30–160 tokens, batch 8, AdamW),
and the same number of steps; the runs alternate ours/peft so machine noise hits both alike.
peft's side is the plain loop a user would write: pad to the batch's longest, ``model(**batch, labels=...)``.
Ours is what our trainer does by default: no compute on padding (every real token of a row group in one packed
sequence, attention per example), the prompt prefix all rows share computed once, the output head and
cross-entropy only where there are labels (fused, chunked), sdpa attention.

    python -m core bench throughput            # full table (best of 2 rounds), then chat speed
    python bench/throughput.py --quick         # a smoke run of a few steps
    python bench/throughput.py --steps 20 --no-generation
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
from core.defaults import DEFAULT_MODEL  # noqa: E402 - after the path insert
BITEXT = ROOT / ".." / "shared" / "data" / "bitext_customer_support"
VERSIONS = ("v1_short_responses", "v2_long_responses")  # alternated: lengths spread over 30–160 tokens
SYSTEM = "You are a friendly customer-support assistant."
CASES = [("peft", "lora"), ("ours", "lora"), ("peft", "prefix"), ("ours", "prefix"), ("ours", "adapter")]
LR = {"lora": 2e-4, "prefix": 1e-2, "adapter": 1e-3}


def examples(tok, n: int, seed: int = 0) -> list[dict]:
    """n chat examples of 30–160 tokens, alternately from Bitext's short- and long-response sets (seeded order),
    encoded with labels on the answer only. The short set alone spans only 53–91 tokens; the alternation gives
    the spread of lengths (and so the padding) of the chat-shaped 30–160-token batches the issue describes."""
    import random

    import pandas as pd

    from core.data.loader import SmartDataLoader

    loader = SmartDataLoader(tok, system_prompt=SYSTEM, max_seq_len=512)
    pools = []
    for version in VERSIONS:
        frame = pd.read_csv(BITEXT / version / "Bitext_Sample_Customer_Support_Training_Dataset.csv")
        rows = list(zip(frame["instruction"], frame["response"]))
        random.Random(seed).shuffle(rows)
        pools.append(iter(rows))
    out = []
    while len(out) < n:
        for pool in pools:  # one from each set in turn
            for q, a in pool:
                ex = loader.encode({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
                if 30 <= len(ex["input_ids"]) <= 160:
                    out.append(ex)
                    break
            else:
                raise RuntimeError("not enough examples")
    return out[:n]


def padded_batch(batch: list[dict], pad_id: int) -> dict:
    """peft side: right-pad to the batch's longest (what a plain HF loop does)."""
    width = max(len(e["input_ids"]) for e in batch)
    ids = torch.full((len(batch), width), pad_id)
    labels = torch.full((len(batch), width), -100)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e["input_ids"])
        ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(e["input_ids"]), torch.tensor(e["labels"]), 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def peft_model(model, method: str):
    """HF peft's LoRA (r=8, q_proj+v_proj) or prefix tuning (20 virtual tokens)."""
    from peft import LoraConfig, PrefixTuningConfig, TaskType, get_peft_model

    if method == "lora":
        cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                         task_type=TaskType.CAUSAL_LM)
    elif method == "prefix":
        cfg = PrefixTuningConfig(num_virtual_tokens=20, task_type=TaskType.CAUSAL_LM)
    else:
        raise ValueError(f"peft has no {method} case in this benchmark")
    return get_peft_model(model, cfg)


def our_model(model, method: str):
    """Our engine, same settings."""
    from core.peft import AdapterConfig, LoRAConfig, PrefixConfig, apply_peft

    cfg = {"lora": LoRAConfig(r=8, alpha=16, dropout=0.0, target_modules=("q_proj", "v_proj")),
           "prefix": PrefixConfig(num_virtual_tokens=20, projection_dim=0),
           "adapter": AdapterConfig(bottleneck=64)}[method]
    model = apply_peft(model, cfg)
    if os.environ.get("BENCH_LEAN", "1") == "1":
        from core.training.swiglu import lean_swiglu

        lean_swiglu(model)  # as the trainer does
    return model


def worker(spec: dict) -> dict:
    """Train one case for spec['steps'] steps; return tokens/s, peak RSS and the loss curve."""
    from core.models import load_model

    torch.set_num_threads(int(spec.get("threads", os.cpu_count() or 1)))
    torch.manual_seed(0)
    model, tok = load_model(DEFAULT_MODEL)
    impl, method, steps, bsz = spec["impl"], spec["method"], spec["steps"], spec["batch"]
    data = examples(tok, steps * bsz)
    model = peft_model(model, method) if impl == "peft" else our_model(model, method)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR[method], weight_decay=0.0)
    losses, real_tokens, t_train = [], 0, 0.0
    for step in range(steps + 1):  # step 0 is a warm-up, not timed
        chunk = data[(step % steps) * bsz:(step % steps + 1) * bsz]
        t0 = time.perf_counter()
        if impl == "peft":
            batch = padded_batch(chunk, tok.pad_token_id)
            loss = model(**batch).loss
            loss.backward()
        else:
            loss = _our_step(model, tok, chunk, method)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step > 0:
            t_train += time.perf_counter() - t0
            real_tokens += sum(len(e["input_ids"]) for e in chunk)
            losses.append(float(loss))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"impl": impl, "method": method, "steps": steps, "tokens_per_s": real_tokens / t_train,
            "peak_rss_mb": rss_mb, "final_loss": sum(losses[-3:]) / len(losses[-3:]), "losses": losses}


def _our_step(model, tok, chunk: list[dict], method: str, max_seq_len: int | None = None):
    """Our trainer's default step: the loader's batch (packed into max_seq_len-token rows, 512 by default, unless
    prefix), run as row groups of <= 1024 tokens (train.micro_batch_tokens), each with the fast loss; returns the
    mean loss."""
    from core.data.loader import SmartDataLoader
    from core.training.config import TrainSection
    from core.training.loss import causal_lm_loss, split_rows

    section = TrainSection(packing=os.environ.get("BENCH_PACKING", str(TrainSection.packing)) == "True",
                           micro_batch_tokens=int(os.environ.get("BENCH_MICRO_TOKENS", TrainSection.micro_batch_tokens)))
    loader = SmartDataLoader(tok, system_prompt=SYSTEM, max_seq_len=max_seq_len or section.max_seq_len)
    packing = section.packing and method != "prefix"
    (batch,) = list(loader.batches(chunk, batch_size=len(chunk), packing=packing, shuffle=False))
    groups = split_rows(batch, section.micro_batch_tokens)
    n_total = sum(int((g["labels"][:, 1:] != -100).sum()) for g in groups)
    total = 0.0
    for group in groups:
        loss_sum, _ = causal_lm_loss(model, group)
        (loss_sum / n_total).backward()
        total += float(loss_sum)
    return torch.tensor(total / n_total)


ROUNDS = 6  # base/merged pairs, in ABBA order so a slow spell of the machine hits both alike


def generation_worker(spec: dict) -> dict:
    """Chat speed of the base model, our LoRA unmerged (once), and merged (``merge_lora``): greedy answers of up
    to 48 tokens to Bitext questions, KV cache on; base and merged measured in ROUNDS pairs, ABBA order."""
    import pandas as pd

    from core.evaluation.performance import PerformanceTester
    from core.models import load_model
    from core.peft import merge_lora

    torch.set_num_threads(int(spec.get("threads", os.cpu_count() or 1)))
    torch.manual_seed(0)
    base, tok = load_model(DEFAULT_MODEL)
    base.eval()
    frame = pd.read_csv(BITEXT / VERSIONS[0] / "Bitext_Sample_Customer_Support_Training_Dataset.csv")
    prompts = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}]
               for q in frame["instruction"].sample(n=spec.get("prompts", 3), random_state=0)]
    tester = PerformanceTester(tok, prompts, max_new_tokens=48, batch_size=8)
    tuned, _ = load_model(DEFAULT_MODEL)
    tuned = our_model(tuned, "lora")
    with torch.no_grad():  # a non-zero update, as after training, so that merging really changes the weights
        for name, p in tuned.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.01)
    tuned.eval()
    runs = [tester.measure(tuned, "LoRA unmerged")]
    tuned = merge_lora(tuned)
    pair = [("base", base), ("LoRA merged", tuned)]
    for r in range(spec.get("rounds", ROUNDS)):
        for name, model in (pair if r % 2 == 0 else pair[::-1]):
            runs.append({**tester.measure(model, name), "round": r})
    return {"generation": runs}


def generation_table(runs: list[dict]) -> str:
    """Per model: medians of first-token latency and tokens/s; merged vs base as the median of the per-round
    ratios (each round measures both, back to back)."""
    import statistics

    names = ["base"] + [n for n in dict.fromkeys(r["name"] for r in runs) if n != "base"]
    keys = ("ttft_p50_s", "tokens_per_s", "batch_tokens_per_s")
    med = {n: {k: statistics.median(r[k] for r in runs if r["name"] == n) for k in keys} for n in names}
    by_round: dict = {}
    for r in runs:
        if "round" in r:
            by_round.setdefault(r["round"], {})[r["name"]] = r["tokens_per_s"]
    paired = [v["LoRA merged"] / v["base"] for v in by_round.values() if len(v) == 2]
    lines = [f"{'model':<14} {'TTFT p50 s':>10} {'tokens/s':>9} {'batch-8 tok/s':>13} {'speed x base':>12}"]
    for n in names:
        m = med[n]
        ratio = statistics.median(paired) if n == "LoRA merged" and paired else m["tokens_per_s"] / med["base"][
            "tokens_per_s"]
        lines.append(f"{n:<14} {m['ttft_p50_s']:10.3f} {m['tokens_per_s']:9.1f} {m['batch_tokens_per_s']:13.1f} "
                     f"{ratio:12.3f}")
    if paired:
        lines.append(f"merged / base per round: {' '.join(f'{x:.3f}' for x in paired)}")
    return "\n".join(lines)


def run_case(impl: str, method: str, steps: int, batch: int) -> dict:
    """One case in a fresh interpreter."""
    from bench.common import run_worker

    return run_worker(__file__, {"impl": impl, "method": method, "steps": steps, "batch": batch}, f"{impl}/{method}")


def best_of(runs: list[dict]) -> dict:
    """One case over its rounds: the fastest round's tokens/s (other programs on the cores only ever slow a run
    down), the largest peak RSS (the conservative side), and every round's tokens/s for the record."""
    best = dict(max(runs, key=lambda r: r["tokens_per_s"]))
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    best["rounds_tokens_per_s"] = [r["tokens_per_s"] for r in runs]
    return best


def table(results: list[dict]) -> str:
    """The printed table: per case tokens/s, peak RSS, final loss, and ours/peft ratios."""
    peft = {r["method"]: r for r in results if r["impl"] == "peft"}
    lines = [f"{'impl':<5} {'method':<8} {'tokens/s':>9} {'peak RSS MB':>12} {'final loss':>11} "
             f"{'speed x':>8} {'RSS x':>6} {'loss diff':>9}  tokens/s per round"]
    for r in results:
        ref = peft.get(r["method"]) if r["impl"] == "ours" else None
        ratio = f"{r['tokens_per_s'] / ref['tokens_per_s']:.2f}" if ref else "-"
        rss = f"{r['peak_rss_mb'] / ref['peak_rss_mb']:.2f}" if ref else "-"
        dloss = f"{(r['final_loss'] - ref['final_loss']) / ref['final_loss']:+.1%}" if ref else "-"
        rounds = " ".join(f"{x:.1f}" for x in r.get("rounds_tokens_per_s", [r["tokens_per_s"]]))
        lines.append(f"{r['impl']:<5} {r['method']:<8} {r['tokens_per_s']:9.1f} {r['peak_rss_mb']:12.0f} "
                     f"{r['final_loss']:11.4f} {ratio:>8} {rss:>6} {dloss:>9}  {rounds}")
    return "\n".join(lines)


def main(quick: bool = False, steps: int | None = None, batch: int = 8, generation: bool = True,
         rounds: int | None = None) -> list[dict]:
    """Run every case (alternating ours/peft, ``rounds`` times over) and print the table; then chat speed."""
    from bench.common import run_worker

    steps = steps or (3 if quick else 12)
    if rounds is None:
        rounds = 1 if quick else 2
    runs: dict = {}
    results: list = []
    for r in range(rounds):
        for impl, method in CASES:
            print(f"… round {r + 1}/{rounds}: {impl} {method} ({steps} steps, batch {batch})", file=sys.stderr,
                  flush=True)
            runs.setdefault((impl, method), []).append(run_case(impl, method, steps, batch))
    if rounds:
        results = [best_of(runs[case]) for case in CASES]
        print(f"Training throughput on {os.cpu_count()} CPU cores, SmolLM2-135M-Instruct float32, batch {batch}, "
              f"{steps} timed steps (Bitext short and long responses alternated, 30–160 tokens); best of {rounds} "
              "alternated rounds per case, largest peak RSS:")
        print(table(results))
    if generation:
        print("… chat speed: base, LoRA unmerged, LoRA merged", file=sys.stderr, flush=True)
        spec = {"generation": True, "prompts": 2 if quick else 3, "rounds": 2 if quick else ROUNDS}
        gen = run_worker(__file__, spec, "generation")["generation"]
        print(f"\nChat speed (greedy, up to 48 new tokens, KV cache; base and merged in {spec['rounds']} "
              "back-to-back rounds, medians):")
        print(generation_table(gen))
        results.append({"generation": gen})
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, help="alternated rounds over every case (default 2; 1 with --quick; "
                        "0: chat speed only)")
    parser.add_argument("--no-generation", action="store_true", help="skip the chat-speed part")
    parser.add_argument("--grid", action="store_true", help="the grid of data shapes instead (bench/shapes.py: "
                        "whole epochs, rows/s, GFLOP/s against the matmul peak)")
    args = parser.parse_args()
    if args.grid:
        from bench.shapes import main as grid_main

        if args.steps or args.rounds or args.batch != 8 or args.no_generation:
            parser.error("--grid runs whole epochs at batch 8 of every shape: --steps, --batch, --rounds and "
                         "--no-generation do not apply (bench/shapes.py takes --shapes, --scale, --threads)")
        grid_main(quick=args.quick)
    elif args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(generation_worker(spec) if spec.get("generation") else worker(spec)))
    else:
        main(args.quick, args.steps, args.batch, generation=not args.no_generation, rounds=args.rounds)
