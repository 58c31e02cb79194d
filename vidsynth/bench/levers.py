"""One lever at a time on the image generator (nearly all of the FLOPs), at one shape:
what each optimisation that vidsynth.model.inference keeps, or leaves out, is worth on this machine."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from vidsynth.model.inference import ChunkedImageGenerator, SubPixelConvTranspose, fold_image_generator

CL = torch.channels_last


def sub_pixel(sequential: nn.Sequential) -> nn.Sequential:
    return nn.Sequential(
        *[
            SubPixelConvTranspose(m) if isinstance(m, nn.ConvTranspose2d) and m.stride == (2, 2) else m
            for m in sequential
        ]
    )


def image_levers(model: Any) -> dict[str, Callable[[Tensor], Tensor]]:
    """name -> (N, nz, 1, 1) float32 -> (N, nc, H, W) images, each adding or trying one lever."""
    config = model.config
    eager = copy.deepcopy(model.image).eval()
    channels_last = copy.deepcopy(eager).to(memory_format=CL)
    folded = fold_image_generator(eager).to(memory_format=CL)
    frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(copy.deepcopy(eager))))
    sub = sub_pixel(fold_image_generator(eager)).to(memory_format=CL)
    chunked = ChunkedImageGenerator(eager, config, torch.float32, 32, rewrite=False)
    rewritten = ChunkedImageGenerator(eager, config, torch.float32, 32)
    chunked_bf16 = ChunkedImageGenerator(eager, config, torch.bfloat16, 32)
    whole_bf16 = ChunkedImageGenerator(eager, config, torch.bfloat16, 1 << 30, rewrite=False)
    chunked_bf16_plain = ChunkedImageGenerator(eager, config, torch.bfloat16, 32, rewrite=False)

    def autocast_bf16(z: Tensor) -> Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return eager(z).float()

    return {
        "eager fp32 (NCHW, as the reference)": eager,
        "+ channels-last": lambda z: channels_last(z.contiguous(memory_format=CL)).contiguous(),
        "+ batch norm folded into the convolutions": lambda z: folded(
            z.contiguous(memory_format=CL)
        ).contiguous(),
        "+ 32-frame chunks": chunked,
        "+ first layer as a matmul, last as sub-pixel (= optimized fp32)": rewritten,
        "TorchScript freeze + optimize_for_inference": frozen,
        "sub-pixel rewrite of every stride-2 layer, folded, channels-last": lambda z: sub(
            z.contiguous(memory_format=CL)
        ).contiguous(),
        "bf16 torch.autocast (eager)": autocast_bf16,
        "bf16 folded, channels-last, all frames at once": whole_bf16,
        "bf16 folded, channels-last, 32-frame chunks": chunked_bf16_plain,
        "bf16 + first layer as a matmul (= optimized bf16)": chunked_bf16,
    }
