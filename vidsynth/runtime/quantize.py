"""Generator output to pixels: tanh range [-1, 1] -> uint8 [0, 255].

x -> round((x + 1) * 127.5), clipped to [0, 255]. (Multiplying by 255 without the shift, as
some reference code does, wraps negative values around.) Torch-free.
"""
from __future__ import annotations

import numpy as np

from vidsynth.errors import InputError

WRITABLE_CHANNELS = (1, 3)


def check_channels(nc: int) -> None:
    if nc not in WRITABLE_CHANNELS:
        raise InputError(f"can write videos with 1 or 3 channels only; this model makes {nc}")


def to_uint8(video: np.ndarray) -> np.ndarray:
    """(..., nc, H, W) float in [-1, 1] -> (..., H, W, 3) uint8; grey (nc=1) becomes RGB."""
    check_channels(video.shape[-3])
    pixels = np.rint((np.asarray(video, dtype=np.float32) + 1.0) * 127.5)
    pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    pixels = np.moveaxis(pixels, -3, -1)  # channels last
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    return np.ascontiguousarray(pixels)
