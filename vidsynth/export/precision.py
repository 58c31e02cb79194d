"""Lower-precision exports: the image generator (nearly all of the compute) runs in fp16 or
bf16, while the motion recurrence and every input and output stay float32.

Keeping the recurrence in float32 keeps its error from compounding over long videos, and
keeps the artifacts' signature identical at every precision.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import Tensor, nn

from vidsynth.model.generator import VideoGenerator

TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
PIXEL_RANGE = 2.0  # videos live in [-1, 1]


class LowPrecisionImage(nn.Module):
    """Runs an image generator in `dtype`, taking and returning float32."""

    def __init__(self, image: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner = image.to(dtype)
        self.dtype = dtype

    def forward(self, z: Tensor) -> Tensor:
        return self.inner(z.to(self.dtype)).to(torch.float32)


def deployable_copy(model: VideoGenerator) -> VideoGenerator:
    """An eval-mode float32 CPU copy: exporting never changes the caller's model."""
    return copy.deepcopy(model).to(device="cpu", dtype=torch.float32).eval()


def with_precision(model: VideoGenerator, dtype: str) -> VideoGenerator:
    """A copy of `model` whose image generator computes in `dtype` ("fp32" returns a copy)."""
    lowered = deployable_copy(model)
    if dtype != "fp32":
        lowered.image = LowPrecisionImage(lowered.image, TORCH_DTYPES[dtype])
    return lowered


def psnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """Peak signal-to-noise ratio of `test` against `reference` over the [-1, 1] pixel range."""
    mse = float(np.mean((np.asarray(reference, np.float64) - np.asarray(test, np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(PIXEL_RANGE**2 / mse)
