"""``python -m core bench [--quick] [NAME ...]``: run the benchmarks of bench/ and print their tables."""
from __future__ import annotations

import importlib
import time

from core.errors import UserError

# name -> module with main(quick: bool); each prints its own table.
BENCHES = {
    "data": "bench.data_bench",
    "estimate": "bench.estimate_bench",
    "throughput": "bench.throughput",
    "methods": "bench.methods",
    "eval": "bench.eval_bench",
    "calibration": "bench.calibration",
    "generation": "bench.generation",
}
ON_REQUEST = ("calibration",)  # hours of training: runs only when named (python -m core bench calibration)


def bench_command(args) -> int:
    """Run the named benchmarks (all by default), one after another."""
    names = args.names or [n for n in BENCHES if n not in ON_REQUEST]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        raise UserError(f"Unknown benchmark(s) {unknown}; choose from {list(BENCHES)}.")
    for name in names:
        module = importlib.import_module(BENCHES[name])
        print(f"\n== {name} ==", flush=True)
        t0 = time.time()
        module.main(quick=args.quick)
        print(f"({name} took {time.time() - t0:.0f} s)", flush=True)
    return 0
