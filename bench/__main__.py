"""``python -m bench [--quick] [NAME ...]``: the benchmark tables (also reachable as ``python -m core bench``)."""
from __future__ import annotations

import argparse
import sys

from bench.cli import BENCHES, bench_command
from core.errors import UserError


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run the benchmarks; exit 2 on an unknown name."""
    parser = argparse.ArgumentParser(prog="python -m bench", description="Print the benchmark tables of bench/.")
    parser.add_argument("--quick", action="store_true", help="smaller, faster cases")
    parser.add_argument("names", nargs="*", help=f"which benchmarks (default: all of {', '.join(BENCHES)})")
    args = parser.parse_args(argv)
    try:
        return bench_command(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
