"""`generate_videos`: the one public function behind `vidsynth generate` and the server.
Torch is imported only by the torch backends."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vidsynth.model.noise import sample_noise
from vidsynth.runtime.backend import Notify, open_backend
from vidsynth.runtime.output import check_output_dir, staged_output
from vidsynth.runtime.plan import Plan, plan_generation
from vidsynth.runtime.request import GenerateRequest
from vidsynth.runtime.stream import check_channels, stream_videos
from vidsynth.runtime.writers import open_writer


@dataclass(frozen=True)
class GenerateResult:
    paths: list[Path]  # the files written, in order
    backend: str
    device: str
    detail: str  # library and provider that ran the model
    plan: Plan


def generate_videos(request: GenerateRequest, notify: Notify = lambda message: None) -> GenerateResult:
    """Makes request.num_videos videos of request.frames frames and writes them to
    request.out (video_000.mp4, ... or one sheet.png). Bad input raises a VidsynthError
    before anything is written; a failure part-way leaves no partial files."""
    request.validate()
    check_output_dir(request.out_path)
    backend = open_backend(request, notify)
    config = backend.config
    check_channels(config.nc)
    plan = plan_generation(
        config,
        request.num_videos,
        request.frames,
        request.format,
        request.chunk_frames,
        device_available=backend.device_memory_available(),
    )
    noise = sample_noise(config, request.num_videos, request.seed, request.fix, request.category)
    with staged_output(request.out_path) as (staging, names):
        writer = open_writer(
            request.format, staging, request.num_videos, request.frames, request.fps, config.image_size
        )
        try:
            stream_videos(backend, noise, request.frames, plan, writer, progress=request.progress)
            names.extend(writer.finish())
        except BaseException:
            writer.abort()
            raise
    paths = [request.out_path / name for name in names]
    return GenerateResult(paths, backend.name, backend.device, backend.detail, plan)
