"""Evaluation speed on the default model: label scoring modes (Banking77's 77 labels) and batched generation.

``python -m core bench eval [--quick]`` prints one table. Label scoring modes:
  * pruned  — branch and bound over the label trie on a shared prompt KV cache (the default; exact best label);
  * trie    — every label scored in one forward per prompt batch (exact scores for all labels);
  * batched — prompt + each label as a padded batch (the fallback for prefix tuning; the naive baseline).
Untuned base model: its flat label distribution is the worst case for pruning; a tuned model prunes far more.
"""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path



DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "banking77"
SYSTEM = "Classify the customer's banking message. Answer with the intent label only."


def _prompts(tok, n: int):
    from core.evaluation.prompts import prompt_ids

    rows = list(csv.DictReader(open(DATA / "test.csv", encoding="utf-8")))
    rows = rows[::max(1, len(rows) // n)][:n]
    msgs = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": r["text"]}] for r in rows]
    return msgs, [prompt_ids(tok, m) for m in msgs]


def main(quick: bool = False) -> None:
    """Print seconds per prompt for each label-scoring mode and tokens/s of batched vs single generation."""
    from core.evaluation.generation import Decoding, generate_batch
    from core.evaluation.labels import LabelScorer
    from core.models import load_model

    if not DATA.is_dir():
        print("bench eval: ../shared/data/banking77 is missing; skipped")
        return
    model, tok = load_model()
    labels = json.loads((DATA / "categories.json").read_text(encoding="utf-8"))
    msgs, prompts = _prompts(tok, 16 if quick else 48)
    print(f"{'case':34} {'prompts':>7} {'s/prompt':>9} {'trie nodes/prompt':>18} {'same best label':>16}")
    reference = None
    for mode, n in (("trie", len(prompts)), ("pruned", len(prompts)), ("batched", min(2, len(prompts)))):
        scorer = LabelScorer(model, tok, labels, mode=mode)
        label_ids = scorer.label_ids(msgs[0])
        t0 = time.perf_counter()
        scores = scorer.score(prompts[:n], label_ids)
        dt = (time.perf_counter() - t0) / n
        best = scores.argmax(dim=1)
        if reference is None:
            reference = best
        same = bool((best == reference[:n]).all())
        nodes = f"{scorer.nodes_scored / n:.0f}" if mode != "batched" else "-"
        print(f"{'label scoring: ' + mode:34} {n:7d} {dt:9.3f} {nodes:>18} {str(same):>16}", flush=True)
    for batch in (1, 8):
        d = Decoding(max_new_tokens=16, batch_size=batch)
        t0 = time.perf_counter()
        answers = generate_batch(model, tok, prompts[:8], d)
        dt = time.perf_counter() - t0
        tokens = sum(a.n_tokens for a in answers)
        print(f"{f'greedy generation, batch {batch}':34} {8:7d} {dt / 8:9.3f} {'':>18} {'':>16}  "
              f"{tokens / dt:.1f} tok/s", flush=True)
