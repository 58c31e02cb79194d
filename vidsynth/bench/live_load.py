"""Live streams through `vidsynth serve` as users run it, on loopback:

    unshare -n sh -c 'ip link set lo up && python -m vidsynth.bench.live_load --out DIR'

(Ray 2.60 rewrites 127.0.0.1 to the host's address; a private network namespace keeps every
connection on loopback. Run as root.) Measures, in this order:
- offline: the served backend making 64-frame chunks of one stream with one thread, which
  predicts how many 8-fps streams `--replicas` replicas keep up with;
- time to first frame in Chromium (the page's Live mode) for a 16-frame, a 2,000-frame and an
  endless stream: from the click to the first frame the video element presents;
- N concurrent endless 8-fps streams for 60 s each, started evenly over one chunk's duration:
  a stream is real time when no frame arrives after its time (playback starting
  STARTUP_S after its first frame);
- a replica SIGKILLed mid-stream: the stream's bytes against `vidsynth generate --out -`,
  and how late its frames came;
- the server's RSS (all its processes) after 300 and after 3,000 streamed frames.
Writes results.json and the server's log (serve.log) into --out.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vidsynth.bench.measure import with_cpu_use
from vidsynth.bench.serve_load import Server
from vidsynth.runtime.hardware import probe_hardware

STARTUP_S = 0.25  # a player starts this long after the first frame (two frames at 8 fps)
FPS = 8.0


def machine() -> dict:
    hardware = probe_hardware()
    flags = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in hardware.cpu_flags]
    return {"cpu": hardware.cpu_model, "cpus": os.cpu_count(), "flags": flags}


def offline_chunk_fps(seconds: float = 8.0) -> dict:
    """Frames/s of the served backend (default weights, `--backend auto`) making 64-frame chunks
    of one stream on one thread (one replica's share)."""
    from vidsynth.model.noise import sample_noise
    from vidsynth.runtime.backend import open_backend
    from vidsynth.runtime.chunks import first_state, next_chunk
    from vidsynth.runtime.request import GenerateRequest
    from vidsynth.serve.model import limit_torch_threads

    runner = open_backend(GenerateRequest(backend="auto", device="cpu", threads=1))
    limit_torch_threads(1)
    noise = sample_noise(runner.config, 1, 0)
    state = first_state(runner.config, noise)
    next_chunk(runner, noise, state, 64)  # warm-up
    made, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        _, state = next_chunk(runner, noise, state, 64)
        made += 64
    rate = made / (time.perf_counter() - started)
    return {"backend": runner.name, "detail": runner.detail, "frames_per_s_one_thread": round(rate, 1)}


def watch(port: int, payload: dict, seconds: float, stop: threading.Event | None = None) -> dict:
    """Reads a stream; the arrival time of each frame (a complete mdat box), and its bytes."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    posted = time.monotonic()
    connection.request("POST", "/v1/streams", json.dumps(payload), {"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200, response.read()
    data, arrivals, parsed = bytearray(), [], 0
    while time.monotonic() - posted < seconds and not (stop and stop.is_set()):
        piece = response.read1(1 << 16)
        if not piece:
            break
        data.extend(piece)
        now = time.monotonic()
        while parsed + 8 <= len(data):
            size, kind = struct.unpack(">I4s", data[parsed : parsed + 8])
            if parsed + size > len(data):
                break
            parsed += size
            if kind == b"mdat":
                arrivals.append(now)
    connection.close()
    return {"posted": posted, "arrivals": arrivals, "bytes": bytes(data)}


def lateness(arrivals: list[float], fps: float) -> float:
    """How late the latest frame came against a player started STARTUP_S after the first."""
    start = arrivals[0] + STARTUP_S
    return max(0.0, max(t - (start + i / fps) for i, t in enumerate(arrivals)))


def first_frames_in_chromium(server: Server, repeats: int) -> dict:
    from playwright.sync_api import sync_playwright

    results: dict[str, list[float]] = {}
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"]
        )
        page = browser.new_page()
        page.goto(server.url + "/")
        page.wait_for_selector("#card dt:text('Backend')", timeout=120_000)
        page.fill("#fps", "8")
        for kind in ("16 frames", "2000 frames", "endless"):
            for _ in range(repeats):
                page.set_checked("#endless", kind == "endless")
                if kind != "endless":
                    page.fill("#frames", kind.split()[0])
                page.click("#live")
                page.wait_for_function(
                    "() => document.getElementById('live-stats').textContent.includes('first frame')",
                    timeout=60_000,
                )
                text = page.inner_text("#live-stats")
                results.setdefault(kind, []).append(float(text.split("first frame ")[1].split(" ms")[0]))
                page.wait_for_timeout(1000)
                if page.is_enabled("#stop"):  # a short stream may be over already
                    page.click("#stop")
                while server.get("/v1/streams")["active"]:
                    time.sleep(0.2)
        browser.close()
    return {kind: {"ms": values, "median_ms": statistics.median(values)} for kind, values in results.items()}


def concurrent(server: Server, streams: int, seconds: float, chunk_frames: int = 64) -> dict:
    """`streams` endless FPS streams read for `seconds`, started evenly over one chunk's duration."""

    def one(i: int) -> dict:
        time.sleep(i * chunk_frames / FPS / streams)
        return watch(server.port, {"seed": 1000 + i, "fps": FPS}, seconds)

    with ThreadPoolExecutor(streams) as pool:
        results, _, cpu_use = with_cpu_use(lambda: list(pool.map(one, range(streams))))
    late = [lateness(r["arrivals"], FPS) for r in results]
    return {
        "streams": streams,
        "real_time": sum(x == 0 for x in late),
        "worst_late_s": round(max(late), 3),
        "frames_each_min": min(len(r["arrivals"]) for r in results),
        "cpu_use": round(cpu_use, 3),
    }


def killed_replica(server: Server, frames: int = 480, fps: float = 24.0) -> dict:
    payload = {"seed": 77, "frames": frames, "fps": fps}
    got: dict = {}
    reader = threading.Thread(target=lambda: got.update(watch(server.port, payload, 600)))
    reader.start()
    time.sleep(6)
    before = server.get("/v1/streams")
    pid = int(before["last_replica"].rsplit("/", 1)[1])
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    reader.join()
    after = server.get("/v1/streams")
    command = [sys.executable, "-m", "vidsynth", "generate", "--out", "-", "--num-videos", "1"]
    command += ["--seed", "77", "--frames", str(frames), "--fps", str(fps)]
    reference = subprocess.run(command, capture_output=True, check=True).stdout
    arrivals = got["arrivals"]
    gaps_after = [b - a for a, b in zip(arrivals, arrivals[1:]) if b > killed_at]
    return {
        "frames": len(arrivals),
        "bytes_equal_generate_stdout": got["bytes"] == reference,
        "retries": after["retries"] - before["retries"],
        "late_s": round(lateness(arrivals, fps), 3),
        "longest_gap_after_kill_s": round(max(gaps_after), 3) if gaps_after else None,
        "killed_pid": pid,
    }


def rss_over_a_stream(server: Server) -> dict:
    stop = threading.Event()
    reader = threading.Thread(target=lambda: watch(server.port, {"seed": 5, "fps": 120}, 600, stop))
    base = server.get("/v1/streams")["frames_sent"]
    reader.start()
    marks = {}
    for mark in (300, 3000):
        while server.get("/v1/streams")["frames_sent"] - base < mark:
            time.sleep(0.2)
        sizes = server.rss_bytes()
        marks[mark] = {"total_mib": round(sum(sizes.values()) / 2**20, 1), "processes": sizes}
    stop.set()
    reader.join()
    return marks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--port", type=int, default=8371)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--cpus-per-replica", type=float, default=0.9)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--streams", type=int, nargs="*", help="concurrent streams to try [default: from offline]"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=["concurrent"], help="run only this part (after offline)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": machine(), "load_before": os.getloadavg()}
    results["offline"] = offline_chunk_fps()
    predicted = args.replicas * results["offline"]["frames_per_s_one_thread"] / FPS
    results["predicted_streams"] = round(predicted, 1)
    print(json.dumps(results), flush=True)
    options = ["--replicas", str(args.replicas), "--cpus-per-replica", str(args.cpus_per_replica)]
    server = Server(options + ["--port", str(args.port), "--max-streams", "200"], out / "serve.log")
    results["command"] = server.command
    try:
        if args.only == "concurrent":
            results["concurrent"] = [concurrent(server, n, args.seconds) for n in args.streams]
            return
        results["first_frame"] = first_frames_in_chromium(server, args.repeats)
        print(json.dumps(results["first_frame"]), flush=True)
        results["killed_replica"] = killed_replica(server)
        print(json.dumps(results["killed_replica"]), flush=True)
        results["rss"] = rss_over_a_stream(server)
        print(json.dumps({k: v["total_mib"] for k, v in results["rss"].items()}), flush=True)
        results["concurrent"] = []
        for n in args.streams or [max(1, int(0.8 * predicted)), max(1, int(predicted))]:
            results["concurrent"].append(concurrent(server, n, args.seconds))
            print(json.dumps(results["concurrent"][-1]), flush=True)
    finally:
        server.stop()
        results["load_after"] = os.getloadavg()
        (out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
