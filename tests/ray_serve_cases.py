"""A real Ray Serve app on loopback: run by tests/test_serve_ray.py inside `unshare -n`."""

from __future__ import annotations

import io
import json
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imageio_ffmpeg
import pytest
from serve_support import http, post_json, require_netns, small_weights

require_netns()

from vidsynth.export import export_weights  # noqa: E402
from vidsynth.runtime.generate import generate_videos  # noqa: E402
from vidsynth.runtime.request import GenerateRequest  # noqa: E402
from vidsynth.serve.options import ServeLimits, ServeOptions  # noqa: E402

PORT = 8321


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    return small_weights(tmp_path_factory.mktemp("serve") / "weights")


@pytest.fixture(scope="module")
def servers(weights):
    """The main app at /, and a tight one at /tight: one request at a time, one queued, 0.5 s."""
    import ray
    from ray import serve

    from vidsynth.cluster import start_ray
    from vidsynth.serve.server import deploy

    start_ray(None)
    try:
        model = GenerateRequest(weights=weights, backend="onnxruntime", device="cpu")
        # A long batch wait so that concurrent test requests are seen to share model calls.
        main = ServeOptions(model=model, limits=ServeLimits(batch_wait_s=0.3, max_total_frames=2048))
        tight = ServeOptions(
            model=model, limits=ServeLimits(max_batch=1, max_ongoing=1, max_queued=1, timeout_s=0.5)
        )
        urls = {
            "main": deploy(main, "127.0.0.1", PORT),
            "tight": deploy(tight, "127.0.0.1", PORT, name="tight", route_prefix="/tight"),
        }
        yield urls
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def url(servers) -> str:
    return servers["main"]


def reference(weights: str, tmp_path: Path, **options) -> dict[str, bytes]:
    """What `vidsynth generate` writes for these options: {file name: bytes}."""
    out = tmp_path / f"generate-{len(list(tmp_path.iterdir()))}"
    values = {"num_videos": 1, **options}
    result = generate_videos(
        GenerateRequest(weights=weights, backend="onnxruntime", device="cpu", out=str(out), **values),
        exporter=export_weights,
    )
    return {path.name: path.read_bytes() for path in result.paths}


def test_health_model_info_and_page(url):
    status, _, body = http("GET", f"{url}/healthz")
    assert status == 200 and json.loads(body) == {"status": "ready"}
    status, _, body = http("GET", f"{url}/v1/model")
    card = json.loads(body)
    assert status == 200
    assert card["config"]["ngf"] == 8 and card["config"]["n_categories"] == 2
    assert card["backend"] == "onnxruntime" and card["device"] == "cpu"
    assert card["provenance"]["source"] == "test weights"
    assert card["parameters"] > 0 and card["limits"]["max_total_frames"] == 2048
    status, headers, body = http("GET", f"{url}/")
    assert status == 200 and headers["content-type"].startswith("text/html") and b"<video" in body


@pytest.mark.parametrize(
    "fmt, media_type, magic",
    [("mp4", "video/mp4", b"ftyp"), ("gif", "image/gif", b"GIF89a"), ("png", "image/png", b"\x89PNG")],
)
def test_each_format_is_the_file_generate_writes(url, weights, tmp_path, fmt, media_type, magic):
    options = {"seed": 11, "frames": 12, "fps": 6, "format": fmt, "category": 1, "fix": "content"}
    status, headers, body = post_json(f"{url}/v1/videos", options)
    assert status == 200, body[:300]
    assert headers["content-type"] == media_type and magic in body[:16]
    expected = reference(weights, tmp_path, **options)
    assert list(expected.values()) == [body]
    assert f'filename="{next(iter(expected))}"' in headers["content-disposition"]


def test_several_videos_come_as_a_zip_of_generates_files(url, weights, tmp_path):
    options = {"seed": 4, "frames": 8, "num_videos": 3}
    status, headers, body = post_json(f"{url}/v1/videos", options)
    assert status == 200 and headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    assert files == reference(weights, tmp_path, **options)
    assert list(files) == ["video_000.mp4", "video_001.mp4", "video_002.mp4"]


def test_concurrent_requests_share_model_calls_and_keep_their_bytes(url, weights, tmp_path):
    seeds = list(range(20, 26))
    with ThreadPoolExecutor(len(seeds)) as pool:
        answers = list(pool.map(lambda s: post_json(f"{url}/v1/videos", {"seed": s, "frames": 16}), seeds))
    assert [status for status, _, _ in answers] == [200] * len(seeds)
    assert max(int(headers["x-vidsynth-batch"]) for _, headers, _ in answers) > 1
    for seed, (_, _, body) in zip(seeds, answers):
        assert [body] == list(reference(weights, tmp_path, seed=seed, frames=16).values())


def test_a_long_video_streams_in_chunks_with_the_state_carried(url, weights, tmp_path):
    options = {"seed": 2, "frames": 700, "fps": 25}  # 11 chunks of the default 64 frames
    status, _, body = post_json(f"{url}/v1/videos", options)
    assert status == 200
    assert [body] == list(reference(weights, tmp_path, **options).values())
    video = tmp_path / "long.mp4"
    video.write_bytes(body)
    assert imageio_ffmpeg.count_frames_and_secs(str(video))[0] == 700


BAD_REQUESTS = [
    # (body, status, fields)
    (b"{not json", 400, []),
    (b"[1, 2]", 400, []),
    (b'"seed"', 400, []),
    ({"seed": 1, "colour": "red"}, 422, ["colour"]),
    ({"frames": "many"}, 422, ["frames"]),
    ({"frames": 0}, 422, ["frames"]),
    ({"frames": 2.5}, 422, ["frames"]),
    ({"frames": None}, 422, ["frames"]),
    ({"num_videos": 0}, 422, ["num_videos"]),
    ({"num_videos": True}, 422, ["num_videos"]),
    ({"seed": -1}, 422, ["seed"]),
    ({"seed": "7"}, 422, ["seed"]),
    ({"fps": 0}, 422, ["fps"]),
    ({"fps": "fast"}, 422, ["fps"]),
    ({"format": "avi"}, 422, ["format"]),
    ({"format": ["mp4"]}, 422, ["format"]),
    ({"fix": "both"}, 422, ["fix"]),
    ({"category": 2}, 422, ["category"]),  # the model has 2 categories: checked by the replica
    ({"category": -1}, 422, ["category"]),
    ({"category": "wave"}, 422, ["category"]),
    ({"frames": 0, "seed": -1, "format": "avi"}, 422, ["format", "frames", "seed"]),
    ({"num_videos": 17}, 413, ["num_videos"]),
    ({"frames": 2049}, 413, ["frames"]),
    ({"frames": 1024, "num_videos": 3}, 413, ["frames"]),
]


@pytest.mark.parametrize("body, status, fields", BAD_REQUESTS, ids=[str(i) for i in range(len(BAD_REQUESTS))])
def test_every_bad_request_gets_a_4xx_json_error_naming_the_field(url, body, status, fields):
    raw = body if isinstance(body, bytes) else json.dumps(body)
    got, headers, answer = http("POST", f"{url}/v1/videos", raw)
    assert got == status, answer[:300]
    assert headers["content-type"] == "application/json"
    error = json.loads(answer)
    assert sorted(error["fields"]) == fields and error["error"]
    for field in fields:
        assert field.replace("_", "-") in error["error"] or field in error["error"]


def test_the_server_is_still_healthy_after_bad_requests(url):
    assert http("GET", f"{url}/healthz")[0] == 200
    assert post_json(f"{url}/v1/videos", {"seed": 1, "frames": 4})[0] == 200


def test_a_full_queue_answers_503_at_once(servers):
    tight = servers["tight"]
    with ThreadPoolExecutor(12) as pool:
        answers = list(
            pool.map(lambda s: post_json(f"{tight}/v1/videos", {"seed": s, "frames": 64}), range(12))
        )
    statuses = [status for status, _, _ in answers]
    assert 503 in statuses and set(statuses) <= {200, 503, 504}, statuses
    busy = next(body for status, _, body in answers if status == 503)
    assert "busy" in json.loads(busy)["error"]
    assert next(headers for status, headers, _ in answers if status == 503)["retry-after"] == "1"


def test_a_request_past_the_timeout_gets_504_and_its_work_stops(servers):
    tight = servers["tight"]  # one request at a time
    status, _, body = post_json(f"{tight}/v1/videos", {"seed": 1, "frames": 4096, "format": "gif"})
    assert status == 504 and "0.5 s" in json.loads(body)["error"]
    # Encoding that gif takes far longer than the deadline below; given up, it is not made at all.
    deadline = time.monotonic() + 15
    while (status := post_json(f"{tight}/v1/videos", {"seed": 2, "frames": 4})[0]) != 200:
        assert status in (503, 504) and time.monotonic() < deadline, status
        time.sleep(0.5)
