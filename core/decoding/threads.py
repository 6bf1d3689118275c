"""How many threads a decode step uses: the cores other programs leave idle, at least one.

Decode steps are small matmuls; with more OpenMP threads than idle cores the threads spin-wait on each other and a
step gets 5-15x slower (SmolLM2 batch 8 on a loaded 2-core machine: 220 ms on 1 thread, 3,083 ms on 2). The share
other programs use is read from the CPU counters at most every ``REFRESH_S`` seconds (core/cpuload.py).
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from typing import Iterator

import torch

from core.cpuload import OtherLoad
from core.defaults import DECODE_IDLE_CORE_SLACK

ENV = "ASSISTANT_FACTORY_DECODE_THREADS"
REFRESH_S = 0.5     # re-read the counters at most this often (a reading costs ~0.1 ms)
MIN_WINDOW_S = 0.05  # the first reading needs this long a window to mean anything
CAP = torch.get_num_threads()  # torch's count when we were imported (OMP_NUM_THREADS, else the cores)


class _State:
    load = OtherLoad()          # counters start at import, so the first decode usually has a long window already
    since = time.monotonic()
    fresh = True                # no reading yet
    threads = CAP


def idle_threads(other_share: float, cores: int = CAP) -> int:
    """Threads for ``cores`` cores of which other programs use ``other_share`` (0-1) in all: whole idle cores."""
    idle = cores * (1.0 - other_share)
    return max(1, min(cores, math.floor(idle + DECODE_IDLE_CORE_SLACK)))


def decode_threads() -> int:
    """The thread count for the next decode steps ($ASSISTANT_FACTORY_DECODE_THREADS, else from the idle cores)."""
    fixed = os.environ.get(ENV, "").strip()
    if fixed.isdigit() and int(fixed) > 0:
        return int(fixed)
    waited = time.monotonic() - _State.since
    if _State.fresh or waited >= REFRESH_S:
        if waited < MIN_WINDOW_S:
            time.sleep(MIN_WINDOW_S - waited)
        _State.threads, _State.since, _State.fresh = idle_threads(_State.load.share()), time.monotonic(), False
    return _State.threads


@contextlib.contextmanager
def threads_for_decoding() -> Iterator[int]:
    """Run the block with ``decode_threads()`` torch threads; the caller's count is restored after."""
    before, n = torch.get_num_threads(), decode_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield n
    finally:
        if n != before:
            torch.set_num_threads(before)
