"""Small verbs that belong to no step: the hello smoke check."""
from __future__ import annotations

import sys
import time

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
