"""Live video without a server: the fragmented MP4 encoder, `vidsynth generate --out -`, and
streams made as stateless chunks (numpy state in and out) with `generate`'s frames."""

from __future__ import annotations

import io
import itertools
import json
import struct
import subprocess
import sys
from types import SimpleNamespace

import imageio.v3 as iio
import numpy as np
import pytest

from vidsynth.export import export_artifacts
from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import build_model
from vidsynth.model.noise import noise_rows, sample_noise
from vidsynth.runtime import GenerateRequest, generate_videos
from vidsynth.runtime.backend import open_backend
from vidsynth.runtime.chunks import first_state, next_chunk, next_chunks, stream_frames, stream_pieces
from vidsynth.runtime.ffmpeg import STREAM_CODECS, FragmentedMp4Encoder, ffmpeg_exe
from vidsynth.weights.format import save_weights

CONFIG = ModelConfig(ngf=8, image_size=64, cell="gru", motion_mode="feedback", n_categories=3)
SIZE = CONFIG.image_size
FRAMES = 70  # more than one 64-frame chunk, so the state is handed over once


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    model = build_model(CONFIG, seed=5).eval()
    save_weights(model, root / "weights", {"source": "test"})
    export_artifacts(model, root / "artifacts", formats=("onnx",))
    return SimpleNamespace(root=root, weights=str(root / "weights"), artifacts=str(root / "artifacts"))


def source(made, backend: str) -> dict:
    if backend in ("eager", "optimized"):
        return {"weights": made.weights, "backend": backend}
    return {"artifacts": made.artifacts, "backend": backend}


def generated_frames(made, backend: str, tmp_path, seed: int, frames: int) -> np.ndarray:
    """`vidsynth generate`'s frames, exactly: its png contact sheet cut back into frames."""
    request = GenerateRequest(
        **source(made, backend), device="cpu", seed=seed, num_videos=1, frames=frames, format="png",
        out=str(tmp_path / f"sheet-{backend}-{seed}"),
    )  # fmt: skip
    sheet = iio.imread(generate_videos(request).paths[0])
    return sheet.reshape(SIZE, frames, SIZE, 3).transpose(1, 0, 2, 3)


def decode(mp4: bytes) -> np.ndarray:
    """(frames, H, W, 3) uint8 decoded by the bundled ffmpeg from stdin."""
    command = [ffmpeg_exe(), "-v", "error", "-i", "-", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(command, input=mp4, capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, SIZE, SIZE, 3)


def top_boxes(data: bytes) -> list[str]:
    kinds, at = [], 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        kinds.append(kind.decode())
        at += size
    return kinds


# -- the encoder ---------------------------------------------------------------------------


def test_fragments_leave_the_encoder_as_frames_are_fed():
    encoder = FragmentedMp4Encoder(SIZE, 8.0)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, SIZE, SIZE, 3), dtype=np.uint8)
    encoder.send(frames[0])
    head = encoder.take()
    assert top_boxes(head) == ["ftyp", "moov"]  # frame 0's fragment waits for the next frame
    for frame in frames[1:]:
        encoder.send(frame)
    body = encoder.take()
    assert top_boxes(body) == ["moof", "mdat"] * 4
    tail = encoder.finish()
    assert top_boxes(tail)[:2] == ["moof", "mdat"]
    stream = head + body + tail
    avcc = stream.find(b"avcC")
    assert f"avc1.{stream[avcc + 5 : avcc + 8].hex()}" == STREAM_CODECS  # what the page tells MediaSource
    assert len(decode(stream)) == 5


# -- generate --out - -----------------------------------------------------------------------


def test_generate_to_stdout_pipes_generates_video(made, tmp_path):
    """The stdout stream decodes to the frames `generate` makes. The encoder settings differ
    from the mp4 files' (no lookahead, a fragment per frame), so decoded frames are compared
    with the exact frames within H.264's loss at CRF 10; the frames fed to the encoder are
    compared exactly in the next test."""
    options = ["--weights", made.weights, "--backend", "eager", "--device", "cpu", "--seed", "4"]
    run = subprocess.run(
        [sys.executable, "-m", "vidsynth", "generate", *options, "--out", "-", "--num-videos", "1",
         "--frames", str(FRAMES)],
        capture_output=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()
    assert top_boxes(run.stdout)[:3] == ["ftyp", "moov", "moof"]
    assert b"one video to stdout" in run.stderr and b"Error" not in run.stderr
    decoded = decode(run.stdout).astype(int)
    exact = generated_frames(made, "eager", tmp_path, seed=4, frames=FRAMES).astype(int)
    assert decoded.shape == exact.shape
    assert np.abs(decoded - exact).mean() < 3.0


def test_generate_to_stdout_feeds_the_encoder_generates_frames(made, tmp_path, monkeypatch):
    fed = []
    real_send = FragmentedMp4Encoder.send
    monkeypatch.setattr(
        FragmentedMp4Encoder, "send", lambda self, frame: (fed.append(frame), real_send(self, frame))
    )
    sink = io.BytesIO()
    request = GenerateRequest(
        **source(made, "onnxruntime"), device="cpu", seed=2, num_videos=1, frames=FRAMES, out="-"
    )
    assert generate_videos(request, sink=sink).paths == []
    assert np.array_equal(np.stack(fed), generated_frames(made, "onnxruntime", tmp_path, 2, FRAMES))
    assert len(decode(sink.getvalue())) == FRAMES


@pytest.mark.parametrize(
    ("extra", "named"), [(["--num-videos", "2"], "--num-videos 1"), (["--format", "gif"], "mp4 only")]
)
def test_generate_to_stdout_refuses_what_it_cannot_pipe(made, extra, named):
    run = subprocess.run(
        [sys.executable, "-m", "vidsynth", "generate", "--weights", made.weights, "--out", "-",
         "--num-videos", "1", *extra],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.startswith("Error: ") and named in run.stderr and len(run.stderr.splitlines()) == 1


# -- stateless chunks ---------------------------------------------------------------------


def test_pieces_start_where_generates_chunks_start():
    def plan(total):
        return [(p.start, p.n_frames, p.skip, p.carries) for p in stream_pieces(total, 64)]

    # the first chunk goes out early in calls of 2 and 8 frames from the start, then whole
    assert plan(16) == [(0, 2, 0, False), (0, 8, 2, False), (0, 16, 8, True)]
    assert plan(100) == [
        (0, 2, 0, False),
        (0, 8, 2, False),
        (0, 32, 8, False),
        (0, 64, 32, True),
        (64, 36, 0, True),
    ]
    assert plan(1) == [(0, 1, 0, True)]
    endless = list(itertools.islice(stream_pieces(None, 64), 6))
    assert [(p.start, p.n_frames) for p in endless[3:]] == [(0, 64), (64, 64), (128, 64)]
    for total in (1, 2, 3, 9, 64, 65, 200):  # every frame sent once, in order
        sent = [f for p in stream_pieces(total, 64) for f in range(p.start + p.skip, p.stop)]
        assert sent == list(range(total))


@pytest.mark.parametrize("backend", ["eager", "optimized", "onnxruntime", "openvino"])
def test_streamed_frames_equal_generates(made, tmp_path, backend):
    runner = open_backend(GenerateRequest(**source(made, backend), device="cpu"))
    noise = sample_noise(CONFIG, 1, seed=6)
    streamed = np.concatenate(list(stream_frames(runner, noise, FRAMES, chunk_frames=64)), axis=1)[0]
    assert np.array_equal(streamed, generated_frames(made, backend, tmp_path, 6, FRAMES))


def test_a_stream_continues_in_another_process_from_its_numpy_state(made):
    """The state is plain numpy: another backend instance (a replica) makes the next chunk."""
    one, other = (open_backend(GenerateRequest(**source(made, "onnxruntime"), device="cpu")) for _ in "ab")
    noise = sample_noise(CONFIG, 1, seed=1)
    frames_a, state = next_chunk(one, noise, first_state(CONFIG, noise), 64)
    assert isinstance(state, np.ndarray) and state.dtype == np.float32
    frames_b, _ = next_chunk(other, noise, state, 6)
    streamed = np.concatenate([frames_a, frames_b], axis=1)
    assert np.array_equal(streamed, np.concatenate(list(stream_frames(one, noise, 70, 64)), axis=1))


def test_streams_share_a_model_call_with_the_frames_they_get_alone(made):
    runner = open_backend(GenerateRequest(**source(made, "onnxruntime"), device="cpu"))
    noise = sample_noise(CONFIG, 3, seed=9)
    calls = [
        (noise_rows(noise, i, i + 1), first_state(CONFIG, noise_rows(noise, i, i + 1)), 8) for i in range(3)
    ]
    calls[2] = (calls[2][0], calls[2][1], 2)  # another length: its own call
    together = next_chunks(runner, calls, together=True)
    alone = next_chunks(runner, calls, together=False)
    for (frames, state), (frames_alone, state_alone) in zip(together, alone):
        assert np.array_equal(frames, frames_alone) and np.array_equal(state, state_alone)
    assert [len(f[0]) for f, _ in together] == [8, 8, 2]


# -- the stream route's logic, without Ray -----------------------------------------------


class LocalModel:
    """Stands in for the model deployment: makes each call with a backend in this process,
    optionally failing chosen calls as a replica that died would."""

    def __init__(self, backend, fail_calls=(), hang_calls=()):
        self.backend = backend
        self.fail_calls = set(fail_calls)
        self.hang_calls = set(hang_calls)
        self.calls = 0

    async def __call__(self, call):
        import asyncio

        from vidsynth.serve.live import ChunkResult

        self.calls += 1
        if self.calls in self.fail_calls:
            raise RuntimeError("the replica died")
        if self.calls in self.hang_calls:
            await asyncio.sleep(3600)  # a call that is never answered
        ((frames, state),) = next_chunks(self.backend, [(call.noise, call.state, call.n_frames)], False)
        return ChunkResult(frames, state, replica="local")


def live(made, backend="onnxruntime", **limits):
    from vidsynth.serve.live import LiveStreams
    from vidsynth.serve.options import LiveLimits

    runner = open_backend(GenerateRequest(**source(made, backend), device="cpu"))
    model = LocalModel(runner, limits.pop("fail_calls", ()), limits.pop("hang_calls", ()))
    return LiveStreams(LiveLimits(**{"lead_s": 1000.0, **limits}), model), model, runner


def collect(stream) -> bytes:
    import asyncio

    async def run():
        return b"".join([piece async for piece in stream.body()])

    return asyncio.run(run())


def stdout_bytes(made, backend, **options) -> bytes:
    sink = io.BytesIO()
    request = GenerateRequest(**source(made, backend), device="cpu", num_videos=1, out="-", **options)
    generate_videos(request, sink=sink)
    return sink.getvalue()


def test_a_stream_is_the_mp4_generate_writes_to_stdout_even_when_a_call_fails(made):
    """Byte for byte: the same frames through the same encoder. The third call fails once
    (a replica that died) and is made again; no frame is missing or repeated."""
    streams, model, _ = live(made, fail_calls={3})
    body = json.dumps({"seed": 3, "frames": 100, "fps": 25, "category": 1}).encode()
    stream = streams.open(body, GenerateRequest(**source(made, "onnxruntime")), CONFIG)
    assert streams.active == 1 and stream.headers["X-Vidsynth-Frames"] == "100"
    assert collect(stream) == stdout_bytes(made, "onnxruntime", seed=3, frames=100, fps=25, category=1)
    assert streams.active == 0
    assert streams.counts["retries"] == 1 and streams.counts["frames_sent"] == 100
    assert model.calls == 1 + len(list(stream_pieces(100, 64)))


def test_a_call_never_answered_is_made_again(made):
    streams, model, _ = live(made, hang_calls={5}, call_timeout_s=1.0)
    stream = streams.open(
        b'{"seed": 4, "frames": 70, "fps": 1000}', GenerateRequest(**source(made, "onnxruntime")), CONFIG
    )
    assert collect(stream) == stdout_bytes(made, "onnxruntime", seed=4, frames=70, fps=1000)
    assert streams.counts["retries"] == 1


def test_stream_admission_limits_and_bad_bodies(made):
    from vidsynth.errors import InputError
    from vidsynth.serve.live import StreamsBusy
    from vidsynth.serve.options import LimitError

    streams, _, _ = live(made, max_streams=1, max_frames=50)
    server = GenerateRequest(**source(made, "onnxruntime"))
    endless = streams.open(b'{"seed": 1}', server, CONFIG)
    assert endless.total == 50  # an endless stream ends at the server's cap
    with pytest.raises(StreamsBusy):
        streams.open(b"{}", server, CONFIG)
    del endless  # dropped before its body started: the slot comes back
    import gc

    gc.collect()
    assert streams.active == 0
    for body, field in (
        (b'{"frames": 51}', "frames"),
        (b'{"format": "gif"}', "format"),
        (b'{"num_videos": 2}', "num_videos"),
        (b'{"category": 7}', "category"),
        (b'{"colour": 1}', "colour"),
    ):
        with pytest.raises(InputError) as caught:
            streams.open(body, server, CONFIG)
        assert field in caught.value.fields, body
    with pytest.raises(LimitError):
        streams.open(b'{"frames": 51}', server, CONFIG)
    assert streams.active == 0


def test_a_cancelled_stream_stops_within_the_call_it_is_in(made):
    """What a client disconnect does: Ray Serve cancels the response's task."""
    import asyncio

    streams, model, _ = live(made, lead_s=0.5)
    stream = streams.open(b'{"seed": 2, "fps": 8}', GenerateRequest(**source(made, "onnxruntime")), CONFIG)

    async def run():
        body, sent = stream.body(), []
        while True:  # until the stream waits for the clock (fps 8: one chunk and 0.5 s ahead at most)
            task = asyncio.ensure_future(body.__anext__())
            done, _ = await asyncio.wait([task], timeout=1.0)
            if not done:
                break
            sent.append(task.result())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return b"".join(sent)

    assert top_boxes(asyncio.run(run()))[:2] == ["ftyp", "moov"]
    calls = model.calls
    assert streams.active == 0
    assert calls <= 5  # the first chunk (in 4 calls) and the one after; then it waited for the clock


@pytest.mark.parametrize("fps", [8.0, 120.0, 1000.0])
def test_the_first_frame_leaves_the_encoder_at_any_frame_rate(fps):
    """ffmpeg must not hold frames back to probe its input (it did for dozens at 120 fps)."""
    encoder = FragmentedMp4Encoder(SIZE, fps)
    frames = np.random.default_rng(1).integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    for frame in frames:
        encoder.send(frame)
    assert top_boxes(encoder.take()) == ["ftyp", "moov", "moof", "mdat"]
    encoder.kill()
