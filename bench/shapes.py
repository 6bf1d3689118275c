"""Training throughput over a grid of data shapes (issue 19): one WHOLE epoch per case, ours against HF peft.

Shapes (each encoded as our line encodes it: chat template, system prompt, labels on the answers only; documents
through core/data/chunking.py windows with every token learned), rows from ``../shared/data`` and assets/:

    short      Bitext v1 support chats of 40–100 tokens                         (ROWS["short"] rows)
    long       Bitext v1/v2 chats alternated, 30–512 tokens                      (spread lengths, much padding)
    classify   banking77: a long system prompt listing 40 intents (rows of those), one-word answers
    docs512    Bitext v2 responses concatenated, packed into 512-token windows, loss on all tokens
    docs1024   the same at 1024 tokens (peft's full logits: 8 x 1024 x 49,152 floats, several GB per step)
    zh         Chinese support chats (assets/samples/support_faq_zh.jsonl; ../shared/data has no Chinese ShareGPT)

Every case is LoRA r=8 on q,v, batch 8, dropout 0, AdamW, the same seed and row order on both sides, in a fresh
subprocess (honest peak RSS); within a shape the two sides run back to back, the order alternating shape by
shape. Reported per case: rows/s over the epoch (every step timed, the first included), real tokens/s,
achieved GFLOP/s against the matmul peak measured once at the start (2048 x 2048 float32, the workers' thread
count), peak RSS, and the final loss (mean of the last 10% of steps). Also the epoch's process CPU time: with one
thread per case (``--threads 1``) rows per CPU-second is what the case costs whatever else runs on the machine,
which wall time on a shared, oversubscribed machine is not.

GFLOP/s counts the same useful arithmetic for both sides (padding and skipped head rows are not work):
    FLOPs = 4·N_body·T + 4·V·d·L + 6·n_layers·d_attn·Σ_rows n_i²
T real tokens, L label tokens, N_body the transformer's non-embedding parameters, V·d the output head, n_i the
tokens of example i. The standard 6·N·T for forward+backward minus the weight-gradient third (2·N·T), which
a frozen base does not compute (LoRA's own weight gradients are < 0.5% of N); the head runs where there are
labels; causal attention (QKᵀ and AV, half the square) is 2·n²·d forward and 2x that backward, no weights.

    python bench/throughput.py --grid            # the table at full size (ROWS: sized for ~1 min per ours case on
                                                 # an idle 2-core machine; not yet run at full size)
    python bench/shapes.py --scale 0.15 --threads 1   # what ran on the busy shared machine (issue 19 notes)
    python bench/shapes.py --quick               # smoke: a few rows per shape
    python bench/shapes.py --profile short       # top ops of ours on one shape (torch.profiler, self CPU)
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
from bench.throughput import BITEXT, SYSTEM, VERSIONS, _our_step, our_model, padded_batch, peft_model  # noqa: E402
from core.defaults import DEFAULT_MODEL  # noqa: E402

DATA = ROOT / ".." / "shared" / "data"
ZH = ROOT / "assets" / "samples" / "support_faq_zh.jsonl"
SHAPES = ("short", "long", "classify", "docs512", "docs1024", "zh")
# Rows per shape: one epoch of ours takes ~1 minute on this 2-core machine (docs: windows, not rows).
ROWS = {"short": 160, "long": 80, "classify": 64, "docs512": 24, "docs1024": 16, "zh": 64}
QUICK_ROWS = 8
RANGES = {"short": (40, 100), "long": (30, 512)}  # token ranges the chat shapes keep
SEQ = {"docs512": 512, "docs1024": 1024}  # window size of the document shapes (max_seq_len of their loader)
BATCH, LR = 8, 2e-4
CLASSIFY_LABELS = 40  # ~330-token system prompt: long, yet the rows fit the default 512-token max_seq_len
CLASSIFY_PROMPT = ("You are the intent router of a bank's customer-support desk. Read the customer's message and "
                   "answer with exactly one intent name from this list, nothing else: {labels}.")


def _bitext(version: str, seed: int = 0) -> list[tuple[str, str]]:
    """(instruction, response) pairs of one Bitext version, in a seeded order."""
    import pandas as pd

    frame = pd.read_csv(BITEXT / version / "Bitext_Sample_Customer_Support_Training_Dataset.csv")
    rows = list(zip(frame["instruction"], frame["response"]))
    random.Random(seed).shuffle(rows)
    return rows


def _chat(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def _in_range(examples: list[dict], lo: int, hi: int) -> list[dict]:
    return [e for e in examples if lo <= len(e["input_ids"]) <= hi]


def _chats(tok, shape: str, n: int) -> list[dict]:
    """The chat shapes: short (Bitext v1) and long (v1 and v2 alternated), filtered to their token range."""
    from core.data.loader import SmartDataLoader

    loader = SmartDataLoader(tok, system_prompt=SYSTEM, max_seq_len=512)
    pools = [_bitext(VERSIONS[0])] if shape == "short" else [_bitext(v) for v in VERSIONS]
    convs = [_chat(*pair) for group in zip(*pools) for pair in group][: n * 4]  # alternated; spare for the filter
    return _in_range(loader.encode_all(convs)[0], *RANGES[shape])[:n]


def _classify(tok, n: int) -> list[dict]:
    """banking77 intents: the long system prompt lists every label; the answer is the label alone."""
    import pandas as pd

    from core.data.loader import SmartDataLoader

    labels = json.loads((DATA / "banking77" / "categories.json").read_text())[:CLASSIFY_LABELS]
    loader = SmartDataLoader(tok, system_prompt=CLASSIFY_PROMPT.format(labels=", ".join(labels)), max_seq_len=512)
    frame = pd.read_csv(DATA / "banking77" / "train.csv")
    frame = frame[frame["category"].isin(labels)].sample(n=n, random_state=0)
    return loader.encode_all([_chat(t, c) for t, c in zip(frame["text"], frame["category"])])[0]


def _documents(tok, size: int, n: int) -> list[dict]:
    """Bitext v2 responses as plain documents, packed into ``size``-token windows (loss on every token)."""
    from core.data.loader import SmartDataLoader

    loader = SmartDataLoader(tok, max_seq_len=size)
    texts = [a for _, a in _bitext(VERSIONS[1])][: n * size // 60]  # responses average >100 tokens: enough
    return loader.encode_all([{"messages": [{"role": "assistant", "content": t}]} for t in texts])[0][:n]


def _chinese(tok, n: int) -> list[dict]:
    """Chinese support chats (their own system prompt), in a seeded order."""
    from core.data.loader import SmartDataLoader

    convs = [json.loads(line) for line in ZH.read_text(encoding="utf-8").splitlines() if line.strip()]
    random.Random(0).shuffle(convs)
    return SmartDataLoader(tok, max_seq_len=512).encode_all(convs[:n])[0]


def build(tok, shape: str, n: int) -> list[dict]:
    """``n`` encoded examples of one shape (fewer only if the source runs out)."""
    if shape in RANGES:
        return _chats(tok, shape, n)
    if shape == "classify":
        return _classify(tok, n)
    if shape in SEQ:
        return _documents(tok, SEQ[shape], n)
    if shape == "zh":
        return _chinese(tok, n)
    raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")


def useful_flops(model, examples: list[dict]) -> float:
    """The module docstring's formula: 4·N_body·T + 4·V·d·L + 6·n_layers·d_attn·Σ n_i²."""
    cfg = model.config
    emb = model.get_input_embeddings().weight
    body = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n) - emb.numel()
    head = emb.numel()  # tied (SmolLM2) or not, the head is V x d
    d_attn = cfg.num_attention_heads * getattr(cfg, "head_dim", cfg.hidden_size // cfg.num_attention_heads)
    tokens = sum(len(e["input_ids"]) for e in examples)
    labels = sum(sum(lab != -100 for lab in e["labels"][1:]) for e in examples)
    square = sum(len(e["input_ids"]) ** 2 for e in examples)
    return 4 * body * tokens + 4 * head * labels + 6 * cfg.num_hidden_layers * d_attn * square


def matmul_peak(threads: int, size: int = 2048, seconds: float = 0.5) -> float:
    """GFLOP/s of a float32 size x size matmul loop on ``threads`` threads: best of 3 windows."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = 0.0
    for _ in range(3):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            torch.mm(a, b)
            n += 1
        best = max(best, 2 * size ** 3 * n / (time.perf_counter() - t0) / 1e9)
    return best


def _setup(spec: dict):
    """(model, tokenizer, examples, optimizer) of one case, seeded."""
    from core.models import load_model

    torch.set_num_threads(int(spec.get("threads", os.cpu_count() or 1)))
    torch.manual_seed(0)
    model, tok = load_model(spec.get("model", DEFAULT_MODEL))
    data = build(tok, spec["shape"], spec["rows"])
    model = peft_model(model, "lora") if spec["impl"] == "peft" else our_model(model, "lora")
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR, weight_decay=0.0)
    return model, tok, data, opt


def _step(model, tok, chunk: list[dict], impl: str, shape: str) -> float:
    """One optimizer step's forward+backward on either side; returns the mean loss over label tokens."""
    if impl == "peft":
        loss = model(**padded_batch(chunk, tok.pad_token_id)).loss
        loss.backward()
        return float(loss)
    return float(_our_step(model, tok, chunk, "lora", max_seq_len=SEQ.get(shape)))


def worker(spec: dict) -> dict:
    """One whole epoch of one (impl, shape): rows/s, tokens/s, GFLOP/s, peak RSS, final loss."""
    model, tok, data, opt = _setup(spec)
    losses, t0, c0 = [], time.perf_counter(), time.process_time()
    for b in range(0, len(data), BATCH):
        losses.append(_step(model, tok, data[b:b + BATCH], spec["impl"], spec["shape"]))
        opt.step()
        opt.zero_grad(set_to_none=True)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    tail = losses[-max(1, len(losses) // 10):]
    return {"impl": spec["impl"], "shape": spec["shape"], "rows": len(data), "steps": len(losses),
            "seconds": seconds, "rows_per_s": len(data) / seconds, "cpu_s": cpu, "rows_per_cpu_s": len(data) / cpu,
            "tokens_per_s": sum(len(e["input_ids"]) for e in data) / seconds,
            "gflops": useful_flops(model, data) / seconds / 1e9,
            "mean_tokens": sum(len(e["input_ids"]) for e in data) / len(data),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "final_loss": sum(tail) / len(tail), "losses": losses}


def profile(shape: str, steps: int = 4, top: int = 20) -> str:
    """Ours on ``steps`` batches of one shape under torch.profiler (after one warm-up step): top ops by self CPU."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    model, tok, data, opt = _setup({"impl": "ours", "shape": shape, "rows": BATCH * (steps + 1)})
    _step(model, tok, data[:BATCH], "ours", shape)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for b in range(BATCH, len(data), BATCH):
            _step(model, tok, data[b:b + BATCH], "ours", shape)
            opt.step()
            opt.zero_grad(set_to_none=True)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)


def run_case(impl: str, shape: str, rows: int, model: str = DEFAULT_MODEL, threads: int | None = None) -> dict:
    """One case in a fresh interpreter."""
    from bench.common import run_worker

    spec = {"impl": impl, "shape": shape, "rows": rows, "model": model, "threads": threads or os.cpu_count() or 1}
    return run_worker(__file__, spec, f"{impl}/{shape}")


def table(results: list[dict], peak: float) -> str:
    """Per shape, peft then ours: rows/s, tokens/s, GFLOP/s (and % of peak), RSS, final loss, ours/peft ratios."""
    ref = {r["shape"]: r for r in results if r["impl"] == "peft"}
    lines = [f"{'shape':<9} {'impl':<5} {'rows':>5} {'tok/row':>7} {'epoch s':>8} {'rows/s':>7} {'tok/s':>7} "
             f"{'GFLOP/s':>8} {'%peak':>6} {'RSS MB':>7} {'loss':>7} {'speed x':>8} {'RSS x':>6} {'loss diff':>9} "
             f"{'CPU s':>7} {'CPU speed x':>11}"]
    for r in sorted(results, key=lambda r: (SHAPES.index(r["shape"]), r["impl"] != "peft")):
        p = ref.get(r["shape"]) if r["impl"] == "ours" else None
        speed = f"{r['rows_per_s'] / p['rows_per_s']:.2f}" if p else "-"
        rss = f"{r['peak_rss_mb'] / p['peak_rss_mb']:.2f}" if p else "-"
        dloss = f"{(r['final_loss'] - p['final_loss']) / p['final_loss']:+.2%}" if p else "-"
        cpu = f"{r['rows_per_cpu_s'] / p['rows_per_cpu_s']:.2f}" if p else "-"
        lines.append(f"{r['shape']:<9} {r['impl']:<5} {r['rows']:5d} {r['mean_tokens']:7.0f} {r['seconds']:8.1f} "
                     f"{r['rows_per_s']:7.2f} {r['tokens_per_s']:7.0f} {r['gflops']:8.2f} "
                     f"{100 * r['gflops'] / peak:5.1f}% {r['peak_rss_mb']:7.0f} {r['final_loss']:7.4f} "
                     f"{speed:>8} {rss:>6} {dloss:>9} {r['cpu_s']:7.1f} {cpu:>11}")
    for key, what in (("rows_per_s", "rows/s"), ("rows_per_cpu_s", "rows per CPU-second")):
        speeds = sorted(r[key] / ref[r["shape"]][key] for r in results if r["impl"] == "ours" and r["shape"] in ref)
        if speeds:
            lines.append(f"ours/peft {what}: min {speeds[0]:.2f}, median {statistics.median(speeds):.2f} "
                         f"(of {len(speeds)} shapes)")
    return "\n".join(lines)


def main(quick: bool = False, shapes: tuple[str, ...] = SHAPES, model: str = DEFAULT_MODEL, scale: float = 1.0,
         threads: int | None = None) -> list[dict]:
    """Every shape, peft and ours back to back (order alternating shape by shape); print the table.
    ``scale`` multiplies the rows of every shape (a busy machine: a shorter epoch, at least one batch)."""
    threads = threads or os.cpu_count() or 1
    peak = matmul_peak(threads)
    results = []
    for i, shape in enumerate(shapes):
        rows = QUICK_ROWS if quick else max(BATCH, round(ROWS[shape] * scale))
        for impl in (("peft", "ours") if i % 2 == 0 else ("ours", "peft")):
            print(f"… {shape}: {impl} ({rows} rows, one epoch)", file=sys.stderr, flush=True)
            try:
                r = run_case(impl, shape, rows, model, threads)
            except RuntimeError as e:  # one case killed (e.g. out of memory on a busy machine): keep the rest
                print(f"  {impl} {shape} FAILED: {str(e).splitlines()[0]}", file=sys.stderr, flush=True)
                continue
            results.append(r)  # as it comes: a long grid interrupted still leaves its finished cases
            print(f"  {impl} {shape}: {r['rows_per_s']:.3f} rows/s, {r['rows_per_cpu_s']:.3f} rows/CPU-s, "
                  f"{r['peak_rss_mb']:.0f} MB, loss {r['final_loss']:.4f}", file=sys.stderr, flush=True)
    print(f"Training throughput over data shapes: {threads} CPU threads, {model} float32, LoRA r=8 q,v, batch "
          f"{BATCH}, one whole epoch per case; matmul peak {peak:.1f} GFLOP/s (2048x2048 float32):")
    print(table(results, peak))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS} rows per shape (smoke)")
    parser.add_argument("--shapes", nargs="*", choices=SHAPES, default=list(SHAPES))
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--profile", choices=SHAPES, help="profile ours on this shape instead")
    parser.add_argument("--scale", type=float, default=1.0, help="rows x this for every shape (default 1)")
    parser.add_argument("--threads", type=int, help="torch threads of every case (default: the CPU count)")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
    elif args.profile:
        print(profile(args.profile))
    else:
        main(args.quick, tuple(args.shapes), args.model, args.scale, args.threads)
