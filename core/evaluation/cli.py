"""``python -m core eval RUN_ID [--data FILE] [--limit N] [--checks all|forgetting,...] [--json]``: progress on
stderr, a summary (or JSON) on stdout. ``--checks`` runs release-gate checks after the evaluation
(core.evaluation.runchecks), each limited by ``--limit``."""
from __future__ import annotations

import json
import sys
import time

from core import jobs
from core.workspace import run_dir


def _progress(progress_file=None):
    state = {"last": -1.0, "t0": time.time()}
    to_file = jobs.progress_writer(progress_file) if progress_file else None

    def report(frac: float, msg: str) -> None:
        if to_file is not None:  # what the Evaluate page polls (core.evaluation.jobs.state)
            to_file(frac, msg)
        # Print at most every 2 % so long evaluations show life without flooding the log.
        if frac - state["last"] >= 0.02 or frac >= 1.0:
            state["last"] = frac
            print(f"[{frac:4.0%} {time.time() - state['t0']:6.0f}s] {msg}", file=sys.stderr, flush=True)
    return report


def summary_lines(report: dict) -> list[str]:
    """The human summary printed after an evaluation."""
    weights = report.get("weights") or {"final": True}
    lines = [f"run {report['run_id']}: {report['n_test']} test examples from {report['data']}",
             *([] if weights["final"] else
               [f"weights as of step {weights['step']} of {weights.get('total_steps') or '?'} "
                "(the run did not finish)"]),
             f"{'metric':28} {'base':>10} {'tuned':>10} {'delta':>10}"]
    for r in report["comparison"]:
        lines.append(f"{r['metric']:28} {r['base']:10.4g} {r['tuned']:10.4g} {r['delta']:+10.4g}")
    for p in report.get("performance") or []:
        lines.append(f"speed {p['name']:22} p50 {p['latency_p50_s']:.3f}s  TTFT p50 {p['ttft_p50_s']:.3f}s  "
                     f"{p['tokens_per_s']:.1f} tok/s  batch {p['batch_tokens_per_s']:.1f} tok/s  "
                     f"peak {p['peak_rss_mb']:.0f} MB")
    lines += check_lines(report)
    folder = run_dir(report["run_id"]) / "eval"
    lines.append(f"report: {folder / 'report.html'} (and report.json); took {report['seconds']:.0f} s")
    return lines


def check_lines(report: dict) -> list[str]:
    """One line per check that ran, then the release gate's verdict per check."""
    lines = []
    for name, c in (report.get("checks") or {}).items():
        lines.append(f"check {name:11} base {json.dumps(c.get('base'), ensure_ascii=False)}  "
                     f"tuned {json.dumps(c.get('tuned'), ensure_ascii=False)}  ({c.get('seconds', 0):.0f} s)")
    gate = report.get("gate")
    if gate:
        verdicts = ", ".join(f"{n} {v['status']}" for n, v in gate["checks"].items())
        lines.append(f"release gate: {gate['status'].upper()} ({verdicts})")
    return lines


def compare_command(run_a: str, run_b: str, as_json: bool = False) -> int:
    """Print the test answers that changed between two evaluated runs (core.evaluation.causes.compare_runs)."""
    from core.errors import UserError
    from core.evaluation.causes import compare_runs
    from core.evaluation.gate import load_report

    reports = [load_report(r) for r in (run_a, run_b)]
    missing = [r for r, rep in zip((run_a, run_b), reports) if rep is None]
    if missing:
        raise UserError(f"No evaluation report for {', '.join(missing)}; evaluate first (python -m core eval RUN).")
    changed = compare_runs(*reports)
    if as_json:
        print(json.dumps(changed, ensure_ascii=False))
        return 0
    print(f"{len(changed)} test answers changed between {run_a} and {run_b}")
    mark = {True: "pass", False: "FAIL"}
    for c in changed:
        print(f"- {c['prompt']!r}\n    {run_a} [{mark[c['passed_a']]}]: {c['answer_a']!r}\n"
              f"    {run_b} [{mark[c['passed_b']]}]: {c['answer_b']!r}")
    return 0


def eval_command(args) -> int:
    """Evaluate a run; exit 2 (via UserError) for a missing run/adapter or test data of another format."""
    from core.evaluation.jobs import PROGRESS_FILE
    from core.evaluation.runchecks import parse_checks

    checks = parse_checks(getattr(args, "checks", None))  # a wrong name is refused before any work
    if getattr(args, "compare", None):
        return compare_command(args.run_id, args.compare, args.json)
    # Progress goes to a file only for an existing run (no folder is created for a mistyped id).
    progress_file = run_dir(args.run_id) / "eval" / PROGRESS_FILE if run_dir(args.run_id).is_dir() else None
    try:
        report = _evaluate(args, progress_file, checks)
    except BaseException as exc:
        if progress_file is not None:
            jobs.write_progress(progress_file, "failed", 0.0, str(exc) or type(exc).__name__)
        raise
    if progress_file is not None:
        jobs.write_progress(progress_file, "done", 1.0, "done")
    _print_report(args, report)
    return 0


CHECKS_SHARE = 0.5  # of the progress bar given to the checks when they follow the evaluation


def _evaluate(args, progress_file, checks: list[str]) -> dict:
    from core.evaluation import evaluate_run
    from core.evaluation.runchecks import run_checks

    scoring = {"auto": None, "on": True, "off": False}[getattr(args, "label_scoring", "auto") or "auto"]
    progress = _progress(progress_file)
    split = 1.0 - CHECKS_SHARE if checks else 1.0
    report = evaluate_run(args.run_id, data=args.data, limit=args.limit,
                          progress=lambda f, m: progress(split * f, m),
                          robustness=not getattr(args, "no_robustness", False),
                          performance=not getattr(args, "no_performance", False), label_scoring=scoring,
                          reuse_base=not getattr(args, "fresh_base", False))
    if checks and "pairs" in report:  # a DPO/ORPO run: the checks read conversations and do not apply
        print("note: the release-gate checks do not apply to a preference run; its report gives the held-out "
              "pair accuracy.", file=sys.stderr)
    elif checks:
        report = run_checks(args.run_id, checks, limit=args.limit,
                            progress=lambda f, m: progress(split + (1 - split) * f, m))
    return report


def _print_report(args, report: dict) -> None:
    if args.json:
        slim = {k: v for k, v in report.items() if k not in ("base", "tuned")}
        slim["base"] = {k: v for k, v in report["base"].items() if k != "examples"}
        slim["tuned"] = {k: v for k, v in report["tuned"].items() if k != "examples"}
        print(json.dumps(slim, ensure_ascii=False, default=str))
    else:
        print("\n".join(summary_lines(report)))
