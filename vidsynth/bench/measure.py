"""Timing, memory and machine-state helpers for the benchmarks."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from vidsynth.runtime.hardware import probe_hardware
from vidsynth.runtime.plan import available_memory

# lscpu fields a results file records, and the instruction sets that decide which kernels run.
LSCPU_FIELDS = (
    "Model name", "CPU(s)", "Core(s) per socket", "Thread(s) per core", "Socket(s)", "L2 cache", "L3 cache",
    "Hypervisor vendor",
)  # fmt: skip
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16")


def percentiles(seconds: list[float]) -> dict[str, float]:
    values = np.asarray(seconds, dtype=np.float64) * 1e3
    p50, p90, p99 = (float(np.percentile(values, q)) for q in (50, 90, 99))
    return {"p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "n": len(seconds)}


def status_mib(field: str, pid: int | str = "self") -> float | None:
    """A memory field of /proc/PID/status (VmRSS, VmHWM) in MiB; None where there is none."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def with_cpu_use(call: Callable[[], Any]) -> tuple[Any, float, float]:
    """`call`'s result, its wall-clock seconds, and the busy share of all CPUs meanwhile."""

    def jiffies() -> tuple[float, float]:
        fields = [float(x) for x in open("/proc/stat").readline().split()[1:]]
        return sum(fields) - fields[3] - fields[4], sum(fields)  # idle and iowait are not busy

    busy0, total0 = jiffies()
    started = time.perf_counter()
    result = call()
    wall = time.perf_counter() - started
    busy1, total1 = jiffies()
    return result, wall, (busy1 - busy0) / (total1 - total0)


def timed(call: Callable[[], Any], sync: Callable[[], None] = lambda: None) -> tuple[float, Any]:
    sync()
    start = time.perf_counter()
    result = call()
    sync()
    return time.perf_counter() - start, result


def round_robin(
    calls: dict[Any, Callable[[], Any]], repeats: int, tick: Callable[[], Any] = lambda: None
) -> dict[Any, list[float]]:
    """Seconds of `repeats` calls of each, in turn, so that a change in machine load hits all
    alike; `tick` after each call."""
    samples: dict[Any, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            samples[name].append(timed(call)[0])
            tick()
    return samples


def timed_with_memory(call: Callable[[], Any], cuda: bool = False) -> tuple[float, dict]:
    """One call's seconds, this process's peak RSS during it (and the rise over the RSS before
    it), and on CUDA the peak of torch's GPU allocations during the call."""
    before = status_mib("VmRSS")
    try:  # resets the kernel's peak-RSS mark (VmHWM)
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        reset = True
    except OSError:
        reset = False
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    seconds = timed(call)[0]
    peak = status_mib("VmHWM") if reset else None
    memory = {
        "peak_rss_mib": peak,
        "peak_rss_delta_mib": None if peak is None or before is None else peak - before,
    }
    if cuda:
        memory["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return seconds, memory


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_description(threads: int) -> dict[str, Any]:
    import torch

    description: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "threads": {
            "torch_intra_op": threads,
            "torch_inter_op": torch.get_num_interop_threads(),
            "ort_intra_op": threads,
            "ort_inter_op": 1,
        },
        "load_average_at_start": load_average(),
        "mem_available_mib_at_start": available_memory() / 2**20,
        "onnxruntime": probe_hardware().runtimes["onnxruntime"],
    }
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
        for key in (key for key in LSCPU_FIELDS if key in fields):
            description[key.lower().replace(" ", "_").replace("(s)", "s")] = fields[key].strip()
        description["isa"] = [flag for flag in ISA_FLAGS if flag in fields.get("Flags", "").split()]
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    if torch.cuda.is_available():
        description["cuda_device"] = torch.cuda.get_device_name(0)
        description["cuda_version"] = torch.version.cuda
    return description
