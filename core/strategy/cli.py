"""The CLI faces: ``python -m core estimate --config RUN.yaml [--json]`` and ``python -m core recommend DATA``."""
from __future__ import annotations

import argparse
import json
import math

from core.errors import UserError
from core.fileio import atomic_write_text
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


def recommend_command(args: argparse.Namespace) -> int:
    """``python -m core recommend DATA``: the Choose page's recommended run config, its reasons and estimate."""
    from core.strategy.dataset import recommend_for_dataset  # loads the tokenizer and torch: only for this verb

    budget = getattr(args, "budget", None)
    if budget is not None and not (budget > 0 and math.isfinite(budget)):
        raise UserError(f"--budget must be a positive number of minutes, got {budget!r}; for example --budget 5.")
    rec = recommend_for_dataset(args.data, model=args.model, system_prompt=args.system_prompt,
                                time_budget_s=60.0 * budget if budget is not None else None,
                                purpose=getattr(args, "task", None))
    doc = rec.to_dict()
    text = config_yaml(rec.config, doc)
    if args.out:
        atomic_write_text(args.out, text)  # the comments ride along; train reads only the config
    if args.json:
        doc["reasons"] = [{**r, "text": render(r)} for r in rec.reasons]
        doc["quality_band_text"] = band_text(rec.quality_band)
        print(json.dumps(doc, indent=2, default=str))
    else:
        print(text, end="")
        if args.out:
            print(f"# written to {args.out}; train it with: python -m core train --config {args.out}")
    return 0


def config_yaml(config: dict, rec: dict) -> str:
    """The run config as YAML, with the reasons, the estimate and the expected quality as comments."""
    import yaml

    lines = [yaml.safe_dump(config, sort_keys=False, allow_unicode=True).rstrip("\n"), "", "# Why:"]
    lines += [f"#  - {render(r)}" for r in rec.get("reasons") or []]
    runner = rec.get("runner_up") or {}
    if runner.get("method"):
        lines.append(f"# Runner-up: {runner['method']} {runner.get('objective') or ''} "
                     + " ".join(render(r) for r in runner.get("why") or []))
        lines += [f"#   why not first: {render(r)}" for r in runner.get("why_not") or []]
    est = rec.get("estimate") or {}
    if est.get("memory_bytes"):
        lines.append(f"# Estimate: peak memory {est['memory_bytes'] / GiB:.2f} GiB of {est['memory_budget'] / GiB:.2f} "
                     f"GiB; {est.get('total_steps')} steps, about {human(est.get('total_s') or 0)} with evaluations "
                     f"(one epoch {human(est.get('epoch_run_s') or 0)})")
    lines.append(f"# Expected quality: {band_text(rec.get('quality_band'))}")
    return "\n".join(lines) + "\n"


def band_text(band: dict | None) -> str:
    """The expected quality band in English, from the calibration table."""
    if not band:
        return render({"code": "choose.quality_band_none", "params": {}}, prefix="")
    when = band["minutes"] if band.get("minutes") is not None else render(
        {"code": "choose.minutes_unknown", "params": {}}, prefix="")
    code = "choose.quality_band" if band["low"] != band["high"] else "choose.quality_band_one"
    params = {"low": 100 * band["low"], "high": 100 * band["high"], "metric": band["metric"], "minutes": when,
              "rows": ", ".join(band["rows"])}
    return render({"code": code, "params": params}, prefix="")
