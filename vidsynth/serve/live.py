"""Live streams (`POST /v1/streams`): one video sent as a fragmented MP4 while it is made.

A stream is a sequence of stateless model calls (runtime/chunks.py): each call carries the
stream's noise and recurrent state to whichever replica takes it and brings the frames and the
next state back. So streams of the same chunk length share batched calls, and a call that fails
or times out is made again (once) elsewhere, with no frame missing or repeated.

A stream runs at most one chunk plus `lead_s` seconds of video ahead of the wall clock: Ray
Serve's proxy buffers what a replica sends without telling it whether the client reads, and a
chunk asked for a chunk early has a chunk's duration to be made. A client that goes away
cancels the stream's task. Ray-free, so it is tested without Ray.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

import numpy as np

from vidsynth.errors import InputError, VidsynthError
from vidsynth.model.config import ModelConfig
from vidsynth.model.noise import Noise, sample_noise
from vidsynth.runtime.chunks import first_state, stream_pieces
from vidsynth.runtime.ffmpeg import FragmentedMp4Encoder
from vidsynth.runtime.request import GenerateRequest
from vidsynth.serve.body import parse_body
from vidsynth.serve.options import LimitError, LiveLimits

logger = logging.getLogger(__name__)

RETRY_WAIT_S = 0.2  # before a failed call is made again: the router learns that a replica died


@dataclass(frozen=True)
class ChunkCall:
    """One model call of one stream: its noise row, the state it continues from, the frames."""

    noise: Noise
    state: np.ndarray  # (1, state_size) float32
    n_frames: int


@dataclass(frozen=True)
class ChunkResult:
    frames: np.ndarray  # (1, n_frames, H, W, 3) uint8
    state: np.ndarray  # (1, state_size) float32, the state after these frames
    replica: str = ""  # node id/pid of the replica that made it
    batch: int = 1  # calls that shared its model call


class StreamsBusy(VidsynthError):
    """Every stream slot is taken (HTTP 503)."""


class LiveStreams:
    """The ingress's streams: admission, and each stream's calls, pacing and encoding."""

    def __init__(self, limits: LiveLimits, call_model: Callable[[ChunkCall], Awaitable[ChunkResult]]) -> None:
        self.limits = limits.validate()
        self.call_model = call_model
        self.active = 0
        self.counts = {"streams": 0, "frames_sent": 0, "model_calls": 0, "retries": 0}
        self.last_replica = ""

    def stats(self) -> dict:
        return {
            "active": self.active,
            **self.counts,
            "last_replica": self.last_replica,
            "limits": vars(self.limits),
        }

    def open(self, raw: bytes, server: GenerateRequest, config: ModelConfig) -> Stream:
        """The stream a request body asks for. Raises BodyError (400), InputError (422),
        LimitError (413) or StreamsBusy (503)."""
        request = parse_body(raw, server)
        endless = "frames" not in json.loads(raw or b"{}")
        problems = {}
        if request.format != "mp4":
            problems["format"] = f"a stream is an mp4 video; got format {request.format!r}"
        if request.num_videos != 1:
            problems["num_videos"] = f"a stream is one video; got num_videos {request.num_videos}"
        if problems:
            raise InputError("; ".join(problems.values()), fields=list(problems))
        cap = self.limits.max_frames
        if cap is not None and not endless and request.frames > cap:
            raise LimitError(
                f"frames is {request.frames}; this server streams at most {cap} frames per stream",
                fields=["frames"],
            )
        total = cap if endless else request.frames
        noise = sample_noise(config, 1, request.seed, request.fix, request.category)
        if self.active >= self.limits.max_streams:
            raise StreamsBusy(
                f"the server is streaming {self.active} videos, its limit; "
                f"retry in {self.limits.retry_after_s} s"
            )
        return Stream(self, replace(request, frames=total or request.frames), total, noise, config)

    async def call(self, call: ChunkCall) -> ChunkResult:
        """One model call, made a second time if the first fails for any reason but bad input
        (a replica that died, a full queue): the call holds all the stream's state."""
        try:
            return await self._call_once(call)
        except VidsynthError:
            raise
        except Exception as exc:  # asyncio.TimeoutError included
            self.counts["retries"] += 1
            logger.warning("a stream's model call failed (%r); making it again", exc)
        await asyncio.sleep(RETRY_WAIT_S)
        return await self._call_once(call)

    async def _call_once(self, call: ChunkCall) -> ChunkResult:
        self.counts["model_calls"] += 1
        result = await asyncio.wait_for(self.call_model(call), self.limits.call_timeout_s)
        self.last_replica = result.replica
        return result


@dataclass(eq=False)
class Stream:
    """One admitted stream; holds a slot until its body ends or it is dropped unstarted."""

    owner: LiveStreams
    request: GenerateRequest
    total: int | None  # None: endless
    noise: Noise
    config: ModelConfig

    def __post_init__(self) -> None:
        self.owner.active += 1
        self.owner.counts["streams"] += 1
        self._release = weakref.finalize(self, _release, self.owner)

    @property
    def headers(self) -> dict[str, str]:
        return {
            "X-Vidsynth-Frames": "endless" if self.total is None else str(self.total),
            "X-Vidsynth-Fps": f"{self.request.fps:g}",
            "Cache-Control": "no-store",
        }

    async def body(self) -> AsyncIterator[bytes]:
        """The fragmented MP4, piece by piece."""
        encoder = FragmentedMp4Encoder(self.config.image_size, self.request.fps)
        finished = False
        try:
            state = first_state(self.config, self.noise)
            started = time.monotonic()
            limits = self.owner.limits
            ahead = self.request.chunk_frames / self.request.fps + limits.lead_s
            for piece in stream_pieces(self.total, self.request.chunk_frames, limits.first_frames):
                due = started + (piece.start + piece.skip) / self.request.fps - ahead
                if due > time.monotonic():
                    await asyncio.sleep(due - time.monotonic())
                result = await self.owner.call(ChunkCall(self.noise, state, piece.n_frames))
                if piece.carries:
                    state = result.state
                frames = result.frames[0, piece.skip :]
                data = await asyncio.to_thread(_encode, encoder, frames)
                self.owner.counts["frames_sent"] += len(frames)
                if data:
                    yield data
            finished = True
            yield await asyncio.to_thread(encoder.finish)
        finally:
            if not finished:
                await asyncio.to_thread(encoder.kill)
            self._release()


def _encode(encoder: FragmentedMp4Encoder, frames: np.ndarray) -> bytes:
    for frame in frames:
        encoder.send(frame)
    return encoder.take()


def _release(owner: LiveStreams) -> None:
    owner.active -= 1
