"""FLOP counts of the image generator, and the machine's measured matmul peak."""

from __future__ import annotations

import time

from vidsynth.model.config import ModelConfig, image_layers


def generator_flops_per_frame(config: ModelConfig) -> int:
    """2 x multiply-adds of the ConvTranspose2d layers for one frame: every input pixel meets
    every kernel tap, in x out channels (the batch norms, ReLUs and tanh are not counted)."""
    return sum(
        2 * layer.in_channels * layer.out_channels * layer.kernel**2 * layer.in_side**2
        for layer in image_layers(config)
    )


def matmul_peak(dtype_name: str, sizes: tuple[int, ...], repeats: int, device: str = "cpu") -> dict:
    """Median FLOP/s of square matmuls at each size; the peak is the best median."""
    import torch

    from vidsynth.export.precision import TORCH_DTYPES

    dtype = TORCH_DTYPES[dtype_name]
    per_size = {}
    for n in sizes:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        for _ in range(2):
            a @ b
        times = []
        for _ in range(repeats):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            a @ b
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        times.sort()
        per_size[n] = 2 * n**3 / times[len(times) // 2]
    return {
        "flops_per_s": max(per_size.values()),
        "per_size": {str(n): f for n, f in per_size.items()},
        "repeats": repeats,
    }
