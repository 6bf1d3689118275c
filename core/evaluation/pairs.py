"""Evaluation of a preference (DPO/ORPO) run: held-out pair accuracy for base and tuned, answers side by side, speed.

Pair accuracy is the share of held-out pairs where the model gives the chosen answer a higher summed log-prob than
the rejected one: the comparison DPO's implicit reward makes (its reference term cancels between models evaluated
alone). ``evaluate_preference_run`` writes ``runs/<id>/eval/report.json`` with a ``"pairs"`` section, and
``report.html`` (core.evaluation.report renders that section for a preference report).
"""
from __future__ import annotations

import datetime as _dt
import time
from typing import Callable, Optional

import torch

from core.data.pairs import PreferencePair
from core.errors import UserError
from core.evaluation.generation import Decoding, generate_batch
from core.evaluation.performance import PerformanceTester
from core.evaluation.report import write_report
from core.fileio import read_jsonl
from core.training.preference import PairLoader, answer_logps, collate_pairs, pair_messages
from core.workspace import run_dir

ProgressFn = Callable[[float, str], None]
PAIR_LIMIT = 500      # held-out pairs scored per model at most (the hold-out size)
SAMPLES = 4           # prompts answered by base and tuned, side by side
SAMPLE_TOKENS = 96    # new tokens per sample answer
PERF_PROMPTS = 5
BATCH_PAIRS = 8


def pair_accuracy(model, tok, pairs: list[PreferencePair], system_prompt: Optional[str], max_len: int,
                  batch_size: int = BATCH_PAIRS, progress: Optional[ProgressFn] = None) -> dict:
    """``{"accuracy", "n", "mean_margin", "logp_chosen", "logp_rejected", "dropped"}`` over ``pairs``."""
    loader = PairLoader(tok, system_prompt, max_len)
    examples, stats = loader.encode_all([p.to_dict() for p in pairs])
    if not examples:
        raise UserError("No held-out pair fits max_seq_len; raise train.max_seq_len or check the pairs.")
    device = next(model.parameters()).device
    chosen, rejected = [], []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for b in range(0, len(examples), batch_size):
                batch = {k: v.to(device) for k, v in collate_pairs(examples[b:b + batch_size], loader.pad_id).items()}
                c, r = answer_logps(model, batch).float().cpu().chunk(2)
                chosen += c.tolist()
                rejected += r.tolist()
                if progress:
                    progress(min(1.0, (b + batch_size) / len(examples)), "scoring pairs")
    finally:
        model.train(was_training)
    n = len(chosen)
    return {"accuracy": sum(c > r for c, r in zip(chosen, rejected)) / n, "n": n,
            "mean_margin": sum(c - r for c, r in zip(chosen, rejected)) / n,
            "logp_chosen": sum(chosen) / n, "logp_rejected": sum(rejected) / n, "dropped": stats["dropped"]}


def sample_answers(model, tok, pairs: list[PreferencePair], system_prompt: Optional[str],
                   max_new_tokens: int = SAMPLE_TOKENS) -> list[str]:
    """Greedy answers to the pairs' prompts (the free-generation samples)."""
    from core.chat_template import prompt_ids

    prompts = [prompt_ids(tok, pair_messages(p, system_prompt)) for p in pairs]
    answers = generate_batch(model, tok, prompts, Decoding(max_new_tokens=max_new_tokens, batch_size=len(prompts)))
    return [a.text for a in answers]


def load_pairs(cfg: dict, data: Optional[str], limit: Optional[int]) -> tuple[list[PreferencePair], str]:
    """The held-out pairs (the test split, or the validation split when there is none) and their source."""
    from core.data import load_pairs as read_pairs

    source = data or cfg.get("data")
    if not source:
        raise UserError("The run's config has no `data`; pass the held-out pairs with --data.")
    pairs, split = [], "test"
    for split in ("test", "val"):
        try:
            pairs = read_pairs(source, split)
        except UserError:
            continue
        if pairs:
            break
    if not pairs:
        raise UserError(f"{source!r} has no held-out preference pairs (rows with prompt, chosen and rejected); "
                        "prepare the preference dataset with a test split.")
    return pairs[: min(limit or PAIR_LIMIT, PAIR_LIMIT)], f"{source} ({split} split)"


def comparison(base: dict, tuned: dict) -> list[dict]:
    """Rows ``{"metric", "base", "tuned", "delta"}`` (the shape the CLI summary and the report pages read)."""
    return [{"metric": f"pair_{k}", "base": base[k], "tuned": tuned[k], "delta": tuned[k] - base[k]}
            for k in ("accuracy", "mean_margin", "logp_chosen", "logp_rejected")]


def evaluate_preference_run(run_id: str, data: Optional[str] = None, limit: Optional[int] = None,
                            progress: Optional[ProgressFn] = None, performance: bool = True) -> dict:
    """Base vs tuned pair accuracy, answers side by side and speed; writes ``eval/report.json`` and
    ``report.html`` and returns the report."""
    from core.chat import load_base_model, load_run_config, run_weights
    from core.checkpoints import load_weights

    progress = progress or (lambda f, m: None)
    t0 = time.perf_counter()
    cfg = load_run_config(run_id)
    weights = run_weights(run_id)
    pairs, source = load_pairs(cfg, data, limit)
    system, max_len = cfg.get("system_prompt"), int((cfg.get("train") or {}).get("max_seq_len") or 512)
    samples = pairs[:SAMPLES]
    progress(0.02, "loading the base model")
    model, tok, _ = load_base_model(run_id)
    model.eval()
    base = pair_accuracy(model, tok, pairs, system, max_len, progress=lambda f, m: progress(0.05 + 0.4 * f, m))
    base_answers = sample_answers(model, tok, samples, system)
    perf = PerformanceTester(tok, [pair_messages(p, system) for p in pairs[:PERF_PROMPTS]]) if performance else None
    speed = [perf.measure(model, "base")] if perf else []
    progress(0.5, "loading the tuned weights")
    model = load_weights(model, weights, cfg)
    model.eval()
    tuned = pair_accuracy(model, tok, pairs, system, max_len, progress=lambda f, m: progress(0.5 + 0.4 * f, m))
    tuned_answers = sample_answers(model, tok, samples, system)
    if perf:
        speed.append(perf.measure(model, "tuned (unmerged)"))
    report = {
        "run_id": run_id, "model": cfg.get("model"), "method": cfg.get("method"), "objective": cfg.get("objective"),
        "weights": {"step": weights.step, "total_steps": weights.total_steps, "final": weights.final},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "data": source,
        "task": "preference", "n_test": len(pairs), "limit": limit, "system_prompt": system,
        "pairs": {"base": base, "tuned": tuned, "accuracy_gain": tuned["accuracy"] - base["accuracy"],
                  "samples": [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected, "base": b, "tuned": t}
                              for p, b, t in zip(samples, base_answers, tuned_answers)]},
        "base": base, "tuned": tuned, "comparison": comparison(base, tuned),
        "performance": speed, "training_curves": list(read_jsonl(run_dir(run_id) / "metrics.jsonl")),
        "seconds": time.perf_counter() - t0,
    }
    write_report(report, run_dir(run_id) / "eval")
    progress(1.0, "done")
    return report
