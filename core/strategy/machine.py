"""This machine: its CPU/GPU and memory, and a measured micro-benchmark of its speed (cached, or probed now)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
import torch

from core.cpuload import OtherLoad
from core.errors import UserError
from core.fileio import atomic_write_json, read_json
from core.workspace import kind_dir

MiB = 1024 ** 2
GiB = 1024 ** 3
BENCH_FILE = ".machine_bench.json"


@dataclass
class Machine:
    """What the estimator plans for: CPU cores and RAM, or a CUDA GPU and its memory."""

    device: str                     # "cpu" | "cuda"
    cpu_cores: int
    threads: int                    # torch intra-op threads a run will use
    ram_total: int                  # bytes
    ram_available: int              # bytes free now (other programs included)
    gpu_name: str | None = None
    gpu_memory: int | None = None  # bytes
    memory_margin: float = 0.10     # keep this share of the budget free (other programs, fragmentation)

    @classmethod
    def detect(cls, device: str = "auto") -> Machine:
        """This machine, now (psutil for RAM; torch for the GPU)."""
        vm = psutil.virtual_memory()
        cores = psutil.cpu_count(logical=True) or os.cpu_count() or 1
        use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        if use_cuda and not torch.cuda.is_available():
            raise UserError("train.device is 'cuda' but no CUDA GPU is visible; use device 'auto' or 'cpu'.")
        gpu_name = gpu_mem = None
        if use_cuda:
            props = torch.cuda.get_device_properties(0)
            gpu_name, gpu_mem = props.name, int(props.total_memory)
        return cls(device="cuda" if use_cuda else "cpu", cpu_cores=int(cores), threads=torch.get_num_threads(),
                   ram_total=int(vm.total), ram_available=int(vm.available), gpu_name=gpu_name, gpu_memory=gpu_mem)

    @property
    def memory_budget(self) -> int:
        """Bytes a run may use: the GPU's memory, or the RAM free now, less the safety margin."""
        room = self.gpu_memory if self.device == "cuda" and self.gpu_memory else self.ram_available
        return int(room * (1 - self.memory_margin))

    def describe(self) -> str:
        """One line for people."""
        if self.device == "cuda":
            return f"GPU {self.gpu_name} with {self.gpu_memory / GiB:.1f} GiB, {self.cpu_cores} CPU cores"
        return (f"CPU, {self.cpu_cores} cores ({self.threads} torch threads), {self.ram_total / GiB:.1f} GiB RAM "
                f"({self.ram_available / GiB:.1f} GiB free now)")


@dataclass
class MachineSpeed:
    """Measured speed of this machine: matmul GFLOP/s, memory bandwidth and the framework's own memory."""

    device: str
    threads: int
    matmul_gflops: float
    bandwidth_gbs: float
    framework_mb: float
    measured_at: float


def _cpu_clock() -> float:
    """Process CPU seconds per torch thread: on an idle machine equal to wall time, and unlike wall time not
    stretched when other programs share the cores."""
    return time.process_time() / max(1, torch.get_num_threads())


def _timed(fn, clock=time.perf_counter, min_s: float = 0.25, reps: int = 3) -> float:
    """Best seconds per call of ``fn`` over ``reps`` windows of at least ``min_s`` wall seconds (after a warm-up).

    The best window, not the median: estimates describe this machine, not whatever else happens to run on it."""
    fn()
    results = []
    for _ in range(reps):
        n, w0, t0 = 0, time.perf_counter(), clock()
        while True:
            fn()
            n += 1
            if time.perf_counter() - w0 >= min_s:
                break
        results.append((clock() - t0) / n)
    return min(results)


def measure_machine(device: str = "cpu") -> MachineSpeed:
    """A ~2 s micro-benchmark: a model-shaped float32 matmul, a large copy, and the RSS of the bare framework.

    On the CPU the speeds are in CPU seconds per thread (see :func:`_cpu_clock`): what the machine does when the
    run has it to itself. Time estimates are therefore for an otherwise idle machine."""
    clock = time.perf_counter if device == "cuda" else _cpu_clock
    gflops, bandwidth = _speeds(device, clock, min_s=0.25, reps=3)
    return MachineSpeed(device=device, threads=torch.get_num_threads(), matmul_gflops=round(gflops, 2),
                        bandwidth_gbs=round(bandwidth, 2), framework_mb=round(_framework_rss_mb(), 1),
                        measured_at=time.time())


def probe_speed(machine: Machine | None = None) -> MachineSpeed:
    """This machine's speed right now: the idle benchmark scaled by the share of the CPU a run would get now.

    The cached benchmark is for an otherwise idle machine. Other programs busy on ``b`` of the cores' time leave a
    run about ``1 / (1 + b)`` of it (the scheduler splits each core between the runnable threads). Timing a
    short matmul against the benchmark instead mixes warm-up and thread start-up into the answer: it read a
    third of the real speed on a quiet machine. On a GPU the cached figure stands."""
    machine = machine or Machine.detect()
    cached = machine_speed(machine)
    share = 1.0 if machine.device != "cpu" else cpu_share()
    return MachineSpeed(device=machine.device, threads=cached.threads,
                        matmul_gflops=round(cached.matmul_gflops * share, 2),
                        bandwidth_gbs=round(cached.bandwidth_gbs * share, 2), framework_mb=cached.framework_mb,
                        measured_at=time.time())


def cpu_share(window_s: float = 0.25, windows: int = 4) -> float:
    """Share (0.5-1) of the cores a new run would get now: ``1 / (1 + b)``, ``b`` other programs' busy share.

    ``b`` is the quietest of a few short windows: load that lasts (another training run) shows in all of them,
    while a browser drawing the page that asked shows in one or two and would not slow the run."""
    return 1.0 / (1.0 + min(_others_busy(window_s) for _ in range(max(1, windows))))


def _others_busy(window_s: float) -> float:
    """Share (0-1) of all cores busy with other processes over ``window_s`` seconds."""
    load = OtherLoad()
    time.sleep(window_s)
    return load.share()


def _speeds(device: str, clock, min_s: float, reps: int) -> tuple[float, float]:
    """(matmul GFLOP/s, copy GB/s) of ``device`` timed with ``clock``."""
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    # (tokens x hidden) @ (hidden x intermediate): the shape of SmolLM2's MLP at a 512-token batch.
    m, k, n = (4096, 2048, 8192) if dev.type == "cuda" else (512, 576, 1536)
    a, b = torch.randn(m, k, device=dev), torch.randn(k, n, device=dev)

    def mm():
        torch.mm(a, b)
        sync()

    gflops = 2 * m * k * n / _timed(mm, clock, min_s, reps) / 1e9
    x = torch.empty(16 * MiB // 4 * (16 if dev.type == "cuda" else 4), device=dev)  # 64 MiB (1 GiB on a GPU)
    y = torch.empty_like(x)

    def copy():
        y.copy_(x)
        sync()

    return gflops, 2 * x.numel() * 4 / _timed(copy, clock, min_s, reps) / 1e9  # read + write


def _framework_rss_mb() -> float:
    """Peak RSS of a fresh interpreter that imports torch and transformers (what every run pays first)."""
    # What a training process imports before it loads a model (run from the repository, like the trainer).
    code = ("import resource, torch, transformers; from transformers import AutoModelForCausalLM, AutoTokenizer; "
            "import core.models, core.peft, core.training.loss, core.training.optim; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    root = Path(__file__).resolve().parents[2]  # the repository
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                             cwd=root)
        kib = float(out.stdout.strip().splitlines()[-1])
        return kib / 1024 if platform.system() != "Darwin" else kib / MiB  # macOS reports bytes
    except (subprocess.SubprocessError, ValueError, IndexError, OSError):
        return 300.0  # what it measured on the development machine


def _bench_path() -> Path:
    """The benchmark cache, in the models folder (shared by every run on this machine)."""
    return kind_dir("models") / BENCH_FILE


def machine_speed(machine: Machine | None = None, refresh: bool = False) -> MachineSpeed:
    """The cached micro-benchmark of this machine for its device and thread count (measured on first use)."""
    machine = machine or Machine.detect()
    key = f"{machine.device}:{machine.threads}:{platform.node()}"
    path = _bench_path()
    cache = read_json(path, {}) or {}
    if not refresh and isinstance(cache.get(key), dict):
        try:
            return MachineSpeed(**cache[key])
        except TypeError:
            pass  # an older layout: measure again
    speed = measure_machine(machine.device)
    cache[key] = asdict(speed)
    try:
        atomic_write_json(path, cache)
    except OSError:
        pass  # a read-only workspace only costs a re-measure next time
    return speed

