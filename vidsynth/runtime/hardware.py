"""What this machine offers a generator, found without importing the runtimes themselves:
CPU model and flags (native bf16 only with AMX or AVX512-BF16), the installed runtimes and
their versions, and a CUDA GPU when torch can use one. `auto_backend` picks the fastest
backend for a source (weights or artifacts) from these facts. Torch-free unless a GPU driver
is present, when torch (if installed) is asked whether it can use the GPU."""

from __future__ import annotations

import importlib.util
import os
from contextlib import suppress
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

from vidsynth.errors import MissingDependencyError

NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
RUNTIMES = ("torch", "onnxruntime", "openvino")  # each module's distribution has its name
# How many times as long the optimized backend takes at bf16 as at fp32 on a CPU without native
# bf16, by its widest vector unit (measured on the demo model).
EMULATED_BF16_SLOWDOWN = {"avx512f": 5.5, "avx2": 108.0}


@dataclass(frozen=True)
class Hardware:
    cpu_model: str
    cpu_count: int
    cpu_flags: frozenset[str]
    runtimes: dict[str, str | None]  # module -> installed version, None when missing
    cuda_device: str | None  # the GPU torch can use, None otherwise

    @property
    def native_bf16(self) -> bool:
        return any(flag in self.cpu_flags for flag in NATIVE_BF16_FLAGS)

    @property
    def emulated_bf16_slowdown(self) -> tuple[float, str]:
        """The measured bf16/fp32 time ratio for a CPU like this one, and its vector unit."""
        unit = "avx512f" if "avx512f" in self.cpu_flags else "avx2"
        return EMULATED_BF16_SLOWDOWN[unit], unit

    def has(self, runtime: str) -> bool:
        return self.runtimes.get(runtime) is not None

    def describe(self) -> dict:
        return {
            "cpu": self.cpu_model,
            "cpu_count": self.cpu_count,
            "native_bf16": self.native_bf16,
            "cpu_flags": sorted(f for f in self.cpu_flags if f.startswith(("avx", "amx", "fma", "sse4"))),
            "runtimes": self.runtimes,
            "cuda_device": self.cuda_device,
        }


def _cpuinfo() -> tuple[str, frozenset[str]]:
    model, flags = "unknown CPU", frozenset()
    with suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model == "unknown CPU":
                model = value.strip()
            elif key == "flags" and not flags:
                flags = frozenset(value.split())
    return model, flags


def installed_version(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _installed(module: str) -> str | None:
    """The version of `module`'s distribution (onnxruntime may come as onnxruntime-gpu)."""
    try:
        if importlib.util.find_spec(module) is None:
            return None
        return version(module)
    except (ImportError, ValueError, PackageNotFoundError):
        return installed_version("onnxruntime-gpu") if module == "onnxruntime" else None


def nvidia_driver_present() -> bool:
    """Whether an NVIDIA driver is loaded: without one no runtime needs to be asked for CUDA
    (asking onnxruntime-gpu makes it log an error)."""
    return os.path.exists("/proc/driver/nvidia")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask; os.cpu_count where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def threads_problem(threads: int) -> str | None:
    """Why `threads` intra-op threads cannot be asked for here (more than the CPUs this process
    may run on), or None. Thousands of threads make runtimes hang or crash rather than run faster."""
    cpus = usable_cpus()
    if threads > cpus:
        return f"--threads {threads} is more than the {cpus} CPUs this process can use; use at most {cpus}"
    return None


@lru_cache(maxsize=1)
def probe_hardware() -> Hardware:
    model, flags = _cpuinfo()
    runtimes = {module: _installed(module) for module in RUNTIMES}
    cuda_device = None
    if runtimes["torch"] is not None and nvidia_driver_present():  # no driver: no need to import torch
        import torch

        if torch.cuda.is_available():
            cuda_device = torch.cuda.get_device_name(0)
    return Hardware(model, os.cpu_count() or 1, flags, runtimes, cuda_device)


# Artifact backends in the order the benchmarks rank them (README, Benchmarks), per device:
# (backend, the export format it runs, the runtime module it needs, why it is chosen).
_ARTIFACT_PICKS = {
    "cpu": (
        ("openvino", "onnx", "openvino", "OpenVINO ran the optimized generator.onnx fastest"),
        ("onnxruntime", "onnx", "onnxruntime", "onnxruntime runs generator.onnx"),
        ("torchscript", "torchscript", "torch", "TorchScript runs generator.pt"),
        ("pt2", "pt2", "torch", "AOTInductor runs the .pt2 packages"),
    ),
    "cuda": (
        ("torchscript", "torchscript", "torch", "TorchScript was the fastest fp32 path there"),
        ("onnxruntime", "onnx", "onnxruntime", "onnxruntime runs generator.onnx on its CUDA provider"),
    ),
}


def auto_backend(formats: frozenset[str] | None, device: str, hardware: Hardware) -> tuple[str, str]:
    """(backend name, why) for export artifacts holding `formats` (torchscript, onnx, pt2), or
    for weights when `formats` is None, on `device` (cpu, cuda or auto): the first backend in
    the benchmarks' order whose format is present and whose runtime is installed. A
    MissingDependencyError when none is."""
    if device == "cuda":
        where, on = "cuda", "--device cuda"
    elif device == "auto" and hardware.cuda_device is not None:
        where, on = "cuda", f"CUDA GPU {hardware.cuda_device}"
    else:
        where, on = "cpu", "the CPU"
    if formats is None:
        return _weights_backend(where, on, hardware)
    source = f"export artifacts ({', '.join(sorted(formats)) or 'no formats'}) on {on}"
    passed_over = []
    for name, fmt, runtime, reason in _ARTIFACT_PICKS[where]:
        if fmt not in formats:
            passed_over.append(f"no {fmt} for {name}")
        elif not hardware.has(runtime):
            passed_over.append(f"{runtime} not installed")
        else:
            skipped = f" ({'; '.join(passed_over)})" if passed_over else ""
            return name, f"{source}{skipped}: {reason}"
    raise MissingDependencyError(
        f"--backend auto found no backend for {source}: {'; '.join(passed_over)}; install the runtime "
        "of a format the export holds, or export a format an installed runtime runs (export --formats)"
    )


def _weights_backend(where: str, on: str, hardware: Hardware) -> tuple[str, str]:
    if not hardware.has("torch"):
        raise MissingDependencyError(
            f"--backend auto: weights on {on} need torch, which is not installed: pip install torch "
            "(the CPU build: pip install torch==2.13.0), or run an ONNX export with --artifacts"
        )
    if where == "cuda":
        return "torchscript", f"weights on {on}: TorchScript was the fastest fp32 path there"
    if hardware.native_bf16:
        flags = ", ".join(flag for flag in NATIVE_BF16_FLAGS if flag in hardware.cpu_flags)
        return "optimized-bf16", f"weights on a CPU with native bf16 ({flags})"
    return (
        "optimized",
        "weights on a CPU without native bf16 (no amx_bf16/avx512_bf16): the fp32 inference copy",
    )
