"""The CLI face: ``python -m core estimate --config RUN.yaml [--json]``, and reasons rendered in English."""
from __future__ import annotations

import argparse
import json

from core.strategy.estimator import Estimate, ResourceEstimator
from core.strategy.fit import checked_estimate
from core.strategy.machine import GiB, Machine, MiB
from core.strategy.reasons import render
from core.strategy.shapes import normalize_config


def human(seconds: float) -> str:
    """'45 s', '12 min', '3.2 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_command(args: argparse.Namespace) -> int:
    """``python -m core estimate --config RUN.yaml [--json]``: parameters, memory and time for a run config."""
    cfg = normalize_config(args.config)
    est = ResourceEstimator(cfg["model"], machine=Machine.detect(cfg["train"].get("device", "auto")))
    result = checked_estimate(cfg, est)
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
        lines.append(f"Per epoch: {e.steps_per_epoch} steps, about {human(e.epoch_s)} "
                     f"({d.get('examples', 0):,} examples, {d.get('tokens', 0):,} tokens, "
                     f"{d.get('label_tokens', 0):,} answer tokens, {'packed' if d.get('packing') else 'padded'})")
        if e.total_s is not None:
            evals = (f", including {d['evals']} evaluation{'s' if d['evals'] > 1 else ''} (about "
                     f"{human(d['eval_s'])} each)" if d.get("evals") else "")
            lines.append(f"Whole run: {e.total_steps} steps, about {human(e.total_s)}{evals}")
        lines.append("  (times assume the machine is otherwise idle; other programs on the same cores stretch them)")
    for prob in e.problems:
        lines.append(f"Problem: {render(prob)}")
    if e.suggestion:
        lines.append("Smallest change that fits: " + ", ".join(f"{k}={v}" for k, v in e.suggestion.items()))
    return "\n".join(lines)
