"""How busy other programs keep the CPU: the share of all cores they used between two readings (psutil)."""
from __future__ import annotations

import psutil


class OtherLoad:
    """Readings of the whole machine's and this process's CPU counters; ``share`` is what the rest used since."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        psutil.cpu_percent(None)  # both counters measure from here
        self.proc.cpu_percent(None)

    def share(self) -> float:
        """Share (0-1) of all cores busy with other processes since the last reading."""
        total = psutil.cpu_percent(None) / 100  # all cores, this process included
        own = self.proc.cpu_percent(None) / 100 / (psutil.cpu_count() or 1)
        return min(1.0, max(0.0, total - own))
