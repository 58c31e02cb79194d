"""`vidsynth batch` as users run it: the entry point in a subprocess, the CLI's defaults, Ray
sized by the CLI. Run by tests/test_serve_ray.py inside `unshare -n`."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from serve_support import REPO, alive, require_netns, small_weights

require_netns()

FRAMES = "8"
HANG_S = 900  # a command not ended by then hangs (generous: the machine may be shared and loaded)
TAG = "VIDSYNTH_TEST_RUN"  # in the environment of a run and of every process it starts
SESSION = str(os.getpid())  # tags of concurrent test sessions never match


def tagged(value: str) -> dict:
    return {**os.environ, TAG: f"{SESSION}-{value}"}


def processes_of(value: str) -> list[int]:
    """Live processes whose environment carries TAG=value (Ray's processes inherit it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"{TAG}={SESSION}-{value}".encode() in environ and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def vidsynth(*args: str, timeout: float = HANG_S, tag: str = "") -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "vidsynth", *args]
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=tagged(tag or "0")
    )


def batch(out: Path, *args: str, timeout: float = HANG_S) -> subprocess.CompletedProcess:
    return vidsynth("batch", "--out", str(out), "--frames", FRAMES, *args, timeout=timeout)


def one_error(result: subprocess.CompletedProcess, *phrases: str) -> str:
    """The run failed with exactly one `Error:` line holding every phrase, and no traceback."""
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert result.returncode == 1 and len(errors) == 1, output[-3000:]
    assert "Traceback" not in output and "ray.exceptions" not in output, output[-3000:]
    assert all(phrase in errors[0] for phrase in phrases), errors[0]
    return errors[0]


def index_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]


def leftovers(out: Path) -> list[str]:
    """Staging entries, and video files that no index line names."""
    if not out.exists():
        return []
    indexed = {record["file"] for record in index_of(out)} if (out / "index.jsonl").exists() else set()
    return sorted(
        p.name
        for p in out.iterdir()
        if p.name.startswith(".") or (p.name.startswith("video_") and p.name not in indexed)
    )


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    return small_weights(tmp_path_factory.mktemp("batch") / "weights")


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


def test_a_huge_count_streams_ids_generate_is_kept_out_and_sigterm_cleans_up(weights, tmp_path):
    out = tmp_path / "data"
    command = [sys.executable, "-m", "vidsynth", "batch", "--out", str(out), "--frames", FRAMES]
    command += ["--count", str(10**10), "--weights", weights, "--backend", "onnxruntime"]
    driver = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=tagged("huge")
    )
    try:
        deadline = time.monotonic() + HANG_S
        while not (out / "index.jsonl").is_file() or not (out / "index.jsonl").read_text():
            assert driver.poll() is None, driver.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "no video indexed"
            status = Path(f"/proc/{driver.pid}/status").read_text()
            rss_kib = int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
            assert rss_kib < 2 << 20, f"the driver holds {rss_kib >> 10} MiB before its first video"
            time.sleep(0.5)

        intruder = vidsynth("generate", "--weights", weights, "--num-videos", "1", "--out", str(out))
        one_error(intruder, "another vidsynth run is writing")
        staging = [p for p in out.iterdir() if p.name.startswith(".vidsynth-")]
        assert staging, "the batch's staging directory is gone"
        made = len(index_of(out))
        while len(index_of(out)) <= made + 2:
            assert driver.poll() is None and time.monotonic() < deadline, "the job stopped making videos"
            time.sleep(0.5)

        driver.send_signal(signal.SIGTERM)
        assert driver.wait(timeout=300) == 143, driver.stdout.read()[-3000:]
    finally:
        if driver.poll() is None:
            driver.kill()
    output = driver.stdout.read()
    assert "Traceback" not in output and "SIGTERM received" not in output, output[-3000:]
    assert leftovers(out) == []
    _all_gone("huge")


def _driver_with_a_video(out: Path, weights: str, tag: str) -> subprocess.Popen:
    """A `batch` run of 400 videos, once its first video is indexed."""
    command = [sys.executable, "-m", "vidsynth", "batch", "--out", str(out), "--frames", FRAMES]
    command += ["--count", "400", "--weights", weights, "--backend", "onnxruntime"]
    driver = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=tagged(tag)
    )
    deadline = time.monotonic() + HANG_S
    while not (out / "index.jsonl").is_file() or not (out / "index.jsonl").read_text():
        if driver.poll() is not None or time.monotonic() > deadline:
            driver.kill()
            pytest.fail(f"no video indexed: {driver.stdout.read()[-3000:]}")
        time.sleep(0.5)
    return driver


def test_ctrl_c_leaves_no_staging_and_no_ray(weights, tmp_path):
    out = tmp_path / "data"
    driver = _driver_with_a_video(out, weights, "ctrl-c")
    try:
        driver.send_signal(signal.SIGINT)
        assert driver.wait(timeout=300) != 0
    finally:
        if driver.poll() is None:
            driver.kill()
    assert leftovers(out) == []
    _all_gone("ctrl-c")


def test_a_killed_driver_leaves_no_ray(weights, tmp_path):
    # SIGKILL leaves the command no time to clean up; what its Ray instance ran must go anyway.
    driver = _driver_with_a_video(tmp_path / "data", weights, "kill")
    driver.kill()
    driver.wait()
    _all_gone("kill", within_s=15)


def test_sigterm_while_ray_starts(weights, tmp_path):
    out = tmp_path / "data"
    command = [sys.executable, "-m", "vidsynth", "batch", "--out", str(out), "--frames", FRAMES]
    command += ["--count", "4", "--weights", weights, "--backend", "onnxruntime"]
    driver = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=tagged("start")
    )
    try:
        line = driver.stderr.readline()  # messages go to stderr
        while line and "making 4" not in line:
            line = driver.stderr.readline()
        assert "making 4" in line, driver.stderr.read()[-3000:]
        time.sleep(2)  # into ray.init
        driver.send_signal(signal.SIGTERM)
        assert driver.wait(timeout=300) == 143
    finally:
        if driver.poll() is None:
            driver.kill()
    errors = driver.stderr.read()
    assert "SIGTERM received" not in errors and "Traceback" not in errors, errors[-3000:]
    assert not out.exists()  # the job made nothing, so it leaves nothing
    _all_gone("start")


def _all_gone(tag: str, within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    while processes_of(tag) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_of(tag) == [], "processes the run started are still running"


@pytest.fixture(autouse=True)
def _stop_what_a_failed_test_left():
    yield
    for tag in ("0", "huge", "ctrl-c", "kill", "start"):
        for pid in processes_of(tag):
            os.kill(pid, signal.SIGKILL)
