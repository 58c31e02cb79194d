"""Requests to finished files, several requests per model call.

Requests that ask for the same number of frames share model calls: their noise codes (each
drawn from its own request's seed, exactly as `vidsynth generate` draws them) are stacked
into one batch, the runtime's stream_videos makes the frames chunk by chunk with the state
carried, and a FanOutWriter hands each request's rows to that request's own writer, which
encodes into a temporary directory. A render whose requests have all been given up (each one's
`gone` event set: its caller timed out) stops at the next chunk or video, before encoding. Torch-free."""

from __future__ import annotations

import tempfile
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np

from vidsynth.errors import InputError, VidsynthError
from vidsynth.model.noise import Noise, sample_noise, stack_noise
from vidsynth.runtime.backend import Backend
from vidsynth.runtime.generate import plan_on
from vidsynth.runtime.request import GenerateRequest
from vidsynth.runtime.stream import stream_videos
from vidsynth.runtime.writers import WRITERS, VideoWriter
from vidsynth.serve.body import Rendered, package

Outcome = Rendered | VidsynthError


class Abandoned(VidsynthError):
    """Every request of a render was given up, so its work stopped."""


class FanOutWriter(VideoWriter):
    """Looks like one writer to stream_videos; writes each request's rows to its own writer,
    which the caller finishes."""

    def __init__(self, writers: list[VideoWriter], gone: list[threading.Event]) -> None:
        self.writers = writers
        self.gone = gone
        self.offsets = np.cumsum([0] + [w.n_videos for w in writers]).tolist()

    def _parts(self, start: int, stop: int):
        """(writer, row offset of that writer, first row, stop row) overlapping [start, stop)."""
        if all(event.is_set() for event in self.gone):
            raise Abandoned("every request of this render was given up")
        for writer, offset, end in zip(self.writers, self.offsets, self.offsets[1:]):
            lo, hi = max(start, offset), min(stop, end)
            if lo < hi:
                yield writer, offset, lo, hi

    def append(self, first_video: int, first_frame: int, pixels: np.ndarray) -> None:
        for writer, offset, lo, hi in self._parts(first_video, first_video + len(pixels)):
            writer.append(lo - offset, first_frame, pixels[lo - first_video : hi - first_video])

    def end_videos(self, first_video: int, stop_video: int) -> None:
        for writer, offset, lo, hi in self._parts(first_video, stop_video):
            writer.end_videos(lo - offset, hi - offset)

    def abort(self) -> None:
        for writer in self.writers:
            writer.abort()


def prepare(backend: Backend, request: GenerateRequest) -> Noise:
    """The request's noise, after the checks that need the model (category, memory)."""
    noise = sample_noise(backend.config, request.num_videos, request.seed, request.fix, request.category)
    try:
        plan_on(backend, request.num_videos, request.frames, request.format, request.chunk_frames)
    except InputError as exc:
        raise InputError(str(exc), fields=["frames", "num_videos"]) from None
    return noise


def _render_together(
    backend: Backend, requests: list[GenerateRequest], noises: list[Noise], gone: list[threading.Event]
) -> list[Rendered]:
    first = requests[0]
    noise = stack_noise(noises)
    # A lone request is planned as `generate` plans it; a shared batch keeps mp4's bound on
    # open encoders whatever its formats.
    fmt = first.format if len(requests) == 1 else "mp4"
    plan = plan_on(backend, len(noise.z_content), first.frames, fmt, first.chunk_frames)
    size = backend.config.image_size
    with tempfile.TemporaryDirectory(prefix="vidsynth-serve-") as tmp:
        writers = [
            WRITERS[r.format](Path(tempfile.mkdtemp(dir=tmp)), r.num_videos, r.frames, r.fps, size)
            for r in requests
        ]
        fan_out = FanOutWriter(writers, gone)
        try:
            stream_videos(backend, noise, first.frames, plan, fan_out)
        except BaseException:
            fan_out.abort()
            raise
        made = [package({name: (w.directory / name).read_bytes() for name in w.finish()}) for w in writers]
    return [replace(rendered, batch=len(made)) for rendered in made]  # X-Vidsynth-Batch


def render_requests(
    backend: Backend,
    requests: list[GenerateRequest],
    share_calls: bool = True,
    gone: list[threading.Event] | None = None,
) -> list[Outcome]:
    """Outcomes in the order of `requests`; a request whose input is bad gets its error. With
    share_calls, requests of the same frames and chunk size share model calls; without, each
    is made as `vidsynth generate` would make it. `gone[i]` is set when request i is given up."""
    gone = gone or [threading.Event() for _ in requests]
    outcomes: dict[int, Outcome] = {}
    groups: dict[object, dict[int, Noise]] = {}
    for index, request in enumerate(requests):
        try:
            noise = prepare(backend, request)
        except VidsynthError as exc:
            outcomes[index] = exc
            continue
        key = (request.frames, request.chunk_frames) if share_calls else index
        groups.setdefault(key, {})[index] = noise
    for noises in groups.values():
        try:
            made = _render_together(
                backend, [requests[i] for i in noises], list(noises.values()), [gone[i] for i in noises]
            )
        except Abandoned as exc:
            made = [exc] * len(noises)
        outcomes.update(zip(noises, made))
    return [outcomes[i] for i in range(len(requests))]
