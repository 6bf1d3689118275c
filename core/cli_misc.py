"""Small verbs that belong to no step: the hello smoke check, and the benchmarks (run as ``python -m bench``)."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from core.models import generate_reply, load_model


def _progress(frac: float, msg: str) -> None:
    print(f"[{frac:4.0%}] {msg}", file=sys.stderr)


def hello_command(args) -> int:
    """Load a base model and print its answer to one prompt."""
    t0 = time.time()
    model, tok = load_model(args.model, progress=_progress)
    t1 = time.time()
    print(generate_reply(model, tok, args.prompt))
    print(f"(loaded in {t1 - t0:.1f} s, answered in {time.time() - t1:.1f} s)", file=sys.stderr)
    return 0


def bench_command(args) -> int:
    """Run ``python -m bench`` in a child process: core never imports bench/, which imports core."""
    argv = [sys.executable, "-m", "bench", *(["--quick"] if args.quick else []), *args.names]
    return subprocess.run(argv, cwd=Path(__file__).resolve().parents[1], check=False).returncode
