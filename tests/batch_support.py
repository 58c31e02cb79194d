"""Shared by the `vidsynth batch` scenario files (batch_cli_cases.py, batch_stop_cases.py), which
load it as a plugin for its fixtures: the entry point in a subprocess, the processes a run
started, what a job leaves in --out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from serve_support import REPO, alive, small_weights

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


def all_gone(tag: str, within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    while processes_of(tag) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_of(tag) == [], "processes the run started are still running"


@pytest.fixture(autouse=True)
def stop_what_a_failed_test_left():
    yield
    for tag in ("0", "huge", "ctrl-c", "kill", "start"):
        for pid in processes_of(tag):
            os.kill(pid, signal.SIGKILL)
