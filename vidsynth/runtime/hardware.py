"""What this machine offers a generator, found without importing the runtimes themselves:
CPU model and flags (native bf16 only with AMX or AVX512-BF16), the installed runtimes and
their versions, and a CUDA GPU when torch can use one. `auto_backend` picks the fastest
backend for a source (weights or artifacts) from these facts. Torch-free unless a GPU driver
is present, when torch (if installed) is asked whether it can use the GPU."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
RUNTIMES = {"torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino"}  # module -> distribution
# How many times as long the optimized backend takes at bf16 as at fp32 on a CPU without native
# bf16, by its widest vector unit (demo model 96x96 ngf=64, B=8 x T=64, 2 cores): an AVX-512
# CPU took 6.2 s against 1.1 s; an AVX2-only AMD EPYC took 171 s against 1.59 s.
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
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model == "unknown CPU":
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = frozenset(value.split())
    except OSError:
        pass
    return model, flags


def _installed(module: str, distribution: str) -> str | None:
    try:
        if importlib.util.find_spec(module) is None:
            return None
        return version(distribution)
    except (ImportError, ValueError, PackageNotFoundError):
        if distribution == "onnxruntime":
            return _installed_distribution("onnxruntime-gpu")
        return None


def _installed_distribution(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _cuda_device(torch_installed: bool) -> str | None:
    if not torch_installed or not os.path.exists("/proc/driver/nvidia"):
        return None  # no driver: no need to import torch to know
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


@lru_cache(maxsize=1)
def probe_hardware() -> Hardware:
    model, flags = _cpuinfo()
    runtimes = {module: _installed(module, dist) for module, dist in RUNTIMES.items()}
    return Hardware(model, os.cpu_count() or 1, flags, runtimes, _cuda_device(runtimes["torch"] is not None))


def auto_backend(artifacts: bool, device: str, hardware: Hardware) -> tuple[str, str]:
    """(backend name, why) for a source of export artifacts or of weights on `device`
    (cpu, cuda or auto). The order comes from the benchmarks (README, Benchmarks)."""
    if device == "cuda" or (device == "auto" and hardware.cuda_device is not None):
        return "torchscript", f"CUDA GPU {hardware.cuda_device}: TorchScript was the fastest fp32 path there"
    if artifacts:
        if hardware.has("openvino"):
            return (
                "openvino",
                "export artifacts on the CPU: OpenVINO ran the optimized generator.onnx fastest",
            )
        if hardware.has("onnxruntime"):
            return (
                "onnxruntime",
                "export artifacts on the CPU, OpenVINO not installed: onnxruntime runs generator.onnx",
            )
        if hardware.has("torch"):
            return (
                "torchscript",
                "export artifacts on the CPU, onnxruntime not installed: TorchScript runs generator.pt",
            )
        return "onnxruntime", "export artifacts, and neither onnxruntime nor torch is installed"
    if hardware.native_bf16:
        return (
            "optimized-bf16",
            "weights on a CPU with native bf16 "
            f"({', '.join(f for f in NATIVE_BF16_FLAGS if f in hardware.cpu_flags)})",
        )
    return (
        "optimized",
        "weights on a CPU without native bf16 (no amx_bf16/avx512_bf16): the fp32 inference copy",
    )
