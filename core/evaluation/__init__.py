"""Evaluation of a run: is the tuned model better than the base, where does it fail, how fragile and how fast
is it. ``evaluate_run`` writes ``runs/<id>/eval/report.json`` and ``report.html``.

Order of work (one model object in memory): the base model is scored first, then the run's adapter is loaded onto
it (tuned, unmerged), then a LoRA is merged into it for the merged speed measurement.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import time
from pathlib import Path
from typing import Callable, Optional

from core.defaults import EVAL_DECODE_ROWS
from core.errors import UserError
from core.evaluation.errors import ErrorAnalyzer
from core.evaluation.generation import Decoding
from core.evaluation.metrics import MultiMetricEvaluator, compare, conversation_label, is_classification
from core.evaluation.performance import PerformanceTester
from core.evaluation.prompts import answer_ids
from core.evaluation.report import write_report
from core.evaluation.robustness import RobustnessTester
from core.evaluation.textmetrics import match_label, token_f1
from core.fileio import atomic_write_json, read_json, read_jsonl
from core.workspace import dataset_dir, run_dir, workspace_home

ProgressFn = Callable[[float, str], None]
VAL_LIMIT = 200          # validation-loss examples (enough for a stable mean, bounded time)
ROBUSTNESS_LIMIT = 100   # prompts per perturbation at most...
ROBUSTNESS_MIN = 10      # ...half the test prompts, but at least this many: five perturbations re-answer them all,
                         # which on a CPU cost more than the test itself (measured on SmolLM2: 190 s for 20 prompts)
PERF_PROMPTS = 3          # single-stream answers per speed measure (three measures: base, tuned, merged)...
PERF_TOKENS = 24          # ...of at most this many tokens; the batch measure answers min(8, test examples) rows
BASE_CACHE_VERSION = 1   # bump when the evaluator's numbers change, so older cached base results are not reused

__all__ = ["evaluate_run", "MultiMetricEvaluator", "ErrorAnalyzer", "RobustnessTester", "PerformanceTester",
           "write_report"]


def _dataset_folder(data: str) -> Optional[Path]:
    """The dataset folder ``data`` names (an id or a folder path), or None for a plain file."""
    path = Path(data).expanduser()
    if path.is_dir():
        return path
    try:
        folder = dataset_dir(data)
    except UserError:
        return None
    return folder if folder.is_dir() else None


def _load_test(cfg: dict, data: Optional[str]) -> tuple[list, list, str]:
    """(test conversations, validation conversations, description of the source)."""
    from core.data import load_conversations, load_split

    run_data = cfg.get("data")
    try:
        val = load_split(run_data, "val") if run_data else []
    except UserError:
        val = []
    if data is None:
        if not run_data:
            raise UserError("The run's config has no `data`; pass test data with --data FILE.")
        return load_split(run_data, "test"), val, f"{run_data} (test split)"
    if _dataset_folder(data) is not None:
        return load_split(data, "test"), val, f"{data} (test split)"
    if not Path(data).expanduser().is_file():
        raise UserError(f"The test data {data!r} is neither a file nor a dataset; give a CSV/JSON/JSONL/… file "
                        "or a dataset id from workspace/datasets/.")
    convs, _info = load_conversations(data)
    return convs, val, f"{data} (all rows)"


def _task_of(convs: list) -> str:
    if is_classification(convs):
        return "classification"
    if convs and all(any(m.get("role") == "assistant" for m in c.get("messages", [])) for c in convs):
        return "chat"
    return "text"


def _check_same_task(train: list, test: list, source: str) -> None:
    run_task, test_task = _task_of(train), _task_of(test)
    if not test:
        raise UserError(f"The test data {source} has no examples; prepare a dataset with a test split "
                        "(--split 0.8,0.1,0.1) or pass --data FILE.")
    if train and run_task != test_task:
        raise UserError(f"The test data {source} looks like {test_task} data but the run was trained on "
                        f"{run_task} data. Give test data in the run's format (e.g. the same columns as the "
                        "training file), or evaluate the run that matches this data.")


def _max_new_tokens(tok, labels: Optional[list]) -> int:
    if labels:  # the longest label plus its end token, with a little room to show off-label chatter
        return min(64, max(len(answer_ids(tok, [{"role": "user", "content": "?"}], lab)) for lab in labels) + 4)
    return 128


def _base_cache_file(cfg: dict, evaluator: MultiMetricEvaluator, test: list, val: list) -> Path:
    """Where the base model's results for exactly these prompts and settings are kept.

    The base model's answers do not depend on the run: a lab evaluating five methods on one dataset, or a second
    evaluation of a run, would otherwise repeat the slowest part of the work. The key holds everything the base
    results depend on: the model (and, for a local folder, its weight files' sizes and times), the system prompt,
    the test and validation conversations, the decoding, the labels and the evaluator version.
    """
    model = str(cfg.get("model"))
    weights = []
    folder = Path(model).expanduser()
    if folder.is_dir():
        weights = sorted((p.name, p.stat().st_size, p.stat().st_mtime) for p in folder.glob("*.safetensors"))
    key = json.dumps({"v": BASE_CACHE_VERSION, "model": model, "weights": weights, "test": test, "val": val,
                      "system": evaluator.system_prompt, "decoding": evaluator.decoding.to_dict(),
                      "labels": evaluator.labels, "max_seq_len": evaluator.max_seq_len, "loss_batch": evaluator.loss_batch_size,
                      "scorer": evaluator.label_scorer_mode}, sort_keys=True, ensure_ascii=False, default=str)
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return workspace_home() / "cache" / "base-eval" / f"{digest}.json"


def _base_results(evaluator: MultiMetricEvaluator, model, cfg: dict, test: list, val: list,
                  progress: ProgressFn, use_cache: bool) -> dict:
    """The base model's results, from the cache when these exact prompts and settings were scored before."""
    path = _base_cache_file(cfg, evaluator, test, val)
    cached = read_json(path, None) if use_cache else None
    want_scores = bool(evaluator.label_scoring)
    # A result with label scores serves a request without them (the scores are dropped), not the other way round.
    if cached and (cached.get("label_scoring") is not None or not want_scores):
        progress(1.0, "base: reused earlier results for the same prompts and settings")
        if not want_scores:
            cached.pop("label_scoring", None)
            for ex in cached.get("examples", []):
                ex.pop("scored_label", None)
        return {**cached, "cached": True}
    result = evaluator.evaluate_model(model, test, val, progress, "base")
    if not (cached and cached.get("label_scoring") is not None):  # never replace a fuller cached result
        atomic_write_json(path, result)
    return result


def _robustness(evaluator: MultiMetricEvaluator, model, test_result: dict, limit: int, seed: int,
                progress: ProgressFn) -> dict:
    examples = test_result["examples"][:limit]
    msgs = [e["messages"] for e in examples]
    refs = [e["reference"] for e in examples]
    if evaluator.labels:
        def score_fn(answers, references):
            return sum(match_label(a, evaluator.labels) == r for a, r in zip(answers, references)) / len(answers)
        metric = "accuracy"
    else:
        def score_fn(answers, references):
            return sum(map(token_f1, answers, references)) / len(answers)
        metric = "token_f1"

    def answer_fn(prompts):
        return [a.text for a in evaluator.generate(model, prompts)]

    return RobustnessTester(seed=seed).run(msgs, refs, [e["answer"] for e in examples], answer_fn, score_fn,
                                           metric, progress)


def _keep_gate(report: dict, previous_path) -> None:
    """Carry the release-gate checks, thresholds and recorded export confirmations of the run's previous report
    into the new one: re-evaluating must not turn a failing gate into an incomplete one (which would not block an
    export) nor lose who exported anyway. The checks' own sections say when they ran (their ``seconds``)."""
    from core.evaluation.gate import GateThresholds, apply_gate
    from core.fileio import read_json

    previous = read_json(previous_path, None) if previous_path.exists() else None
    if not previous or not previous.get("gate"):
        return
    report["checks"] = previous.get("checks") or {}
    thresholds = GateThresholds.from_dict((previous["gate"] or {}).get("thresholds"))
    report["gate"] = apply_gate({**report, "gate": previous["gate"]}, thresholds)


def _load_eval_data(cfg: dict, data: Optional[str], limit: Optional[int],
                    progress: ProgressFn) -> tuple[list, list, str, Optional[list]]:
    """The test and validation conversations (capped by ``limit``), where they came from, and the class labels
    (from the training and test data) when the task is classification, else None."""
    from core.data import load_split

    progress(0.0, "loading data")
    test, val, source = _load_test(cfg, data)
    try:
        train = load_split(cfg["data"], "train") if cfg.get("data") else []
    except UserError:
        train = []
    _check_same_task(train, test, source)
    test = test[:limit] if limit else test
    val = val[:min(limit or VAL_LIMIT, VAL_LIMIT)]
    labels = None
    if is_classification(test):
        labels = sorted({conversation_label(c) for c in train + test} - {None})
    return test, val, source, labels


def _build_report(run_id: str, cfg: dict, weights, *, source, test: list, val: list, limit: Optional[int],
                  labels: Optional[list], decoding: Decoding, base: dict, tuned: dict, rob: Optional[dict],
                  speed: list) -> dict:
    """The report dict (everything but ``seconds``): the results, their comparison, error analysis, robustness,
    speed, the dataset's quality report and the run's training curves."""
    folder = _dataset_folder(cfg["data"]) if cfg.get("data") else None
    return {
        "run_id": run_id, "model": cfg.get("model"), "method": cfg.get("method"),
        "weights": {"step": weights.step, "total_steps": weights.total_steps, "final": weights.final},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "data": source, "n_test": len(test), "n_val": len(val), "limit": limit,
        "task": "classification" if labels else _task_of(test), "labels": labels,
        "decoding": decoding.to_dict(), "system_prompt": cfg.get("system_prompt"),
        "base": base, "tuned": tuned, "comparison": compare(base, tuned),
        "errors": {"base": ErrorAnalyzer(base["examples"], labels).analyze(),
                   "tuned": ErrorAnalyzer(tuned["examples"], labels).analyze()},
        "robustness": rob, "performance": speed,
        "data_quality": read_json(folder / "quality.json") if folder else None,
        "training_curves": list(read_jsonl(run_dir(run_id) / "metrics.jsonl")),
    }


def evaluate_run(run_id: str, data: Optional[str] = None, limit: Optional[int] = None,
                 progress: Optional[ProgressFn] = None, robustness: bool = True, performance: bool = True,
                 label_scoring: Optional[bool] = None, reuse_base: bool = True) -> dict:
    """Evaluate base vs tuned for a run and write ``runs/<id>/eval/report.{json,html}``; returns the report.

    ``label_scoring=None`` turns label scoring on for classification data; ``limit`` caps the test examples;
    ``reuse_base`` takes the base model's results from the workspace cache when the same prompts and settings
    were scored before (greedy decoding makes them identical).
    """
    from core.chat import load_base_model, load_run_config, run_weights
    from core.checkpoints import load_weights
    from core.peft import merge_lora

    progress = progress or (lambda f, m: None)
    t_start = time.perf_counter()
    cfg = load_run_config(run_id)
    if (cfg.get("objective") or "sft") != "sft":  # DPO/ORPO runs: pair accuracy instead (core/evaluation/pairs.py)
        from core.evaluation.pairs import evaluate_preference_run

        return evaluate_preference_run(run_id, data, limit, progress, performance)
    weights = run_weights(run_id)  # the final adapter, or the newest verified checkpoint of a stopped/failed run
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}.")
    test, val, source, labels = _load_eval_data(cfg, data, limit, progress)

    progress(0.02, "loading the base model")
    model, tok, _ = load_base_model(run_id)
    decoding = Decoding(max_new_tokens=_max_new_tokens(tok, labels), batch_size=EVAL_DECODE_ROWS)
    evaluator = MultiMetricEvaluator(tok, cfg.get("system_prompt"), decoding, labels, label_scoring,
                                     max_seq_len=int((cfg.get("train") or {}).get("max_seq_len") or 512))
    span = lambda a, b: (lambda f, m: progress(a + (b - a) * f, m))  # noqa: E731 - phase → overall progress
    t0 = time.perf_counter()
    base = _base_results(evaluator, model, cfg, test, val, span(0.03, 0.35), reuse_base)
    parts = {"base": {"answers": 0 if base.get("cached") else len(test), "seconds": time.perf_counter() - t0}}
    perf_msgs = [e["messages"] for e in base["examples"][:PERF_PROMPTS]]
    perf_tester = PerformanceTester(tok, perf_msgs, max_new_tokens=min(PERF_TOKENS, decoding.max_new_tokens),
                                    batch_size=min(8, len(test)))  # --limit bounds the speed test too
    speed = [perf_tester.measure(model, "base")] if performance else []

    progress(0.45, "loading the adapter" if weights.final else f"loading the weights {weights.describe()}")
    model = load_weights(model, weights, cfg)
    model.eval()
    t0 = time.perf_counter()
    tuned = evaluator.evaluate_model(model, test, val, span(0.46, 0.75), "tuned")
    parts["tuned"] = {"answers": len(test), "seconds": time.perf_counter() - t0}
    rob_limit = min(ROBUSTNESS_LIMIT, max(ROBUSTNESS_MIN, len(tuned["examples"]) // 2), len(test))
    rob = (_robustness(evaluator, model, tuned, rob_limit, int((cfg.get("train") or {}).get("seed") or 0),
                       span(0.75, 0.92)) if robustness else None)
    if performance:
        progress(0.92, "speed: tuned")
        speed.append(perf_tester.measure(model, "tuned (unmerged)"))
        if (cfg.get("method") or "lora") == "lora":
            model = merge_lora(model)
            speed.append(perf_tester.measure(model, "tuned (merged LoRA)"))

    if rob:
        parts["robustness"] = {"answers": rob["answers"], "seconds": rob["seconds"]}
    if speed:
        parts["performance"] = {"answers": sum(m["answers"] for m in speed), "seconds": sum(m["seconds"] for m in speed)}
    report = _build_report(run_id, cfg, weights, source=source, test=test, val=val, limit=limit, labels=labels,
                           decoding=decoding, base=base, tuned=tuned, rob=rob, speed=speed)
    report["generation"] = parts  # answers each part generated and its seconds (--limit bounds all of them)
    report["seconds"] = time.perf_counter() - t_start
    progress(0.98, "writing the report")
    _keep_gate(report, run_dir(run_id) / "eval" / "report.json")
    write_report(report, run_dir(run_id) / "eval")
    progress(1.0, "done")
    return report
