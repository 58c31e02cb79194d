"""Live streams on a real Ray Serve app with two replicas, and the page's Live mode in
Chromium: run by tests/test_serve_ray.py inside `unshare -n`. One server for every case."""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import signal
import threading
import time
from types import SimpleNamespace

import pytest
from serve_support import http as request
from serve_support import require_netns, small_weights

require_netns()

from vidsynth.runtime.generate import generate_videos  # noqa: E402
from vidsynth.runtime.request import GenerateRequest  # noqa: E402
from vidsynth.serve.options import LiveLimits, ServeOptions  # noqa: E402

PORT = 8361
MAX_STREAMS = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import ray
    from ray import serve

    from vidsynth.cluster import start_ray
    from vidsynth.export import export_artifacts
    from vidsynth.serve.server import deploy

    root = tmp_path_factory.mktemp("live")
    artifacts = root / "artifacts"
    export_artifacts(small_weights(root / "weights"), artifacts, formats=("onnx",))
    model = GenerateRequest(artifacts=str(artifacts), backend="onnxruntime", device="cpu")
    options = ServeOptions(
        model=model, replicas=2, cpus_per_replica=0.5, live=LiveLimits(max_streams=MAX_STREAMS, lead_s=2.0)
    )
    start_ray(None)
    try:
        yield SimpleNamespace(url=deploy(options, "127.0.0.1", PORT), model=model)
    finally:
        serve.shutdown()
        ray.shutdown()


def stats(server) -> dict:
    status, _, body = request("GET", f"{server.url}/v1/streams")
    assert status == 200
    return json.loads(body)


def open_stream(payload: dict) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=120)
    connection.request("POST", "/v1/streams", json.dumps(payload), {"Content-Type": "application/json"})
    return connection, connection.getresponse()


def read_all(payload: dict, gaps: list[float] | None = None) -> bytes:
    connection, response = open_stream(payload)
    assert response.status == 200, response.read()
    assert response.getheader("Transfer-Encoding") == "chunked"
    data, last = [], time.monotonic()
    while piece := response.read1(1 << 16):
        now = time.monotonic()
        if gaps is not None:
            gaps.append(now - last)
        data.append(piece)
        last = now
    connection.close()
    return b"".join(data)


def stdout_bytes(server, **options) -> bytes:
    """What `vidsynth generate --out - --num-videos 1` writes for these options."""
    sink = io.BytesIO()
    generate_videos(
        GenerateRequest(**{**vars(server.model), "num_videos": 1, "out": "-", **options}), sink=sink
    )
    return sink.getvalue()


def wait_for(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_concurrent_streams_are_the_videos_generate_pipes(server):
    """Two streams at once (sharing model calls on onnxruntime): each is byte for byte the
    fragmented MP4 `generate --out -` writes, so its frames are generate's."""
    payloads = [
        {"seed": 11, "frames": 150, "fps": 100, "category": 1},
        {"seed": 12, "frames": 150, "fps": 100},
    ]
    got: dict[int, bytes] = {}
    threads = [threading.Thread(target=lambda i=i: got.update({i: read_all(payloads[i])})) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, payload in enumerate(payloads):
        assert got[i] == stdout_bytes(server, **payload), payload


def test_stream_limit_answers_503_and_a_disconnect_stops_generation(server):
    opened = [open_stream({"seed": s, "fps": 8}) for s in range(MAX_STREAMS)]  # endless
    for _, response in opened:
        assert response.status == 200 and response.getheader("X-Vidsynth-Frames") == "endless"
        assert response.read1(1 << 16)[4:8] == b"ftyp"
    status, headers, body = request("POST", f"{server.url}/v1/streams", b'{"seed": 9}')
    assert status == 503 and {k.lower(): v for k, v in headers.items()}["retry-after"] == "5"
    assert "limit" in json.loads(body)["error"]
    assert stats(server)["active"] == MAX_STREAMS
    for connection, response in opened:
        response.close()
        connection.close()
    connection, response = open_stream({"seed": 8, "fps": 1000})  # never waits for the clock
    while response.read1(1 << 16) and stats(server)["frames_sent"] < 1000:
        pass
    response.close()  # in the middle of a model call, most likely
    connection.close()
    wait_for(lambda: stats(server)["active"] == 0)
    calls = stats(server)["model_calls"]
    time.sleep(3)
    assert stats(server)["model_calls"] == calls  # nothing keeps running for a client that left


def test_a_replica_killed_mid_stream_costs_the_stream_nothing(server):
    payload = {"seed": 21, "frames": 500, "fps": 50}
    got, gaps = [], []
    reader = threading.Thread(target=lambda: got.append(read_all(payload, gaps)))
    reader.start()
    wait_for(lambda: stats(server)["frames_sent"] >= 150)  # two chunks out; the next waits for the clock
    pid = int(stats(server)["last_replica"].rsplit("/", 1)[1])
    os.kill(pid, signal.SIGKILL)
    reader.join(timeout=120)
    assert got, "the stream did not end"
    assert got[0] == stdout_bytes(server, **payload)
    after = {"seed": 22, "frames": 100, "fps": 1000}  # later streams, on whichever replicas are left
    assert read_all(after) == read_all(after) == stdout_bytes(server, **after)
    print(f"killed replica {pid}; retries {stats(server)['retries']}; longest gap {max(gaps):.2f} s")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_the_page_plays_a_live_stream_while_it_is_made(server):
    if CHROMIUM is None:
        pytest.skip("no chromium: apt-get install -y chromium")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(server.url + "/")
            page.wait_for_selector("#card dt:text('Backend')", timeout=60_000)
            assert page.locator("#category option").all_inner_texts()[1:] == ["0", "1"]  # no names: numbers
            page.fill("#frames", "2000")
            page.fill("#fps", "8")
            page.click("#live")
            page.wait_for_function("() => document.getElementById('video').currentTime > 0.2", timeout=60_000)
            first = page.evaluate("document.getElementById('video').currentTime")
            page.wait_for_timeout(1500)
            later = page.evaluate("document.getElementById('video').currentTime")
            assert later > first  # playing, not looping: the stream is 250 s long
            assert stats(server)["active"] == 1  # and the server is still making it
            assert "first frame" in page.inner_text("#live-stats")
            page.click("#stop")
            wait_for(lambda: stats(server)["active"] == 0)
        finally:
            browser.close()
