"""`vidsynth batch`: many videos across a Ray cluster into one directory, with an index.

Video i is made from seed `seed + i` exactly as `vidsynth generate --seed (seed + i)
--num-videos 1` makes it, so any clip of a dataset can be remade alone. The driver checks
everything it can before Ray starts (options, the model, the category, the output directory,
a resumed job's parameters and index), then holds the output lock for the whole run (the
lock `generate` takes), so no other vidsynth run writes into the directory meanwhile. Actors
(batch/maker.py) write finished files into the run's staging directory; the driver moves
each into place and then gives it its line in index.jsonl, so every video file in place is
indexed. A rerun skips the indexed videos (resumable); the staging directory is removed on
every exit, and by the next run after a kill."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from vidsynth import errors
from vidsynth.atomic import is_disk_full
from vidsynth.batch.store import (
    BATCH_FORMATS,
    INDEX_NAME,
    JOB_NAME,
    STAGING_PREFIX,
    check_targets,
    job_differences,
    read_index,
    read_job,
    remove_job,
    sweep_staging,
    write_index,
    write_job,
)
from vidsynth.checksums import sha256_file
from vidsynth.cluster import fitting, import_ray, import_ray_data, node_cpus, start_ray
from vidsynth.errors import InputError, StorageError, VidsynthError, choice_error
from vidsynth.runtime.request import GenerateRequest
from vidsynth.signals import sigterm_as_interrupt

__all__ = ["INDEX_NAME", "BatchJob", "run_batch"]
BLOCK_BYTES = 512
WORKER_START_S = 300
_RAISED_LINE = re.compile(r"^vidsynth\.errors\.(\w+): (.+)$", re.MULTILINE)
logger = logging.getLogger(__name__)


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
    videos_per_call: int = 8  # videos an actor makes per model call, where the backend allows
    cpus_per_worker: float = 1.0
    workers: int | None = None  # actors; None: as many as fit (fit_workers)

    def request(self, index: int) -> GenerateRequest:
        """The `generate` request that makes video `index` on its own."""
        return GenerateRequest(
            artifacts=self.model.artifacts,
            weights=self.model.weights,
            backend=self.model.backend,
            device=self.model.device,
            seed=self.seed + index,
            num_videos=1,
            frames=self.frames,
            fps=self.fps,
            format="mp4",  # npy holds the frames that mp4 encodes: both are planned as mp4
            category=self.category,
            threads=self.model.threads or max(1, round(self.cpus_per_worker)),
        )

    def validate(self) -> BatchJob:
        problems = {}
        if self.format not in BATCH_FORMATS:
            problems["format"] = str(choice_error(InputError, "format", self.format, BATCH_FORMATS))
        for name in ("count", "videos_per_call"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems[name] = f"{name.replace('_', '-')} must be a positive integer, got {value!r}"
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            problems["workers"] = f"workers must be a positive integer, got {self.workers!r}"
        if not self.cpus_per_worker > 0 or self.cpus_per_worker == float("inf"):
            problems["cpus_per_worker"] = (
                f"cpus-per-worker must be a finite number > 0, got {self.cpus_per_worker!r}"
            )
        if problems:
            raise InputError("; ".join(problems.values()), fields=list(problems))
        # Threads derived from --cpus-per-worker are the worker's, checked where it runs:
        # the driver's CPUs do not bound them.
        replace(self.request(0), threads=self.model.threads).validate()
        return self

    def parameters(self) -> dict[str, Any]:
        """What decides the bytes of every video: stored in job.json, compared on resume."""
        return {
            "model": model_identity(self.model),
            "backend": self.model.backend,
            "device": self.model.device,
            "seed": self.seed,
            "frames": self.frames,
            "fps": self.fps,
            "format": self.format,
            "category": self.category,
        }


def model_identity(model: GenerateRequest) -> dict[str, Any]:
    """The model by name and content: weights or artifacts moved elsewhere are the same model,
    other files under the same path are not."""
    if model.artifacts is not None:
        files = [Path(model.artifacts) / "manifest.json"]  # it holds the sha256 of every artifact
        name = str(model.artifacts)
    elif model.weights == "demo":
        return {"name": "demo", "sha256": None}
    else:
        from vidsynth.weights import DEFAULT_WEIGHTS_DIR

        default = model.weights in (None, "default")
        directory = DEFAULT_WEIGHTS_DIR if default else Path(model.weights)
        files = [directory / "model.safetensors", directory / "config.json"]
        name = "default" if default else str(model.weights)
    if not all(path.is_file() for path in files):
        return {"name": name, "sha256": None}  # no such model: check_model says why
    return {"name": name, "sha256": ",".join(sha256_file(path) for path in files)}


def check_model(job: BatchJob) -> None:
    """Opens the job's model here, on the CPU, before any worker starts: a missing or damaged
    model, a backend that cannot run it and a category it does not have fail as one error."""
    from vidsynth.export import export_weights
    from vidsynth.model.noise import sample_noise
    from vidsynth.runtime.backend import open_backend

    backend = open_backend(replace(job.request(0), device="cpu"), exporter=export_weights)
    sample_noise(backend.config, 1, job.seed, None, job.category)


def fit_workers(job: BatchJob, nodes: list[float]) -> int:
    """The number of workers for nodes of these CPU counts; fails at once where they cannot
    all be placed (Ray would wait for them for ever). A worker runs on one node, and as many
    CPUs as there are nodes stay free for Ray Data's read and write tasks: with every CPU taken
    by actors the job stalls."""
    per, total = job.cpus_per_worker, sum(nodes)
    if per > max(nodes, default=0):
        raise InputError(
            f"--cpus-per-worker {per:g} asks for {per:g} CPUs per worker; "
            f"the largest Ray node has {max(nodes, default=0):g} (the cluster {total:g})",
            fields=["cpus_per_worker"],
        )
    fit = max(1, min(fitting([total - len(nodes)], per), fitting(nodes, per)))
    workers = job.workers or fit
    if workers > fit:
        raise InputError(
            f"--workers {workers} x --cpus-per-worker {per:g} asks for {workers * per:g} CPUs; "
            f"nodes of {', '.join(f'{n:g}' for n in nodes)} CPUs hold {fit} such worker(s) "
            "(a worker runs on one node; a CPU per node stays free for Ray Data)",
            fields=["workers"],
        )
    return workers


def worker_error(exc: BaseException) -> VidsynthError | None:
    """The error a worker raised, out of Ray's wrappers: our own error as raised, a full disk
    as a StorageError, anything else named in one line. None for an interrupt."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        if isinstance(current, KeyboardInterrupt):
            return None
        if isinstance(current, VidsynthError):
            return current
        todo += [getattr(current, "cause", None), current.__cause__, current.__context__]
    if any(is_disk_full(s) for s in seen):
        return StorageError("no space left on the device while writing the videos")
    # Where Ray Data passed a worker's failure on as traceback text only (a UserCodeException
    # whose cause was not kept), our error is rebuilt from its last line.
    for name, message in (found for s in seen for found in _RAISED_LINE.findall(str(s))):
        error = getattr(errors, name, None)
        if isinstance(error, type) and issubclass(error, VidsynthError):
            return error(message)
    cause = seen[-1]
    lines = [line for line in str(cause).strip().splitlines() if line.strip()]
    return VidsynthError(
        f"a batch worker failed: {type(cause).__name__}: {lines[-1] if lines else ''}".rstrip()
    )


def _prepare(job: BatchJob, out: Path, force: bool) -> tuple[dict[int, dict], bool]:
    """Checks the directory against the job, then the model (under the lock); returns the
    finished videos and whether this run began the job (wrote its job.json)."""
    sweep_staging(out)
    wanted = job.parameters()
    if force:
        check_model(job)  # before anything is removed
        if removed := remove_job(out):
            logger.info("--force: removed the %d videos of the earlier job in %s", removed, out)
    stored = read_job(out)
    if stored is None and os.path.lexists(out / INDEX_NAME):
        raise InputError(
            f"{out} has an {INDEX_NAME} but no {JOB_NAME}: it holds no job this vidsynth can resume; "
            "choose another --out, or pass --force to start over"
        )
    if stored is not None and (differ := job_differences(stored, wanted)):
        raise InputError(
            f"{out} holds a batch job made with other parameters: {'; '.join(differ)}. Rerun with "
            "the job's parameters to resume it, choose another --out, or pass --force to start over"
        )
    done, cut = read_index(out, wanted)
    check_targets(out)
    if not force:
        check_model(job)
    if stored is None:
        write_job(out, wanted)
    if cut:
        write_index(out, done)  # drops the cut-off line before new lines are appended
    return done, stored is None


def run_batch(job: BatchJob, address: str | None = None, force: bool = False) -> dict[int, dict]:
    """Makes the videos of `job` not made yet; returns the index records of all of them.
    `force` first removes what an earlier job wrote into job.out (and only that)."""
    from vidsynth.runtime.output import check_output_dir, locked_directory

    job.validate()
    out = Path(job.out)
    check_output_dir(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    done: dict[int, dict] = {}
    began = False
    try:
        with locked_directory(out):
            done, began = _prepare(job, out, force)
            made_before = sum(1 for i in done if i < job.count)
            pending = job.count - made_before
            logger.info("%d of %d videos already in %s; making %d", made_before, job.count, out, pending)
            if pending:
                _make(job, out, done, pending, address)
            write_index(out, done)
    except BaseException as exc:
        if began and not done:  # a job that made nothing leaves nothing
            for name in (JOB_NAME, INDEX_NAME):
                (out / name).unlink(missing_ok=True)
        if created and not any(out.iterdir()):
            out.rmdir()
        if isinstance(exc, OSError) and is_disk_full(exc):
            raise StorageError(f"no space left on the device while writing into {out}") from None
        raise
    return done


def _make(job: BatchJob, out: Path, done: dict[int, dict], pending: int, address: str | None) -> None:
    ray = import_ray()
    data = import_ray_data()
    from vidsynth.batch.ids import PendingIds
    from vidsynth.batch.maker import VideoMaker

    started = not ray.is_initialized()
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=out))
    try:
        if started:
            start_ray(address)
        with sigterm_as_interrupt():  # ray.init installs its own SIGTERM handler
            workers = min(fit_workers(job, node_cpus()), -(-pending // job.videos_per_call))  # none idle
            logger.info("%d worker(s) x %g CPU", workers, job.cpus_per_worker)
            # Ray Data merges small blocks up to this size before handing them on: ids would
            # pile up by the million before the first call, and finished rows wait for the
            # rest of their block. Our blocks are a call's ids and its finished rows.
            context = data.DataContext.get_current()
            context.target_max_block_size = BLOCK_BYTES
            # Otherwise the first worker up takes every call while a farther node's worker still
            # imports torch, and a short job never runs on the workers it asked for.
            context.wait_for_min_actors_s = WORKER_START_S
            ids = PendingIds(
                job.count, np.fromiter(done, dtype=np.int64, count=len(done)), job.videos_per_call
            )
            rows = data.read_datasource(ids).map_batches(
                VideoMaker,
                fn_constructor_args=(job, str(staging)),
                batch_size=job.videos_per_call,
                batch_format="numpy",
                # One call in flight per worker: a worker that queued several would take calls
                # another worker could start at once (with a node's blocks preferring its own).
                compute=data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
                num_cpus=job.cpus_per_worker,
            )
            try:
                _collect(rows.iter_rows(), out, staging, done, pending)
            except (KeyboardInterrupt, VidsynthError):
                raise
            except Exception as exc:
                if isinstance(exc, OSError) and is_disk_full(exc):
                    raise StorageError(
                        f"no space left on the device while writing into {out}; "
                        f"the {len(done)} videos indexed are kept, rerun to resume"
                    ) from None
                error = worker_error(exc)
                if error is None:
                    raise
                raise error from None
    finally:
        # Ray first: a worker still making a video would write into the removed staging.
        if started:
            ray.shutdown()  # also what a start-up cut short had started
        shutil.rmtree(staging, ignore_errors=True)


def _collect(rows, out: Path, staging: Path, done: dict[int, dict], pending: int) -> None:
    """Moves each finished video into place, then appends its index line."""
    step = max(1, min(pending, 10**6) // 20)
    with open(out / INDEX_NAME, "a") as index:
        for made, row in enumerate(rows, start=1):
            record = _record(row)
            target = out / record["file"]
            try:
                os.replace(staging / record["file"], target)
            except IsADirectoryError:
                raise InputError(
                    f"{target} became a directory while the job ran; move it and rerun"
                ) from None
            try:
                index.write(json.dumps(record, sort_keys=True) + "\n")
                index.flush()
            except BaseException:
                target.unlink(missing_ok=True)  # no video in place without its line
                raise
            done[record["id"]] = record
            if made % step == 0 or made == pending:
                logger.info("%d/%d videos made", made, pending)


def _record(row: dict[str, Any]) -> dict[str, Any]:
    record = {key: (value.item() if hasattr(value, "item") else value) for key, value in row.items()}
    if record.get("category") == -1:
        record["category"] = None
    return record
