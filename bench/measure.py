"""Timing, memory and machine-state helpers for the benchmark."""
from __future__ import annotations

import atexit
import math
import os
import platform
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np


def percentiles(seconds: list[float]) -> dict[str, float]:
    values = np.asarray(seconds, dtype=np.float64) * 1e3
    return {
        "p50_ms": float(np.percentile(values, 50)),
        "p90_ms": float(np.percentile(values, 90)),
        "p99_ms": float(np.percentile(values, 99)),
        "n": len(seconds),
    }


def _status_kib(field: str) -> Optional[int]:
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


def rss_mib() -> Optional[float]:
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024


def peak_rss_mib() -> Optional[float]:
    kib = _status_kib("VmHWM")
    return None if kib is None else kib / 1024


def mem_available_mib() -> Optional[float]:
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def timed(call: Callable[[], Any], sync: Callable[[], None]) -> tuple[float, Any]:
    sync()
    start = time.perf_counter()
    result = call()
    sync()
    return time.perf_counter() - start, result


def timed_with_memory(call: Callable[[], Any], sync: Callable[[], None], cuda: bool = False) -> tuple[float, dict]:
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
    memory = {"rss_before_mib": before, "peak_rss_mib": peak, "peak_rss_delta_mib": None if peak is None or before is None else peak - before}
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
        "threads": {"torch_intra_op": threads, "torch_inter_op": torch.get_num_interop_threads(), "ort_intra_op": threads, "ort_inter_op": 1},
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
        for key in ("Model name", "CPU(s)", "Core(s) per socket", "Thread(s) per core", "Socket(s)", "L2 cache", "L3 cache", "Hypervisor vendor"):
            if key in fields:
                description[key.lower().replace(" ", "_").replace("(s)", "s")] = fields[key].strip()
        flags = fields.get("Flags", "").split()
        description["isa"] = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16") if f in flags]
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    if torch.cuda.is_available():
        description["cuda_device"] = torch.cuda.get_device_name(0)
        description["cuda_version"] = torch.version.cuda
    return description


@contextmanager
def paused_process(pid_file: Optional[str]) -> Iterator[Optional[int]]:
    """Stops (SIGSTOP) the process whose PID is in `pid_file` while the block runs, and always
    continues it afterwards: on return, on an exception, on SIGTERM/SIGINT and at exit."""
    pid = None
    if pid_file and Path(pid_file).is_file():
        try:
            pid = int(Path(pid_file).read_text().strip())
            os.kill(pid, 0)
        except (ValueError, OSError):
            pid = None
    if pid is None:
        yield None
        return

    def resume(*_: Any) -> None:
        try:
            os.kill(pid, signal.SIGCONT)
        except OSError:
            pass

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        previous[sig] = signal.getsignal(sig)

        def handler(signum: int, frame: Any, _prev=previous) -> None:
            resume()
            old = _prev.get(signum)
            if callable(old):
                old(signum, frame)
            else:
                raise SystemExit(128 + signum)

        signal.signal(sig, handler)
    atexit.register(resume)
    watchdog = _continue_when_parent_dies(pid)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        resume()
        atexit.unregister(resume)
        for sig, old in previous.items():
            signal.signal(sig, old)
        _stop_watchdog(watchdog)


# A child that blocks reading a pipe whose only writer is this process: when this process
# ends for any reason, SIGKILL and the out-of-memory killer included, the read returns and
# the child continues the paused process.
_WATCHDOG = (
    "import os, signal, sys\n"
    "sys.stdin.buffer.read()\n"
    "try:\n    os.kill(int(sys.argv[1]), signal.SIGCONT)\nexcept OSError:\n    pass\n"
)


def _continue_when_parent_dies(pid: int) -> Optional[subprocess.Popen]:
    import sys

    try:
        return subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(pid)], stdin=subprocess.PIPE, start_new_session=True)
    except OSError:
        return None


def _stop_watchdog(watchdog: Optional[subprocess.Popen]) -> None:
    if watchdog is None:
        return
    try:
        watchdog.stdin.close()
        watchdog.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        pass


def psnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """PSNR over the video's [-1, 1] range (peak-to-peak 2)."""
    mse = float(np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)


class OtherCpu:
    """CPU time used by every other process, in cores, between two readings: the machine's
    busy time (/proc/stat) minus this process's own (/proc/self/stat)."""

    def __init__(self) -> None:
        self.start = self._read()

    @staticmethod
    def _read() -> Optional[tuple[float, float, float]]:
        try:
            with open("/proc/stat") as stat:
                fields = [int(x) for x in stat.readline().split()[1:]]
            with open("/proc/self/stat") as own:
                parts = own.read().rsplit(")", 1)[1].split()
        except (OSError, ValueError):
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        busy = (sum(fields[:8]) - idle) / ticks
        mine = (int(parts[11]) + int(parts[12])) / ticks  # utime + stime
        return time.monotonic(), busy, mine

    def cores(self) -> Optional[float]:
        """Average cores used by other processes since the last call (or construction)."""
        now = self._read()
        if now is None or self.start is None:
            return None
        elapsed = now[0] - self.start[0]
        other = (now[1] - self.start[1]) - (now[2] - self.start[2])
        self.start = now
        return round(max(other, 0.0) / elapsed, 2) if elapsed > 0 else None


def wait_until_quiet(max_wait_s: float, below_cores: float = 0.3, window_s: float = 3.0, log: Callable[[str], None] = print) -> Optional[float]:
    """Waits (up to max_wait_s) until other processes use fewer than `below_cores` cores
    over a `window_s` window; returns the last reading."""
    deadline = time.monotonic() + max_wait_s
    meter = OtherCpu()
    while True:
        time.sleep(window_s)
        used = meter.cores()
        if used is None or used < below_cores or time.monotonic() >= deadline:
            return used
        log(f"  other processes use {used:.2f} cores; waiting for a quieter machine")
