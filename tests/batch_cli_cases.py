"""`vidsynth batch` as users run it: the entry point in a subprocess, the CLI's defaults, Ray
sized by the CLI; what a job makes, resumes and refuses. Run by tests/test_serve_ray.py inside
`unshare -n`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from batch_support import (
    batch,
    index_of,
    leftovers,
    one_error,
    vidsynth,
)
from serve_support import require_netns

require_netns()

pytest_plugins = ["batch_support"]  # its fixtures: weights, and the clean-up after each test

# The default weights on torch's eager backend: a shared call changes a pixel of these videos.
EAGER = ("--backend", "eager", "--frames", "4")


def eager_batch(out: Path, *args: str) -> subprocess.CompletedProcess:
    return vidsynth("batch", "--out", str(out), *EAGER, *args)


@pytest.fixture(scope="module")
def eager_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """Two videos made together where the backend allows it."""
    out = tmp_path_factory.mktemp("eager") / "data"
    result = eager_batch(out, "--count", "2", "--videos-per-call", "2")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return out, result


@pytest.fixture(scope="module")
def eager_job(eager_run) -> Path:
    return eager_run[0]


def test_a_batch_video_is_the_file_generate_writes_on_a_torch_backend(eager_job, tmp_path):
    for i in range(2):
        out = tmp_path / str(i)
        made = vidsynth("generate", *EAGER, "--seed", str(i), "--num-videos", "1", "--out", str(out))
        assert made.returncode == 0, made.stderr[-2000:]
        alone = (out / "video_000.mp4").read_bytes()
        assert (eager_job / f"video_{i:06d}.mp4").read_bytes() == alone, f"video {i} differs"


def test_ray_logs_nothing_of_its_own(eager_run):
    out, result = eager_run
    lines = result.stderr.strip().splitlines()
    ray_lines = [line for line in lines if re.match(r"^\[?\d{4}-\d\d-\d\d", line) or "Warning" in line]
    assert ray_lines == [] and len(lines) <= 8, result.stderr[-3000:]
    assert [r["id"] for r in index_of(out)] == [0, 1] and leftovers(out) == []


def test_a_resumed_job_must_be_the_same_job(eager_job, weights, tmp_path):
    out = tmp_path / "data"
    shutil.copytree(eager_job, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    one_error(eager_batch(out, "--count", "3", "--seed", "5"), "--seed 0 (this run: 5)", "--force")
    one_error(
        eager_batch(out, "--count", "3", "--frames", "9", "--format", "npy"),
        "--frames 4 (this run: 9)",
        "--format mp4 (this run: npy)",
    )
    one_error(eager_batch(out, "--count", "3", "--weights", weights), "the model default")
    one_error(batch(out, "--count", "3", "--backend", "onnxruntime"), "--backend eager")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    (out / "notes.txt").write_text("mine")
    again = batch(
        out, "--count", "2", "--weights", weights, "--backend", "onnxruntime", "--seed", "5", "--force"
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "index.jsonl",
        "job.json",
        "notes.txt",
        "video_000000.mp4",
        "video_000001.mp4",
    ]
    assert [r["seed"] for r in index_of(out)] == [5, 6]
    assert json.loads((out / "job.json").read_text())["seed"] == 5


@pytest.mark.parametrize(
    "line, why",
    [
        ('{"id": Infinity, "file": "video_000000.mp4", "seed": 0, "frames": 4}', "line 1"),
        ({"id": 0, "file": "../outside.mp4", "seed": 0, "frames": 4}, "file '../outside.mp4'"),
    ],
)
def test_a_hostile_index_is_refused(eager_job, tmp_path, line, why):
    out = tmp_path / "data"
    shutil.copytree(eager_job, out)
    (tmp_path / "outside.mp4").write_bytes(b"not a video of this job")
    text = line if isinstance(line, str) else json.dumps(line)
    (out / "index.jsonl").write_text(text + "\n" + (out / "index.jsonl").read_text())
    one_error(eager_batch(out, "--count", "3"), "index.jsonl", why, "--force")


def test_bad_input_fails_in_the_driver_with_one_line(weights, tmp_path):
    one_error(batch(tmp_path / "a", "--count", "2", "--weights", "nope"), "nope")
    one_error(batch(tmp_path / "b", "--count", "2", "--weights", weights, "--category", "99"), "category")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    (tmp_path / "c" / "video_000001.mp4").mkdir(parents=True)
    one_error(batch(tmp_path / "c", "--count", "2", "--weights", weights), "video_000001.mp4", "directories")
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["video_000001.mp4"]
    result = batch(tmp_path / "d", "--count", "2", "--weights", weights, "--cpus-per-worker", "64")
    one_error(result, "--cpus-per-worker 64", "has 2")
    assert not (tmp_path / "d").exists()


def test_a_full_disk_keeps_only_indexed_videos(weights, small_tmpfs):
    out = small_tmpfs("disk", "96k") / "data"
    result = batch(out, "--count", "40", "--weights", weights, "--backend", "onnxruntime")
    one_error(result, "no space left")
    assert leftovers(out) == []
