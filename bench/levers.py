"""One lever at a time on the image generator (nearly all of the FLOPs), at one shape:
what each optimisation that vidsynth.optimize keeps, or leaves out, is worth on this machine."""
from __future__ import annotations

import copy
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidsynth.optimize import ChunkedImageGenerator, fold_image_generator

CL = torch.channels_last


class SubPixelConvTranspose(nn.Module):
    """ConvTranspose2d(kernel 4, stride 2, padding 1) as one 2x2 convolution producing the
    four output phases, then depth-to-space: the same sums, in another order."""

    def __init__(self, layer: nn.ConvTranspose2d) -> None:
        super().__init__()
        weight = layer.weight.detach()  # (in, out, 4, 4)
        taps = {0: [3, 1], 1: [2, 0]}  # output phase -> kernel taps over input rows (m-1, m) / (m, m+1)
        phases = [weight[:, :, taps[a], :][:, :, :, taps[b]].permute(1, 0, 2, 3) for a in (0, 1) for b in (0, 1)]
        self.register_buffer("weight", torch.cat(phases, 0).contiguous())
        self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().repeat(4))
        self.out_channels = layer.out_channels

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        y = F.conv2d(x, self.weight, self.bias, padding=1).view(n, 2, 2, self.out_channels, h + 1, w + 1)
        phases = [y[:, a, b, :, a : a + h, b : b + w] for a in (0, 1) for b in (0, 1)]
        out = torch.stack(phases, 0).view(2, 2, n, self.out_channels, h, w)
        return out.permute(2, 3, 4, 0, 5, 1).reshape(n, self.out_channels, 2 * h, 2 * w)


def sub_pixel(sequential: nn.Sequential) -> nn.Sequential:
    return nn.Sequential(*[
        SubPixelConvTranspose(m) if isinstance(m, nn.ConvTranspose2d) and m.stride == (2, 2) else m for m in sequential
    ])


def image_levers(model: Any) -> dict[str, Callable[[Tensor], Tensor]]:
    """name -> (N, nz, 1, 1) float32 -> (N, nc, H, W) images, each adding or trying one lever."""
    config = model.config
    eager = copy.deepcopy(model.image).eval()
    channels_last = copy.deepcopy(eager).to(memory_format=CL)
    folded = fold_image_generator(eager).to(memory_format=CL)
    frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(copy.deepcopy(eager))))
    sub = sub_pixel(fold_image_generator(eager)).to(memory_format=CL)
    chunked = ChunkedImageGenerator(eager, config, torch.float32, 32)
    chunked_bf16 = ChunkedImageGenerator(eager, config, torch.bfloat16, 32)
    whole_bf16 = ChunkedImageGenerator(eager, config, torch.bfloat16, 1 << 30)

    def autocast_bf16(z: Tensor) -> Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return eager(z).float()

    return {
        "eager fp32 (NCHW, as the reference)": eager,
        "+ channels-last": lambda z: channels_last(z.contiguous(memory_format=CL)).contiguous(),
        "+ batch norm folded into the convolutions": lambda z: folded(z.contiguous(memory_format=CL)).contiguous(),
        "+ 32-frame chunks (= optimized fp32)": chunked,
        "TorchScript freeze + optimize_for_inference": frozen,
        "sub-pixel rewrite (conv 2x2 + depth-to-space), folded, channels-last": lambda z: sub(z.contiguous(memory_format=CL)).contiguous(),
        "bf16 torch.autocast (eager)": autocast_bf16,
        "bf16 folded, channels-last, all frames at once": whole_bf16,
        "bf16 folded, channels-last, 32-frame chunks (= optimized bf16)": chunked_bf16,
    }
