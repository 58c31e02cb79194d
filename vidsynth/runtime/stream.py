"""The generation loop: noise -> batches of videos -> chunks of frames -> pixels -> writer. Each
chunk continues from the state the previous one returned, so a video made in chunks has the
frames it would have in one call; a video that fits in one chunk is made in one call. Torch-free."""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from vidsynth.errors import InputError
from vidsynth.model.noise import Noise, noise_rows
from vidsynth.runtime.backend import Backend, check_video_shape
from vidsynth.runtime.plan import Plan
from vidsynth.runtime.writers import VideoWriter

LONG_WORK_FRAMES = 2000  # streamed runs of at least this many frames show a progress bar
WRITABLE_CHANNELS = (1, 3)


def check_channels(nc: int) -> None:
    if nc not in WRITABLE_CHANNELS:
        raise InputError(f"can write videos with 1 or 3 channels only; this model makes {nc}")


def to_uint8(video: np.ndarray) -> np.ndarray:
    """(..., nc, H, W) float in [-1, 1] -> (..., H, W, 3) uint8: round((x + 1) * 127.5) clipped
    to [0, 255] (multiplying by 255 without the shift, as some reference code does, wraps
    negative values around); grey (nc=1) becomes RGB."""
    check_channels(video.shape[-3])
    pixels = np.rint((np.asarray(video, dtype=np.float32) + 1.0) * 127.5)
    pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    pixels = np.moveaxis(pixels, -3, -1)  # channels last
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    return np.ascontiguousarray(pixels)


def stream_videos(
    backend: Backend, noise: Noise, n_frames: int, plan: Plan, writer: VideoWriter, progress: bool = False
) -> None:
    n_videos = noise.z_content.shape[0]
    total = n_videos * n_frames
    show = progress and ((plan.streaming and total >= LONG_WORK_FRAMES) or backend.slow)
    with tqdm(total=total, unit="frame", desc="frames", dynamic_ncols=True, disable=not show) as bar:
        for start in range(0, n_videos, plan.group_size):
            stop = min(n_videos, start + plan.group_size)
            rows = noise_rows(noise, start, stop)
            state = backend.initial_state(rows) if plan.streaming else None
            for first in range(0, n_frames, plan.chunk_frames):  # one call when not streaming
                count = min(plan.chunk_frames, n_frames - first)
                if plan.streaming:
                    video, state = backend.generate_chunk(rows, state, count)
                else:
                    video = backend.generate(rows, count)
                check_video_shape(video, stop - start, count, backend.config, backend.name)
                writer.append(start, first, to_uint8(video))
                bar.update((stop - start) * count)
            writer.end_videos(start, stop)
