"""FLOP counts of the image generator, and the machine's measured matmul peak."""

from __future__ import annotations

import functools
import operator
import statistics
from collections.abc import Callable
from typing import Any

from vidsynth.bench.measure import timed
from vidsynth.model.config import ModelConfig, image_layers


def generator_flops_per_frame(config: ModelConfig) -> int:
    """2 x multiply-adds of the ConvTranspose2d layers for one frame: every input pixel meets
    every kernel tap, in x out channels (the batch norms, ReLUs and tanh are not counted)."""
    return sum(
        2 * layer.in_channels * layer.out_channels * layer.kernel**2 * layer.in_side**2
        for layer in image_layers(config)
    )


def _operands(dtype_name: str, n: int, device: str) -> tuple[Any, ...]:
    import torch

    from vidsynth.export.precision import TORCH_DTYPES

    return tuple(torch.randn(n, n, device=device).to(TORCH_DTYPES[dtype_name]) for _ in range(2))


def _sync(device: str) -> Callable[[], None]:
    import torch

    return torch.cuda.synchronize if device == "cuda" else lambda: None


def matmul_peak(dtype_name: str, sizes: tuple[int, ...], repeats: int, device: str = "cpu") -> dict:
    """Median FLOP/s of square matmuls at each size; the peak is the best median."""
    sync = _sync(device)
    per_size = {}
    for n in sizes:
        a, b = _operands(dtype_name, n, device)
        for _ in range(2):
            a @ b
        call = functools.partial(operator.matmul, a, b)
        per_size[n] = 2 * n**3 / statistics.median_high(timed(call, sync)[0] for _ in range(repeats))
    return {
        "flops_per_s": max(per_size.values()),
        "per_size": {str(n): f for n, f in per_size.items()},
        "repeats": repeats,
    }


def interleaved_peaks(
    precisions: tuple[str, ...], device: str, n: int
) -> dict[str, tuple[Callable[[], Any], float]]:
    """Square matmuls (several per timing for the fast precisions) to time between the
    contenders' repeats: name -> (call, FLOPs per call)."""
    sync = _sync(device)
    calls = {}
    for name in ("fp32",) + tuple(p for p in precisions if p != "fp32"):
        a, b = _operands(name, n, device)
        count = 4 if name == "bf16" or (name == "fp16" and device == "cuda") else 1  # ~0.1-0.3 s per timing

        def run(a: Any = a, b: Any = b, count: int = count) -> Any:
            for _ in range(count):
                out = a @ b
            sync()
            return out

        run()
        calls[name] = (run, 2.0 * n**3 * count)
    return calls
