"""A simulated machine and a fixed speed, so strategy tests do not depend on this machine's load."""
from __future__ import annotations

from core.strategy import (
    GiB,
    Machine,
    MachineSpeed,
    ResourceEstimator,
    StrategySelector,
    render,
)

SPEED = MachineSpeed(device="cpu", threads=2, matmul_gflops=20.0, bandwidth_gbs=8.0, framework_mb=450.0,
                     measured_at=0.0)
DEFAULT = "smollm2-135m-instruct"


def machine(gib: float, device: str = "cpu") -> Machine:
    """A simulated machine with ``gib`` GiB of free memory."""
    return Machine(device=device, cpu_cores=2, threads=2, ram_total=int(gib * GiB), ram_available=int(gib * GiB))


def estimator(model: str = DEFAULT, gib: float = 64) -> ResourceEstimator:
    return ResourceEstimator(model, machine=machine(gib), speed=SPEED)


def selector(gib: float = 64) -> StrategySelector:
    return StrategySelector(estimator=estimator(DEFAULT, gib))


def codes(reasons: list) -> list[str]:
    return [r["code"] for r in reasons]


def english(reasons: list) -> str:
    return " ".join(render(r) for r in reasons)


def fix_speed(monkeypatch) -> None:
    """Both the cached benchmark and the live probe report SPEED."""
    import core.strategy.machine as machine_module

    monkeypatch.setattr(machine_module, "machine_speed", lambda machine=None, refresh=False: SPEED)
    monkeypatch.setattr(machine_module, "probe_speed", lambda machine=None: SPEED)
