"""The generation loop: noise -> batches of videos -> chunks of frames -> pixels -> writer.

Every video starts from the state backend.initial_state gives; each chunk continues from
the state the previous one returned, so a video made in chunks has the frames it would have
in one call. A video that fits in one chunk is made with one whole-video call. Torch-free.
"""
from __future__ import annotations

from vidsynth.noise import Noise
from vidsynth.runtime.backends.base import Backend
from vidsynth.runtime.memory import Plan
from vidsynth.runtime.progress import progress_bar
from vidsynth.runtime.quantize import to_uint8
from vidsynth.runtime.writers import VideoWriter

LONG_WORK_FRAMES = 2000  # streamed runs of at least this many frames show a progress bar


def noise_rows(noise: Noise, start: int, stop: int) -> Noise:
    category = None if noise.category is None else noise.category[start:stop]
    return Noise(noise.z_content[start:stop], noise.z_motion[start:stop], category)


def stream_videos(
    backend: Backend, noise: Noise, n_frames: int, plan: Plan, writer: VideoWriter, progress: bool = False
) -> None:
    n_videos = noise.z_content.shape[0]
    total = n_videos * n_frames
    bar = progress_bar(total, progress and plan.streaming and total >= LONG_WORK_FRAMES)
    try:
        for start in range(0, n_videos, plan.group_size):
            stop = min(n_videos, start + plan.group_size)
            rows = noise_rows(noise, start, stop)
            if not plan.streaming:
                writer.append(start, 0, to_uint8(backend.generate(rows, n_frames)))
            else:
                state = backend.initial_state(rows)
                for first in range(0, n_frames, plan.chunk_frames):
                    count = min(plan.chunk_frames, n_frames - first)
                    video, state = backend.generate_chunk(rows, state, count)
                    writer.append(start, first, to_uint8(video))
                    bar.update((stop - start) * count)
            writer.end_videos(start, stop)
    finally:
        bar.close()
