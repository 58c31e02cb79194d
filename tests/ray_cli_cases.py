"""`vidsynth serve` as a user runs it: prints its URL, serves, and on SIGTERM exits 0 leaving
none of the processes it started. Run by tests/test_serve_ray.py inside `unshare -n`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from serve_support import REPO, post_json, require_netns, small_weights

require_netns()

PORT = 8361


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_serve_prints_its_url_serves_and_stops_cleanly_on_sigterm(tmp_path):
    weights = small_weights(tmp_path / "weights")
    command = [
        sys.executable,
        "-m",
        "vidsynth",
        "serve",
        "--weights",
        weights,
        "--backend",
        "onnxruntime",
        "--device",
        "cpu",
        "--port",
        str(PORT),
    ]
    server = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            assert line, "vidsynth serve exited early:\n" + "".join(lines)
            lines.append(line)
            if line.startswith("vidsynth serving "):
                break
        url = line.split()[2]
        assert url == f"http://127.0.0.1:{PORT}"
        status, headers, body = post_json(f"{url}/v1/videos", {"seed": 1, "frames": 8})
        assert status == 200 and headers["content-type"] == "video/mp4"
        started = descendants(server.pid)
        assert len(started) >= 3  # Ray's GCS, raylet, workers, ...
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=120) == 0, "".join(lines) + server.stdout.read()
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in started) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not [pid for pid in started if alive(pid)]
    finally:
        if server.poll() is None:
            server.kill()
