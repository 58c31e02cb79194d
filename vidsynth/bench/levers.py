"""One lever at a time on the image generator (nearly all of the FLOPs), at one shape:
what each optimisation that vidsynth.model.inference keeps, or leaves out, is worth on this machine."""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vidsynth.bench.flops import generator_flops_per_frame
from vidsynth.bench.graphs import sub_pixel_upsampling
from vidsynth.bench.measure import round_robin
from vidsynth.model.generator import frame_latents
from vidsynth.model.inference import ChunkedImageGenerator, fold_image_generator
from vidsynth.model.noise import sample_noise

logger = logging.getLogger(__name__)

CL = torch.channels_last


def channels_last(module: nn.Module) -> Callable[[Tensor], Tensor]:
    """`module` with channels-last weights fed a channels-last input, its output made contiguous again."""
    module.to(memory_format=CL)
    return lambda z: module(z.contiguous(memory_format=CL)).contiguous()


def image_levers(model: Any) -> dict[str, Callable[[Tensor], Tensor]]:
    """name -> (N, nz, 1, 1) float32 -> (N, nc, H, W) images, each adding or trying one lever."""
    config = model.config
    eager = copy.deepcopy(model.image).eval()
    frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(copy.deepcopy(eager))))

    def chunked(dtype: torch.dtype, chunk: int = 32, rewrite: bool = True) -> nn.Module:
        return ChunkedImageGenerator(eager, config, dtype, chunk, rewrite=rewrite)

    def autocast_bf16(z: Tensor) -> Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return eager(z).float()

    return {
        "eager fp32 (NCHW, as the reference)": eager,
        "+ channels-last": channels_last(copy.deepcopy(eager)),
        "+ batch norm folded into the convolutions": channels_last(fold_image_generator(eager)),
        "+ 32-frame chunks": chunked(torch.float32, rewrite=False),
        "+ first layer as a matmul, last as sub-pixel (= optimized fp32)": chunked(torch.float32),
        "TorchScript freeze + optimize_for_inference": frozen,
        "sub-pixel rewrite of every stride-2 layer, folded, channels-last": channels_last(
            sub_pixel_upsampling(fold_image_generator(eager))
        ),
        "bf16 torch.autocast (eager)": autocast_bf16,
        "bf16 folded, channels-last, all frames at once": chunked(torch.bfloat16, 1 << 30, rewrite=False),
        "bf16 folded, channels-last, 32-frame chunks": chunked(torch.bfloat16, rewrite=False),
        "bf16 + first layer as a matmul (= optimized bf16)": chunked(torch.bfloat16),
    }


def measure_levers(model: Any, frames: int, repeats: int, seed: int, limit: dict) -> dict[str, Any]:
    """The image generator alone at batch x frames = `frames`, one lever at a time, against the
    matmul peak `limit` of its precision."""
    levers = image_levers(model)
    config = model.config
    noise = sample_noise(config, frames, seed=seed)
    category = None if noise.category is None else torch.from_numpy(noise.category)
    codes = torch.from_numpy(noise.z_motion).unsqueeze(0)  # one frame per latent: (1, frames, d_motion)
    z = frame_latents(codes, torch.from_numpy(noise.z_content), config.n_categories, category)
    with torch.inference_mode():
        expected = next(iter(levers.values()))(z)
        errors = {name: float((fn(z).float() - expected).abs().max()) for name, fn in levers.items()}
        samples = round_robin({name: functools.partial(fn, z) for name, fn in levers.items()}, repeats)
    flops = generator_flops_per_frame(config) * frames
    rows = []
    for name, times in samples.items():
        seconds = float(np.median(times))
        peak = limit["bf16" if name.startswith("bf16") and "bf16" in limit else "fp32"]["flops_per_s"]
        rows.append(
            {
                "lever": name,
                "p50_ms": seconds * 1e3,
                "gflop_per_s": flops / seconds / 1e9,
                "peak_fraction": flops / seconds / peak,
                "max_abs_err_vs_eager": errors[name],
            }
        )
        logger.info(f"  lever {name}: {seconds * 1e3:.0f} ms ({100 * flops / seconds / peak:.0f}% of peak)")
    return {"frames": frames, "repeats": repeats, "rows": rows}
