"""The Ray Data actor of a batch job: opens the backend once, then turns ids into finished
files in the job's staging directory, which the driver moves into place and indexes.

Video i is made from seed `seed + i` exactly as `vidsynth generate --seed (seed + i)
--num-videos 1` makes it. Several videos share a model call only where the backend gives each
the values it gets alone (runtime.sharing); elsewhere each video gets its own calls."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vidsynth.batch.store import file_name
from vidsynth.runtime.writers import WRITERS, VideoWriter, video_name

if TYPE_CHECKING:
    from vidsynth.batch.job import BatchJob


class NpyWriter(VideoWriter):
    """Each video as one .npy of uint8 frames (T, H, W, 3), filled chunk by chunk on disk."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._arrays: dict[int, np.ndarray] = {}

    def append(self, first_video: int, first_frame: int, pixels: np.ndarray) -> None:
        for offset, frames in enumerate(pixels):
            index = first_video + offset
            if index not in self._arrays:
                self._arrays[index] = np.lib.format.open_memmap(
                    self.directory / video_name(index, "npy"),
                    mode="w+",
                    dtype=np.uint8,
                    shape=(self.n_frames, self.size, self.size, 3),
                )
            self._arrays[index][first_frame : first_frame + len(frames)] = frames

    def end_videos(self, first_video: int, stop_video: int) -> None:
        for index in range(first_video, stop_video):
            self._arrays.pop(index).flush()
            self._names.append(video_name(index, "npy"))


class VideoMaker:
    """Turns a batch of ids into staging/video_{id:06d}.{format} files."""

    def __init__(self, job: BatchJob, staging: str) -> None:
        from vidsynth.export import export_weights
        from vidsynth.runtime.backend import open_backend
        from vidsynth.runtime.sharing import shares_model_calls

        self.job = job
        self.staging = Path(staging)
        self.backend = open_backend(job.request(0), exporter=export_weights)
        self.per_call = job.videos_per_call if shares_model_calls(self.backend) else 1

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        import ray

        ids = [int(i) for i in batch["id"]]
        categories = []
        for first in range(0, len(ids), self.per_call):
            categories += self._make(ids[first : first + self.per_call])
        node = ray.get_runtime_context().get_node_id()
        job = self.job
        return {
            "id": np.array(ids),
            "file": np.array([file_name(i, job.format) for i in ids]),
            "seed": np.array([job.seed + i for i in ids]),
            "category": np.array(categories),
            "frames": np.full(len(ids), job.frames),
            "node": np.array([node] * len(ids)),
        }

    def _make(self, ids: list[int]) -> list[int]:
        """Makes videos `ids` in one model call per chunk; their categories (-1: none)."""
        from vidsynth.model.noise import sample_noise, stack_noise
        from vidsynth.runtime.plan import plan_generation
        from vidsynth.runtime.stream import stream_videos

        job, config = self.job, self.backend.config
        noises = [sample_noise(config, 1, job.seed + i, None, job.category) for i in ids]
        call = Path(tempfile.mkdtemp(prefix="call-", dir=self.staging))
        try:
            writer_class = NpyWriter if job.format == "npy" else WRITERS[job.format]
            writer = writer_class(call, len(ids), job.frames, job.fps, config.image_size)
            like = job.request(0)  # npy is planned as mp4: both stream to disk
            plan = plan_generation(config, len(ids), job.frames, like.format, like.chunk_frames)
            try:
                stream_videos(self.backend, stack_noise(noises), job.frames, plan, writer)
                names = writer.finish()
            except BaseException:
                writer.abort()
                raise
            for name, index in zip(names, ids):
                os.replace(call / name, self.staging / file_name(index, job.format))
        finally:
            shutil.rmtree(call, ignore_errors=True)
        return [-1 if n.category is None else int(n.category[0]) for n in noises]
