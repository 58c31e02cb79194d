"""Batch job pieces that need no Ray: options, the npy writer, job.json and the index.
The command itself, through Ray: batch_cli_cases.py (run by test_serve_ray.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vidsynth.batch.job import BatchJob, fit_workers, worker_error
from vidsynth.batch.maker import NpyWriter
from vidsynth.batch.store import INDEX_NAME, job_differences, read_index, remove_job, write_job
from vidsynth.errors import InputError, StorageError, VidsynthError

JOB = BatchJob(out="x", count=3, seed=10, frames=8)
WANTED = {**JOB.parameters(), "model": {"name": "demo", "sha256": None}}


def line(index: int, **changes) -> str:
    record = {"id": index, "file": f"video_{index:06d}.mp4", "seed": 10 + index, "frames": 8}
    return json.dumps({**record, "category": None, "node": "n", **changes})


def test_npy_writer_fills_each_video_chunk_by_chunk(tmp_path):
    writer = NpyWriter(tmp_path, 2, 5, 8.0, 4)
    pixels = np.arange(2 * 5 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 5, 4, 4, 3)
    writer.append(0, 0, pixels[:, :3])
    writer.append(0, 3, pixels[:, 3:])
    writer.end_videos(0, 2)
    assert writer.finish() == ["video_000.npy", "video_001.npy"]
    assert np.array_equal(np.load(tmp_path / "video_001.npy"), pixels[1])


def test_a_batch_job_checks_its_options_before_any_work():
    with pytest.raises(InputError) as caught:
        BatchJob(out="x", count=0, format="gif", frames=0).validate()
    assert set(caught.value.fields) == {"count", "format"}
    with pytest.raises(InputError, match="frames"):
        BatchJob(out="x", count=1, frames=0).validate()
    assert BatchJob(out="x", count=2, seed=5).request(1).seed == 6


def test_workers_are_fitted_node_by_node_with_a_cpu_per_node_left_to_ray_data():
    def fit(nodes, **options):
        return fit_workers(BatchJob(out="x", count=1, **options), nodes)

    assert fit([2]) == 1  # one CPU stays with Ray Data
    assert fit([3, 3], cpus_per_worker=2) == 2
    assert fit([4, 4], cpus_per_worker=2) == 3  # 2 on one node, 1 on the other
    # 12 spare CPUs would take 4 workers of 3, but a node of 5 holds only one.
    assert fit([5, 5, 5], cpus_per_worker=3) == 3
    assert fit([2], cpus_per_worker=2) == 1  # a single worker may take a whole node
    with pytest.raises(InputError, match=r"--workers 4 .* nodes of 5, 5, 5 CPUs hold 3") as caught:
        fit([5, 5, 5], cpus_per_worker=3, workers=4)
    assert caught.value.fields == ("workers",)
    with pytest.raises(InputError, match="the largest Ray node has 3"):
        fit([3, 3], cpus_per_worker=4)


def test_the_index_counts_videos_whose_file_exists_and_drops_a_cut_last_line(tmp_path):
    (tmp_path / "video_000000.mp4").write_bytes(b"x")
    (tmp_path / INDEX_NAME).write_text("\n".join([line(0), line(1), '{"id": 2, "fi']))
    done, cut = read_index(tmp_path, WANTED)
    assert list(done) == [0] and cut


@pytest.mark.parametrize(
    "text, why",
    [
        (line(0, file=None), "file must be a file name"),
        (line(0).replace('"id": 0', '"id": Infinity'), "Infinity"),
        (line(0, id=True), "id must be"),
        (line(0, file="/etc/passwd"), "'/etc/passwd'"),
        (line(0, file="video_000000.npy"), "video_000000.npy"),
        (line(0, seed=11), "seed 11"),
        (line(0, frames=9), "frames 9"),
        ("[1, 2]", "not a JSON object"),
    ],
)
def test_a_line_this_job_did_not_write_refuses_the_index(tmp_path, text, why):
    (tmp_path / INDEX_NAME).write_text(text + "\n" + line(1) + "\n")
    with pytest.raises(InputError, match="line 1") as caught:
        read_index(tmp_path, WANTED)
    assert why in str(caught.value) and "--force" in str(caught.value)


def test_force_removes_only_what_the_job_wrote(tmp_path):
    for name in ("video_000000.mp4", "video_000001.mp4", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / INDEX_NAME).write_text(line(0) + "\n" + line(1, file="notes.txt") + "\n")
    write_job(tmp_path, WANTED)
    assert remove_job(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "video_000001.mp4"]


def test_every_differing_parameter_is_named():
    other = {**WANTED, "seed": 11, "format": "npy", "model": {"name": "w", "sha256": "ab" * 32}}
    differ = job_differences(WANTED, other)
    assert differ == [
        "the model demo (this run: w (sha256 abababababab...))",
        "--seed 10 (this run: 11)",
        "--format mp4 (this run: npy)",
    ]


def test_a_worker_error_known_only_from_its_traceback_keeps_its_type_and_message():
    # What Ray Data hands back when the worker's exception object was not kept: text only.
    wrapped = RuntimeError(
        "ray::MapWorker(MapBatches(VideoMaker)).submit()\n"
        '  File "maker.py", line 103, in _make\n'
        "vidsynth.errors.StorageError: no space left on the device while encoding video_000.mp4\n\n"
        "The above exception was the direct cause of the following exception:\n"
        "ray.exceptions.UserCodeException: UDF failed to process a data block."
    )
    found = worker_error(wrapped)
    assert type(found) is StorageError
    assert str(found) == "no space left on the device while encoding video_000.mp4"
    other = worker_error(RuntimeError("UDF failed\nValueError: bad block"))
    assert (
        type(other) is VidsynthError
        and str(other) == "a batch worker failed: RuntimeError: ValueError: bad block"
    )
