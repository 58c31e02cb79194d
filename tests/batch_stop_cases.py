"""`vidsynth batch` stopped as users stop it (SIGTERM, Ctrl-C, SIGKILL, a signal while Ray
starts): nothing staged and no Ray process is left. Run by tests/test_serve_ray.py inside
`unshare -n`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from batch_support import (
    FRAMES,
    HANG_S,
    all_gone,
    index_of,
    leftovers,
    one_error,
    tagged,
    vidsynth,
)
from serve_support import REPO, require_netns

require_netns()

pytest_plugins = ["batch_support"]  # its fixtures: weights, and the clean-up after each test


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
            rss = [line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")]
            if not rss:  # it has just exited: the next poll says how
                continue
            rss_kib = int(rss[0])
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
    all_gone("huge")


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
    all_gone("ctrl-c")


def test_a_killed_driver_leaves_no_ray(weights, tmp_path):
    # SIGKILL leaves the command no time to clean up; what its Ray instance ran must go anyway.
    driver = _driver_with_a_video(tmp_path / "data", weights, "kill")
    driver.kill()
    driver.wait()
    all_gone("kill", within_s=15)


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
    all_gone("start")
