"""Device choice, shared by every backend: `cpu`, `cuda`, or `auto`.

`cuda` without a usable GPU is an error; only `auto` falls back to the CPU, and the returned
note says so. Torch-free: each backend passes in whether it can use a GPU and why not.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from vidsynth.errors import RuntimeBackendError, choice_error

DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class DeviceChoice:
    name: str  # "cpu" or "cuda"
    note: Optional[str] = None  # set when `auto` fell back to the CPU


def choose_device(requested: str, cuda_usable: bool, why_not: str) -> DeviceChoice:
    """`why_not` explains what is missing for CUDA (named in the error and the fallback note)."""
    if requested not in DEVICES:
        raise choice_error(RuntimeBackendError, "device", requested, DEVICES)
    if requested == "cpu":
        return DeviceChoice("cpu")
    if cuda_usable:
        return DeviceChoice("cuda")
    if requested == "cuda":
        raise RuntimeBackendError(f"--device cuda is not usable: {why_not}; use --device cpu or auto")
    return DeviceChoice("cpu", note=f"--device auto: no usable CUDA ({why_not}); running on cpu")
