"""Data pipeline speed: analyze + prepare CLINC150's 22,500 in-scope rows (target: under 20 s on a 2-core CPU).

Run: ``python -m bench.data_bench`` or ``python -m core bench data`` (``--quick``: 2,000 rows). The rows are the
train/val/test splits of ``../shared/data/clinc150/data_full.json`` written to a temporary file in the same
layout; everything happens in a temporary workspace (the model cache is shared, not rebuilt).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLINC = (ROOT / ".." / "shared" / "data" / "clinc150" / "data_full.json").resolve()
TARGET_S = 20.0


def _write_subset(folder: Path, quick: bool) -> tuple[Path, int]:
    data = json.loads(CLINC.read_text(encoding="utf-8"))
    subset = {k: data[k] for k in ("train", "val", "test")}
    if quick:
        subset = {"train": data["train"][:1600], "val": data["val"][:200], "test": data["test"][:200]}
    path = folder / "clinc150_inscope.json"
    path.write_text(json.dumps(subset), encoding="utf-8")
    return path, sum(len(v) for v in subset.values())


def _timed(results: list, phase: str, fn, *args, **kwargs):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    results.append((phase, time.perf_counter() - t0, time.process_time() - c0))
    return out


def main(quick: bool = False) -> dict:
    """Time every phase, print a table, return {phase: seconds, ...}."""
    if not CLINC.exists():
        print(f"skipped: {CLINC} is not present")
        return {}
    from core.workspace import workspace_home

    # keep the real model cache, work in a throwaway workspace
    os.environ.setdefault("ASSISTANT_FACTORY_MODELS", str(workspace_home() / "models"))
    old_home = os.environ.get("ASSISTANT_FACTORY_HOME")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ASSISTANT_FACTORY_HOME"] = str(Path(tmp) / "workspace")
        try:
            return _run(Path(tmp), quick)
        finally:
            if old_home is None:
                os.environ.pop("ASSISTANT_FACTORY_HOME", None)
            else:
                os.environ["ASSISTANT_FACTORY_HOME"] = old_home


def _run(tmp: Path, quick: bool) -> dict:
    from core.data import AdvancedDataProcessor, DataQualityAnalyzer, load_conversations, prepare_dataset
    from core.models import load_tokenizer

    path, n = _write_subset(tmp, quick)
    results: list[tuple[str, float, float]] = []
    tok = _timed(results, "load tokenizer (default model)", load_tokenizer)
    # `analyze`: read + detect + normalise, then every quality check with the real tokenizer
    convs, info = _timed(results, "analyze: read + detect + normalise", load_conversations, path)
    analyzer = DataQualityAnalyzer(tokenizer=tok)
    report = _timed(results, "analyze: quality checks", analyzer.analyze, convs, info)
    # `prepare` with every option on: its own read, analysis, processing, split and writes
    ds = _timed(results, "prepare --clean --mask-pii --dedupe (all)", prepare_dataset, path, clean=True,
                mask_pii=True, dedupe=True, model=tok, name="bench-clinc")
    # the processor's steps alone, for the breakdown
    proc = AdvancedDataProcessor(seed=42)
    steps = (("  clean", proc.clean), ("  mask_pii", proc.mask_pii), ("  dedupe (exact + MinHash)", proc.dedupe),
             ("  split (stratified)", proc.split))
    for step, fn in steps:
        out = _timed(results, step, fn, convs)
        convs = out if isinstance(out, list) else convs
    total = sum(s for phase, s, _ in results if not phase.startswith("  "))
    cpu = sum(c for phase, _, c in results if not phase.startswith("  "))
    print(f"data pipeline on CLINC150 in-scope rows: {n:,} rows, format {info['format']}, "
          f"{report['num_labels']} labels, score {report['score']}, dataset {ds}")
    # CPU seconds of this process: close to the wall time of a quiet machine when other jobs share the cores
    print(f"{'phase':<46}{'wall s':>9}{'cpu s':>9}")
    for phase, s, c in results:
        print(f"{phase:<46}{s:>9.2f}{c:>9.2f}")
    verdict = "OK" if total < TARGET_S else "OVER TARGET"
    print(f"{'total analyze + prepare (incl. tokenizer)':<46}{total:>9.2f}{cpu:>9.2f}   target < {TARGET_S:.0f} s "
          f"(wall): {verdict}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return {"rows": n, "total_s": round(total, 3), "total_cpu_s": round(cpu, 3),
            **{phase.strip(): round(s, 3) for phase, s, _ in results}}


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
