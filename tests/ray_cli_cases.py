"""`vidsynth serve` as a user runs it: the installed entry point in a subprocess, Ray sized by
the command itself (no num_cpus given by a test). One server, started with the default weights
and `--replicas 2` on this machine, answers most cases, the web page in a real browser among
them (Debian's chromium, headless, driven by playwright); the rest check what fails before Ray
starts and how the command stops. Run by tests/test_serve_ray.py inside `unshare -n`.
The page's screenshot goes to a temporary directory, or to $VIDSYNTH_PAGE_SCREENSHOT
(docs/serve-page.png was made with VIDSYNTH_PAGE_SCREENSHOT=docs/serve-page.png)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from serve_support import (
    REPO,
    Serve,
    command_line,
    descendants,
    http,
    post_json,
    require_netns,
    small_weights,
    vidsynth,
)

require_netns()

PORT = 8361  # the shared server
PORT_DEFAULTS = 8362
CPUS = len(os.sched_getaffinity(0))
OURS = ("vidsynth serving ", "starting ", "stopping")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    return small_weights(tmp_path_factory.mktemp("cli") / "weights")


@pytest.fixture(scope="module")
def server():
    """`vidsynth serve --replicas 2` as docs/serving.md recommends for this machine."""
    serve = Serve("--backend", "onnxruntime", "--replicas", "2", "--port", str(PORT))
    try:
        serve.url = serve.wait_for("vidsynth serving ").split()[2]
        yield serve
    finally:
        serve.kill()


def test_two_replicas_on_this_machine_become_ready_and_serve_a_video(server):
    assert server.url == f"http://127.0.0.1:{PORT}"
    assert server.wait_for("starting ") == "starting 2 replica(s) x 1 CPU"
    status, headers, body = post_json(f"{server.url}/v1/videos", {"seed": 1, "frames": 16})
    assert status == 200, body[:300]
    assert headers["content-type"] == "video/mp4" and b"ftyp" in body[:16]


def test_the_model_card_names_the_weights_without_the_servers_paths(server):
    import vidsynth

    status, _, body = http("GET", f"{server.url}/v1/model")
    assert status == 200
    card = json.loads(body)
    assert card["weights"] == "default" and card["replicas"] == 2
    assert str(Path(vidsynth.__file__).parent) not in body.decode()


def test_the_page_plays_a_generated_video(server, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium: apt-get install -y chromium")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    screenshot = REPO / os.environ.get("VIDSYNTH_PAGE_SCREENSHOT", str(tmp_path / "serve-page.png"))
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 640})
            page.goto(server.url + "/")
            page.wait_for_selector("#card dt:text('Training data')", timeout=60_000)
            assert "jumping jack (2)" in page.inner_text("#category")  # the config's category names
            page.select_option("#category", "2")
            page.fill("#seed", "7")
            page.fill("#frames", "32")
            page.click("#generate")
            page.wait_for_function(
                "() => { const v = document.getElementById('video'); "
                "return v.readyState >= 2 && v.videoWidth > 0; }",
                timeout=120_000,
            )
            first = page.evaluate("document.getElementById('video').currentTime")
            page.wait_for_timeout(1500)
            later = page.evaluate("document.getElementById('video').currentTime")
            assert later != first  # playing (it loops, so compare, not order)
            assert page.evaluate("document.getElementById('video').videoWidth") == 64
            page.wait_for_function(
                "() => document.getElementById('sheet').naturalWidth === 32 * 64", timeout=60_000
            )
            assert "32 frames" in page.inner_text("#status")
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 10_000
        finally:
            browser.close()


def test_the_batch_header_counts_only_the_requests_made_together(server):
    """One good request among many refused by the replica (category out of range): it was
    made alone, whatever the refused ones shared its batch."""
    for round in range(3):
        bodies = [{"seed": round, "frames": 8}] + [{"seed": i, "frames": 8, "category": 7} for i in range(12)]
        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(lambda b: post_json(f"{server.url}/v1/videos", b), bodies))
        assert [status for status, _, _ in answers] == [200] + [422] * 12
        assert answers[0][1]["x-vidsynth-batch"] == "1"


def raw_request(length_header: bytes, body: bytes, timeout_s: float = 60) -> tuple[int, dict]:
    """POSTs `body` after `length_header` (a Content-Length or a chunked Transfer-Encoding that
    never ends) and reads the answer: (status, its JSON body). The server may answer and close
    before it has read all that was sent."""
    with socket.create_connection(("127.0.0.1", PORT), timeout=timeout_s) as connection:
        try:
            connection.sendall(
                b"POST /v1/videos HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + length_header
                + b"\r\n\r\n"
                + body
            )
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < content_length(answer):
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), answer[:500]
    return int(head.split()[1]), json.loads(payload)


def content_length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


def test_a_64_mib_body_gets_413(server):
    """Refused by its declared length, and by what arrives when no length is declared."""
    status, error = raw_request(b"Content-Length: %d" % (64 << 20), b'{"seed": 1, "pad": "xxxx')
    assert status == 413 and "bytes" in error["error"]
    pad = b'{"seed": 1, "pad": "' + b"x" * (80 << 10)
    status, error = raw_request(b"Transfer-Encoding: chunked", b"%x\r\n" % len(pad) + pad + b"\r\n")
    assert status == 413 and "bytes" in error["error"]


@pytest.mark.parametrize(
    "raw",
    [b'{"seed": ' + b"9" * 5000 + b"}", b"[" * 100_000 + b"]" * 100_000, b"[" * 30_000],
    ids=["5000-digit-integer", "100k-deep-array", "30k-deep-unclosed"],
)
def test_a_huge_number_or_deep_nesting_gets_a_4xx_json_error(server, raw):
    status, headers, body = http("POST", f"{server.url}/v1/videos", raw)
    assert 400 <= status < 500, body[:300]
    assert headers["content-type"] == "application/json" and json.loads(body)["error"]


def test_slow_partial_bodies_do_not_starve_the_server(server):
    connections = []
    try:
        for _ in range(170):
            connection = socket.create_connection(("127.0.0.1", PORT), timeout=60)
            connection.sendall(
                b"POST /v1/videos HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100\r\n\r\n{"seed": '
            )
            connections.append(connection)
        status, _, body = http("GET", f"{server.url}/healthz", timeout=30)
        assert status == 200, body[:300]
        status, _, body = post_json(f"{server.url}/v1/videos", {"seed": 3, "frames": 8})
        assert status in (200, 503), body[:300]
    finally:
        for connection in connections:
            connection.close()
    assert http("GET", f"{server.url}/healthz", timeout=30)[0] == 200


def test_ctrl_c_stops_it_cleanly_and_ray_stays_quiet(server):
    assert server.stop(signal.SIGINT, group=True) == 0
    assert server.lines[-1] == "stopping"
    # In this namespace Ray's C++ start-up warns once that it has no external network.
    others = [line for line in server.lines if not line.startswith(OURS) and "network_util.cc" not in line]
    assert not others, server.output()


def test_default_replicas_fit_the_cpus_and_sigterm_stops_it_while_deploying(weights):
    serve = Serve("--weights", weights, "--backend", "onnxruntime", "--port", str(PORT_DEFAULTS))
    try:
        line = serve.wait_for("starting ")
        assert line.startswith(f"starting {CPUS} replica(s) x 1 CPU (as many as fit {CPUS} CPUs")
        deadline = time.monotonic() + 300
        while not any("ServeReplica" in command_line(pid) for pid in descendants(serve.process.pid)):
            assert time.monotonic() < deadline, serve.output()
            time.sleep(0.2)
        assert not [line for line in serve.lines if line.startswith("vidsynth serving")]
        assert serve.stop(signal.SIGTERM, group=False) == 0
        assert serve.lines[-1] == "stopping"
    finally:
        serve.kill()


@pytest.fixture(scope="module")
def tampered(tmp_path_factory, weights) -> str:
    from vidsynth.export import export_artifacts
    from vidsynth.weights import load_model

    directory = tmp_path_factory.mktemp("tampered") / "art"
    export_artifacts(load_model(weights), directory, formats=("onnx",))
    graph = directory / "generator.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    return str(directory)


@pytest.fixture
def busy_port():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def refused(*args: str) -> list[str]:
    """The output lines of a `vidsynth serve` that must fail before starting Ray."""
    try:
        result = subprocess.run(
            vidsynth("serve", *args), cwd=REPO, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"vidsynth serve {' '.join(args)} still running after 120 s: {exc.stderr}"
        ) from None
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output and "Started a local Ray" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    return errors


def test_unknown_weights_fail_before_deploying():
    (error,) = refused("--weights", "nope")
    assert "nope" in error


def test_a_tampered_export_fails_before_deploying(tampered):
    (error,) = refused("--artifacts", tampered)
    assert "generator.onnx" in error and "sha256" in error


def test_more_replicas_than_cpus_fail_naming_the_cpus():
    (error,) = refused("--weights", "demo", "--replicas", str(CPUS + 1))
    assert f"{CPUS + 1} CPUs asked for" in error and f"{CPUS} CPU(s) available" in error


def test_more_cpus_per_replica_than_the_machine_has_fail_naming_the_cpus():
    (error,) = refused("--weights", "demo", "--cpus-per-replica", "64")
    assert "64 CPUs asked for" in error and f"{CPUS} CPU(s) available" in error


def test_a_port_out_of_range_fails_before_ray():
    (error,) = refused("--port", "70000")
    assert "70000" in error


def test_a_port_in_use_fails_before_ray(busy_port):
    (error,) = refused("--weights", "demo", "--port", str(busy_port))
    assert f"127.0.0.1:{busy_port}" in error
