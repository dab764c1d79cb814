"""How torch uses this machine: CPU threads and float32 matmul precision, set once per run and printed.

Threads: torch's default is every core it sees. On a shared machine or with several processes
per machine (CPU DDP, one process per GPU) that oversubscribes the cores, and OpenMP threads that
wait on each other made one run about 20x slower (see bench/bench_threads.py). The default here
is the cores this process may run on (its CPU affinity and any cgroup quota), less those that
other work keeps busy (sampled from /proc/stat over a fifth of a second when the process first
asks; the 1-minute load average where there is no /proc), divided by the processes this run starts
on the machine; one inter-op thread. Not the load average on Linux: it trails finished work by a
minute or more, so a run started just after other work (`make demo` right after its own
`pip install`, or after its own data generation) would get one thread on an idle 2-core machine.

Precision: float32 matmuls stay exact ("highest") unless ``run.matmul_precision`` asks for TF32
("high") or bfloat16 ("medium") on GPUs that have them; nothing is switched on silently.
"""
from __future__ import annotations

import math
import os
import time

import torch

from .errors import SuiteError

MATMUL_PRECISIONS = ("highest", "high", "medium")


def available_cores() -> int:
    """Cores this process may use: its affinity mask, capped by a cgroup v2 CPU quota if one is set."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def processes_per_machine(trainer_cfg: dict) -> int:
    """How many training processes this run starts on each machine (Lightning's devices)."""
    devices = trainer_cfg.get("devices", 1)
    if isinstance(devices, (list, tuple)):
        return max(1, len(devices))
    if isinstance(devices, int) and devices > 0:
        return devices
    if str(trainer_cfg.get("accelerator", "auto")) != "cpu" and torch.cuda.is_available():
        return max(1, torch.cuda.device_count())  # "auto" or -1 on a GPU machine: one process per GPU
    return 1


_idle_cores: list[int] = []  # decided once per process: later runs in it must not count its own load


def _cpu_times() -> tuple[int, int]:
    """(idle, total) jiffies of all the machine's CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return fields[3] + fields[4], sum(fields[:8])  # idle + iowait; user .. steal (guest time is in user)


def busy_cores(window: float = 0.2) -> float:
    """How many of the machine's CPUs other work keeps busy now: /proc/stat sampled over ``window``
    seconds (the load average of the last minute where /proc is missing)."""
    try:
        idle0, total0 = _cpu_times()
        time.sleep(window)
        idle1, total1 = _cpu_times()
        return (os.cpu_count() or 1) * (1 - (idle1 - idle0) / max(1, total1 - total0))
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except (AttributeError, OSError):
            return 0.0


def idle_cores() -> int:
    """Available cores less those other work keeps busy (``busy_cores``), at least 1."""
    if not _idle_cores:
        cores = available_cores()
        _idle_cores.append(max(1, min(cores, round(cores - busy_cores()))))
    return _idle_cores[0]


def default_threads(trainer_cfg: dict) -> int:
    return max(1, idle_cores() // processes_per_machine(trainer_cfg))


def configure(cfg: dict) -> str:
    """Apply ``run.threads`` and ``run.matmul_precision``; returns a line describing them."""
    run, trainer = cfg.get("run", {}), cfg.get("trainer", {})
    threads = run.get("threads")
    auto = threads in (None, "auto", 0)
    n = default_threads(trainer) if auto else int(threads)
    if n < 1:
        raise SuiteError(f"--threads must be at least 1, not {threads}")
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only possible before the first parallel work in this process
        pass
    precision = run.get("matmul_precision") or "highest"
    if precision not in MATMUL_PRECISIONS:
        raise SuiteError(f"run.matmul_precision must be one of {', '.join(MATMUL_PRECISIONS)}, not {precision!r}")
    torch.set_float32_matmul_precision(precision)
    how = (f"auto: {idle_cores()} of {available_cores()} cores idle / {processes_per_machine(trainer)} process(es)"
           if auto else "set")
    return f"threads {n} ({how}), float32 matmul precision {precision}"
