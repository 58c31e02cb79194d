"""Timing, memory and machine-state helpers for the benchmark."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from vidsynth.runtime.plan import available_memory


def percentiles(seconds: list[float]) -> dict[str, float]:
    values = np.asarray(seconds, dtype=np.float64) * 1e3
    return {
        "p50_ms": float(np.percentile(values, 50)),
        "p90_ms": float(np.percentile(values, 90)),
        "p99_ms": float(np.percentile(values, 99)),
        "n": len(seconds),
    }


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Resets the kernel's peak-RSS mark (VmHWM) of this process; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def rss_mib() -> float | None:
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024


def peak_rss_mib() -> float | None:
    kib = _status_kib("VmHWM")
    return None if kib is None else kib / 1024


def mem_available_mib() -> float:
    return available_memory() / 2**20


def timed(call: Callable[[], Any], sync: Callable[[], None]) -> tuple[float, Any]:
    sync()
    start = time.perf_counter()
    result = call()
    sync()
    return time.perf_counter() - start, result


def timed_with_memory(
    call: Callable[[], Any], sync: Callable[[], None], cuda: bool = False
) -> tuple[float, dict]:
    """One call's seconds, this process's RSS before it and at its peak, and on CUDA the
    peak of torch's GPU allocations during the call."""
    before = rss_mib()
    reset_ok = reset_peak_rss()
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    seconds, result = timed(call, sync)
    del result
    peak = peak_rss_mib() if reset_ok else None
    memory = {
        "rss_before_mib": before,
        "peak_rss_mib": peak,
        "peak_rss_delta_mib": None if peak is None or before is None else peak - before,
    }
    if cuda:
        memory["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return seconds, memory


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


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
        "mem_available_mib_at_start": mem_available_mib(),
    }
    try:
        import onnxruntime

        description["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        description["onnxruntime"] = None
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
        for key in (
            "Model name",
            "CPU(s)",
            "Core(s) per socket",
            "Thread(s) per core",
            "Socket(s)",
            "L2 cache",
            "L3 cache",
            "Hypervisor vendor",
        ):
            if key in fields:
                description[key.lower().replace(" ", "_").replace("(s)", "s")] = fields[key].strip()
        flags = fields.get("Flags", "").split()
        description["isa"] = [
            f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16") if f in flags
        ]
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    if torch.cuda.is_available():
        description["cuda_device"] = torch.cuda.get_device_name(0)
        description["cuda_version"] = torch.version.cuda
    return description
