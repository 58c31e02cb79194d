"""`vidsynth batch`: many videos across a Ray cluster into one directory, with an index.

Video i is made from seed `seed + i` exactly as `vidsynth generate --seed (seed + i)
--num-videos 1` makes it, so any clip of a dataset can be remade alone. Each finished file is
renamed into place from a hidden staging directory and then gets its line in index.jsonl
({"file", "seed", "category", "frames", "node"}); a rerun skips the videos that have both
(resumable). Ray Data spreads the ids over actors, each holding one backend."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidsynth.errors import InputError
from vidsynth.runtime.request import GenerateRequest
from vidsynth.runtime.writers import VideoWriter, video_name

logger = logging.getLogger(__name__)
BATCH_FORMATS = ("mp4", "npy")
INDEX_NAME = "index.jsonl"


def file_name(index: int, fmt: str) -> str:
    return f"video_{index:06d}.{fmt}"


@dataclass(frozen=True)
class BatchJob:
    out: str  # directory of video_000000.mp4 ... and index.jsonl
    count: int  # videos in the dataset
    model: GenerateRequest = field(default_factory=GenerateRequest)  # weights/artifacts, backend, device
    seed: int = 0  # video i uses seed + i
    frames: int = 16
    fps: float = 8.0
    format: str = "mp4"  # mp4, or npy: (frames, H, W, 3) uint8
    category: int | None = None  # conditional models; None: drawn per video from its seed
    videos_per_call: int = 8  # videos an actor makes per model call
    cpus_per_worker: float = 1.0
    workers: int | None = None  # actors; None: the cluster's CPUs less one per node

    def request(self, index: int) -> GenerateRequest:
        """The `generate` request that makes video `index` on its own."""
        fmt = "mp4" if self.format == "npy" else self.format
        return GenerateRequest(
            artifacts=self.model.artifacts,
            weights=self.model.weights,
            backend=self.model.backend,
            device=self.model.device,
            seed=self.seed + index,
            num_videos=1,
            frames=self.frames,
            fps=self.fps,
            format=fmt,
            category=self.category,
            threads=self.model.threads or max(1, round(self.cpus_per_worker)),
        )

    def validate(self) -> BatchJob:
        problems = []
        if self.format not in BATCH_FORMATS:
            problems.append(
                ("format", f"unknown format {self.format!r}; expected one of: {', '.join(BATCH_FORMATS)}")
            )
        for name in ("count", "videos_per_call"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append((name, f"{name.replace('_', '-')} must be a positive integer, got {value!r}"))
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            problems.append(("workers", f"workers must be a positive integer, got {self.workers!r}"))
        if not self.cpus_per_worker > 0:
            problems.append(("cpus_per_worker", f"cpus-per-worker must be > 0, got {self.cpus_per_worker!r}"))
        if problems:
            raise InputError("; ".join(m for _, m in problems), fields=[f for f, _ in problems])
        self.request(0).validate()
        return self


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

    def finish(self) -> list[str]:
        for array in self._arrays.values():
            array.flush()
        return [video_name(index, "npy") for index in range(self.n_videos)]


class VideoMaker:
    """A Ray Data actor: opens the backend once, then turns batches of ids into files."""

    def __init__(self, job: BatchJob) -> None:
        from vidsynth.export import export_weights
        from vidsynth.runtime.backend import open_backend

        self.job = job
        self.backend = open_backend(job.request(0), exporter=export_weights)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        import ray

        from vidsynth.model.noise import sample_noise, stack_noise
        from vidsynth.runtime.plan import plan_generation
        from vidsynth.runtime.stream import stream_videos
        from vidsynth.runtime.writers import open_writer

        job, config = self.job, self.backend.config
        ids = [int(i) for i in batch["id"]]
        noises = [sample_noise(config, 1, job.seed + i, None, job.category) for i in ids]
        noise = stack_noise(noises)
        out = Path(job.out)
        staging = Path(tempfile.mkdtemp(prefix=".vidsynth-tmp-", dir=out))
        try:
            if job.format == "npy":
                writer = NpyWriter(staging, len(ids), job.frames, job.fps, config.image_size)
            else:
                writer = open_writer(job.format, staging, len(ids), job.frames, job.fps, config.image_size)
            like = job.request(0)  # npy is planned as mp4: both stream to disk
            plan = plan_generation(config, len(ids), job.frames, like.format, like.chunk_frames)
            try:
                stream_videos(self.backend, noise, job.frames, plan, writer)
                names = writer.finish()
            except BaseException:
                writer.abort()
                raise
            files = [file_name(i, job.format) for i in ids]
            for name, final in zip(names, files):
                os.replace(staging / name, out / final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        categories = [-1 if n.category is None else int(n.category[0]) for n in noises]
        node = ray.get_runtime_context().get_node_id()
        return {
            "id": np.array(ids),
            "file": np.array(files),
            "seed": np.array([job.seed + i for i in ids]),
            "category": np.array(categories),
            "frames": np.full(len(ids), job.frames),
            "node": np.array([node] * len(ids)),
        }


def read_index(out: Path) -> dict[int, dict]:
    """Finished videos: index lines whose file exists (a cut-off last line is ignored)."""
    done: dict[int, dict] = {}
    path = out / INDEX_NAME
    if not path.exists():
        return done
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
            index = int(record["id"])
        except (ValueError, KeyError, TypeError):
            continue
        if (out / record["file"]).is_file():
            done[index] = record
    return done


def _index_line(row: dict[str, Any]) -> str:
    record = {key: (value.item() if hasattr(value, "item") else value) for key, value in row.items()}
    if record.get("category") == -1:
        record["category"] = None
    return json.dumps(record, sort_keys=True)


def _default_workers(ray, cpus_per_worker: float) -> int:
    """The cluster's CPUs less one per node, for Ray Data's read and write tasks (with every
    CPU taken by actors the job stalls)."""
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    spare = sum(node["Resources"].get("CPU", 0) for node in nodes) - len(nodes)
    return max(1, int(spare // cpus_per_worker))


def run_batch(job: BatchJob, address: str | None = None) -> dict[int, dict]:
    """Makes the videos of `job` not made yet; returns the index records of all of them."""
    from vidsynth.cluster import import_ray, import_ray_data, start_ray
    from vidsynth.runtime.output import check_output_dir

    job.validate()
    out = Path(job.out)
    check_output_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    done = read_index(out)
    pending = [i for i in range(job.count) if i not in done]
    logger.info("%d of %d videos already in %s; making %d", len(done), job.count, out, len(pending))
    if pending:
        ray = import_ray()
        data = import_ray_data()
        started = not ray.is_initialized()
        if started:
            start_ray(address)
        try:
            workers = job.workers or _default_workers(ray, job.cpus_per_worker)
            rows = data.from_items([{"id": i} for i in pending]).map_batches(
                VideoMaker,
                fn_constructor_args=(job,),
                batch_size=job.videos_per_call,
                batch_format="numpy",
                concurrency=workers,
                num_cpus=job.cpus_per_worker,
                scheduling_strategy="SPREAD",  # every node
            )
            with open(out / INDEX_NAME, "a") as index:
                for made, row in enumerate(rows.iter_rows(), start=1):
                    index.write(_index_line(row) + "\n")
                    index.flush()
                    done[int(row["id"])] = json.loads(_index_line(row))
                    if made % max(1, len(pending) // 20) == 0 or made == len(pending):
                        logger.info("%d/%d videos made", made, len(pending))
        finally:
            if started:
                ray.shutdown()
    _rewrite_index(out, done)
    return done


def _rewrite_index(out: Path, done: dict[int, dict]) -> None:
    """The index in id order, written to a temporary file and renamed over the old one."""
    handle, temporary = tempfile.mkstemp(prefix=".index-", dir=out)
    with os.fdopen(handle, "w") as index:
        for i in sorted(done):
            index.write(json.dumps(done[i], sort_keys=True) + "\n")
    os.replace(temporary, out / INDEX_NAME)
