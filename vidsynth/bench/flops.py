"""FLOP counts of the image generator, and the machine's measured matmul peak."""

from __future__ import annotations

import time

from vidsynth.model.config import ModelConfig


def generator_layers(config: ModelConfig) -> list[tuple[int, int, int, int]]:
    """(in channels, out channels, kernel, input side) of each ConvTranspose2d."""
    ngf, side = config.ngf, config.image_size // 16
    channels = [config.nz, 8 * ngf, 4 * ngf, 2 * ngf, ngf, config.nc]
    layers = [(channels[0], channels[1], side, 1)]
    for i in range(1, 5):
        layers.append((channels[i], channels[i + 1], 4, side))
        side *= 2
    return layers


def generator_flops_per_frame(config: ModelConfig) -> int:
    """2 x multiply-adds of the ConvTranspose2d layers for one frame: every input pixel meets
    every kernel tap, in x out channels (the batch norms, ReLUs and tanh are not counted)."""
    return sum(2 * cin * cout * k * k * side * side for cin, cout, k, side in generator_layers(config))


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
