"""Live streams as stateless chunks: each call takes a stream's noise rows and carried state as
numpy and returns the frames and the state after them, so any process holding the model can make
a stream's next chunk. Calls start where `generate`'s chunks start (frame 0, then every
`chunk_frames`), so a stream has `generate`'s frames bit for bit on every backend (a handover
elsewhere rounds differently in the exported graphs). The first chunk is sent early by shorter
calls from the same start (2, 8, 32 frames, ...), which make a few frames twice. Torch-free."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from vidsynth.artifacts.contract import initial_state
from vidsynth.model.config import ModelConfig
from vidsynth.model.noise import Noise, stack_noise
from vidsynth.runtime.backend import Backend, check_video_shape
from vidsynth.runtime.stream import to_uint8

FIRST_FRAMES = 2  # frames of the first call: the first frame leaves after a call this short
PREVIEW_GROWTH = 4  # each early call of the first chunk makes this many times the frames of the last


@dataclass(frozen=True)
class Piece:
    """One model call of a stream."""

    start: int  # the frame it starts from: 0 or a multiple of chunk_frames
    n_frames: int  # frames it makes from `start`
    skip: int  # how many of them an earlier call has sent already
    carries: bool  # its state is where the next call starts (False: an early call of the first chunk)

    @property
    def stop(self) -> int:
        return self.start + self.n_frames


def stream_pieces(total: int | None, chunk_frames: int, first_frames: int = FIRST_FRAMES) -> Iterator[Piece]:
    """The calls that make a stream of `total` frames (None: endless), in order."""
    start = 0
    while total is None or start < total:
        full = chunk_frames if total is None else min(chunk_frames, total - start)
        sent = start
        if start == 0:
            size = first_frames
            while size < full:
                yield Piece(0, size, sent, carries=False)
                sent, size = size, size * PREVIEW_GROWTH
        yield Piece(start, full, sent - start, carries=True)
        start += full


def first_state(config: ModelConfig, noise: Noise) -> np.ndarray:
    """The state every stream starts from (the artifact contract's initial state)."""
    return initial_state(noise.z_motion, config.state_size)


def next_chunk(
    backend: Backend, noise: Noise, state: np.ndarray, n_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """The next n_frames of the streams in `noise` (one row each) from their carried `state`:
    (frames (B, n_frames, H, W, 3) uint8, the state after them (B, state_size) float32)."""
    video, state_out = backend.generate_chunk(noise, backend.state_from_host(state), n_frames)
    check_video_shape(video, len(noise.z_content), n_frames, backend.config, backend.name)
    return to_uint8(video), backend.state_to_host(state_out)


def next_chunks(
    backend: Backend, calls: list[tuple[Noise, np.ndarray, int]], together: bool
) -> list[tuple[np.ndarray, np.ndarray]]:
    """next_chunk for several (noise, state, n_frames) calls, in order. With `together`, calls
    of the same length share one model call (only where the backend's batched results equal
    its single ones: runtime.sharing.shares_model_calls)."""
    groups: dict[object, list[int]] = {}
    for index, (_, _, n_frames) in enumerate(calls):
        groups.setdefault(n_frames if together else index, []).append(index)
    results: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(calls)
    for indices in groups.values():
        noise = stack_noise([calls[i][0] for i in indices])
        state = np.concatenate([calls[i][1] for i in indices])
        frames, state_out = next_chunk(backend, noise, state, calls[indices[0]][2])
        splits = np.cumsum([len(calls[i][0].z_content) for i in indices])[:-1]
        for i, frames_i, state_i in zip(indices, np.split(frames, splits), np.split(state_out, splits)):
            results[i] = (frames_i, state_i)
    return results  # type: ignore[return-value]


def stream_frames(
    backend: Backend, noise: Noise, total: int | None, chunk_frames: int
) -> Iterator[np.ndarray]:
    """The frames of the streams in `noise`, made in this process: (B, t, H, W, 3) uint8 per call."""
    state = first_state(backend.config, noise)
    for piece in stream_pieces(total, chunk_frames):
        frames, state_out = next_chunk(backend, noise, state, piece.n_frames)
        if piece.carries:
            state = state_out
        yield frames[:, piece.skip :]
