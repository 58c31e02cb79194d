"""`generate_videos`: the one public function behind `vidsynth generate` and the server.
Torch is imported only by the torch backends."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from vidsynth.errors import StorageError
from vidsynth.model.noise import Noise, sample_noise
from vidsynth.runtime.backend import Backend, Exporter, open_backend
from vidsynth.runtime.output import check_output_dir, staged_output
from vidsynth.runtime.plan import Plan, plan_generation
from vidsynth.runtime.request import STDOUT, GenerateRequest
from vidsynth.runtime.stream import check_channels, stream_videos
from vidsynth.runtime.writers import WRITERS, Mp4StreamWriter, VideoWriter


@dataclass(frozen=True)
class GenerateResult:
    paths: list[Path]  # the files written, in order
    backend: str
    device: str
    detail: str  # library and provider that ran the model
    plan: Plan


def plan_on(backend: Backend, n_videos: int, n_frames: int, fmt: str, chunk_frames: int) -> Plan:
    """The memory plan for `backend`'s model, against the memory of the device it runs on."""
    available = backend.device_memory_available()
    return plan_generation(backend.config, n_videos, n_frames, fmt, chunk_frames, device_available=available)


def generate_videos(
    request: GenerateRequest, exporter: Exporter | None = None, sink: BinaryIO | None = None
) -> GenerateResult:
    """Makes the request's videos and writes them to request.out (video_000.mp4, ... or one
    sheet.png); with out "-", the one video goes to `sink` (stdout) as a fragmented MP4 while it
    is made. Bad input raises a VidsynthError before anything is written; a failure part-way
    leaves no partial files. `exporter` (vidsynth.export.export_weights): see open_backend."""
    request.validate()
    directory = Path(request.out)
    if request.out != STDOUT:
        check_output_dir(directory)
    backend = open_backend(request, exporter)
    config = backend.config
    check_channels(config.nc)
    plan = plan_on(backend, request.num_videos, request.frames, request.format, request.chunk_frames)
    noise = sample_noise(config, request.num_videos, request.seed, request.fix, request.category)
    if request.out == STDOUT:
        out = sys.stdout.buffer if sink is None else sink
        writer = Mp4StreamWriter(out, request.frames, request.fps, config.image_size)
        try:
            _write(backend, noise, request, plan, writer)
        except BrokenPipeError:
            raise StorageError("the reader of the video on stdout closed it before the end") from None
        return GenerateResult([], backend.name, backend.device, backend.detail, plan)
    with staged_output(directory) as (staging, names):
        writer = WRITERS[request.format](
            staging, request.num_videos, request.frames, request.fps, config.image_size
        )
        names.extend(_write(backend, noise, request, plan, writer))
    paths = [directory / name for name in names]
    return GenerateResult(paths, backend.name, backend.device, backend.detail, plan)


def _write(
    backend: Backend, noise: Noise, request: GenerateRequest, plan: Plan, writer: VideoWriter
) -> list[str]:
    """Makes the videos into `writer`; the names of the files it made. A failure aborts it."""
    try:
        stream_videos(backend, noise, request.frames, plan, writer, progress=request.progress)
        return writer.finish()
    except BaseException:
        writer.abort()
        raise
