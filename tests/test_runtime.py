"""vidsynth generate: backends, writers, streaming, noise control and bad input.

One small model (ngf=8, 64x64, LSTM same-input) is saved and exported once for the module.
"""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vidsynth.cli import cli
from vidsynth.errors import InputError, RuntimeBackendError, VidsynthError
from vidsynth.export import export_artifacts
from vidsynth.export.precision import psnr_db
from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import build_model
from vidsynth.model.noise import sample_noise
from vidsynth.runtime import GenerateRequest, generate_videos
from vidsynth.runtime.backend import open_backend
from vidsynth.runtime.plan import plan_generation
from vidsynth.runtime.stream import to_uint8
from vidsynth.weights.format import save_weights

CONFIG = ModelConfig(ngf=8, image_size=64)
SIZE = CONFIG.image_size
NO_GPU = not torch.cuda.is_available()


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("runtime")
    model = build_model(CONFIG, seed=3).eval()
    save_weights(model, root / "weights", {"source": "test"})
    export_artifacts(model, root / "artifacts")
    return SimpleNamespace(
        root=root, model=model, weights=str(root / "weights"), artifacts=str(root / "artifacts")
    )


def source(made, backend: str) -> dict:
    """Eager runs the weights; the other backends run the exported artifacts."""
    if backend == "eager":
        return {"weights": made.weights, "backend": "eager"}
    return {"artifacts": made.artifacts, "backend": backend}


def reference_pixels(model, noise, n_frames: int) -> np.ndarray:
    with torch.no_grad():
        video = model(torch.from_numpy(noise.z_content), torch.from_numpy(noise.z_motion), n_frames)
    return to_uint8(video.numpy())  # (B, T, H, W, 3)


def read_frames(path) -> np.ndarray:
    return iio.imread(path, index=None)


def sheet_of(pixels: np.ndarray) -> np.ndarray:
    b, t, s = pixels.shape[:3]
    return pixels.transpose(0, 2, 1, 3, 4).reshape(b * s, t * s, 3)


# -- pixels ------------------------------------------------------------------------------


def test_tanh_range_maps_to_uint8_with_shift_clipping_and_rounding():
    values = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 1.7, -3.0, 0.003], dtype=np.float32)
    video = np.broadcast_to(values, (1, 1, 3, 1, values.size))  # (B, T, nc, H, W)
    pixels = to_uint8(video)
    assert pixels.shape == (1, 1, 1, values.size, 3) and pixels.dtype == np.uint8
    # -0.5 -> 63.75 -> 64 (not wrapped round as 255 * -0.5 would be); out of range clips.
    assert pixels[0, 0, 0, :, 0].tolist() == [0, 64, 128, 191, 255, 255, 0, 128]


def test_grey_videos_become_rgb_and_other_channel_counts_are_refused():
    grey = np.zeros((1, 2, 1, 4, 4), dtype=np.float32)
    assert to_uint8(grey).shape == (1, 2, 4, 4, 3)
    with pytest.raises(InputError, match="1 or 3 channels"):
        to_uint8(np.zeros((1, 2, 2, 4, 4), dtype=np.float32))


# -- each backend writes real files --------------------------------------------------------


@pytest.mark.parametrize("backend", ["eager", "torchscript", "onnxruntime"])
@pytest.mark.parametrize("fmt", ["mp4", "gif"])
def test_each_backend_writes_decodable_videos(made, tmp_path, backend, fmt):
    out = tmp_path / "out"
    request = GenerateRequest(
        **source(made, backend), device="cpu", num_videos=2, frames=5, format=fmt, out=str(out)
    )
    result = generate_videos(request)
    assert [p.name for p in result.paths] == [f"video_000.{fmt}", f"video_001.{fmt}"]
    assert sorted(p.name for p in out.iterdir()) == [p.name for p in result.paths]  # no staging left
    for path in result.paths:
        frames = read_frames(path)
        assert frames.shape == (5, SIZE, SIZE, 3)


@pytest.mark.parametrize("backend", ["eager", "torchscript", "onnxruntime"])
def test_png_sheet_has_a_row_per_video_and_a_column_per_frame(made, tmp_path, backend):
    request = GenerateRequest(
        **source(made, backend),
        device="cpu",
        num_videos=3,
        frames=4,
        format="png",
        seed=11,
        out=str(tmp_path),
    )
    (path,) = generate_videos(request).paths
    assert path.name == "sheet.png"
    sheet = iio.imread(path)
    expected = sheet_of(reference_pixels(made.model, sample_noise(CONFIG, 3, 11), 4))
    assert sheet.shape == (3 * SIZE, 4 * SIZE, 3)
    # png is lossless: the eager pixels exactly; other backends within one level (a float
    # difference of 1e-7 can cross a rounding boundary).
    diff = np.abs(sheet.astype(int) - expected)
    assert diff.max() <= (0 if backend == "eager" else 1)


def test_mp4_frames_are_h264_yuv420p(made, tmp_path):
    import imageio_ffmpeg

    request = GenerateRequest(weights=made.weights, device="cpu", num_videos=1, frames=3, out=str(tmp_path))
    (path,) = generate_videos(request).paths
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    reader.close()
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert tuple(meta["size"]) == (SIZE, SIZE)


# -- same noise, same video ------------------------------------------------------------------


def test_backends_agree_within_export_tolerance_before_quantisation(made):
    noise = sample_noise(CONFIG, 3, seed=5)
    videos = {}
    for backend in ("eager", "torchscript", "onnxruntime"):
        runner = open_backend(GenerateRequest(**source(made, backend), device="cpu"))
        videos[backend] = runner.generate(noise, 9)
    # TorchScript also scripts weights in process.
    scripted = open_backend(GenerateRequest(weights=made.weights, backend="torchscript", device="cpu"))
    videos["torchscript from weights"] = scripted.generate(noise, 9)
    assert videos["eager"].shape == (3, 9, 3, SIZE, SIZE)
    for backend in videos:
        assert np.abs(videos[backend] - videos["eager"]).max() <= 1e-4, backend


def test_optimized_backends_match_eager(made):
    noise = sample_noise(CONFIG, 3, seed=6)
    eager = open_backend(GenerateRequest(weights=made.weights, backend="eager", device="cpu")).generate(
        noise, 9
    )
    fp32 = open_backend(GenerateRequest(weights=made.weights, backend="optimized", device="cpu"))
    assert np.abs(fp32.generate(noise, 9) - eager).max() <= 1e-4
    bf16 = open_backend(GenerateRequest(weights=made.weights, backend="optimized-bf16", device="cpu"))
    psnr = psnr_db(eager, bf16.generate(noise, 9))
    assert psnr >= 35, psnr
    with pytest.raises(RuntimeBackendError, match="runs on the CPU"):
        open_backend(GenerateRequest(weights=made.weights, backend="optimized", device="cuda"))
    with pytest.raises(InputError, match="the optimized backend runs weights, not export artifacts"):
        GenerateRequest(artifacts=made.artifacts, backend="optimized").validate()


def test_onnxruntime_from_weights_exports_on_the_fly(made, tmp_path):
    sheets = {}
    for backend in ("eager", "onnxruntime"):
        result = run_cli(
            "--weights",
            made.weights,
            "--backend",
            backend,
            "--device",
            "cpu",
            "--num-videos",
            "2",
            "--frames",
            "3",
            "--format",
            "png",
            "--out",
            str(tmp_path / backend),
        )
        assert result.exit_code == 0, result.output
        sheets[backend] = iio.imread(tmp_path / backend / "sheet.png").astype(int)
    assert "exporting the weights (onnx)" in result.output
    assert np.abs(sheets["onnxruntime"] - sheets["eager"]).max() <= 1


@pytest.mark.parametrize("backend", ["eager", "torchscript", "onnxruntime"])
def test_chunks_with_carried_state_equal_one_call(made, backend):
    runner = open_backend(GenerateRequest(**source(made, backend), device="cpu"))
    noise = sample_noise(CONFIG, 2, seed=8)
    whole = runner.generate(noise, 12)
    state = runner.initial_state(noise)
    parts = []
    for count in (5, 1, 6):
        part, state = runner.generate_chunk(noise, state, count)
        parts.append(part)
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, rtol=0, atol=1e-5)


def test_streamed_file_equals_one_shot_file(made, tmp_path):
    sheets = []
    for chunk in (4, 64):  # 4: streamed in 4 calls per video; 64: one call
        request = GenerateRequest(
            weights=made.weights,
            device="cpu",
            num_videos=2,
            frames=13,
            format="png",
            chunk_frames=chunk,
            out=str(tmp_path / f"chunk{chunk}"),
        )
        result = generate_videos(request)
        assert result.plan.streaming == (chunk == 4)
        sheets.append(iio.imread(result.paths[0]))
    assert np.array_equal(sheets[0], sheets[1])


@pytest.mark.parametrize("fmt", ["mp4", "gif"])
def test_same_seed_same_bytes_other_seed_other_bytes(made, tmp_path, fmt):
    def run(seed, name):
        request = GenerateRequest(
            weights=made.weights,
            device="cpu",
            num_videos=2,
            frames=4,
            format=fmt,
            seed=seed,
            out=str(tmp_path / name),
        )
        return [p.read_bytes() for p in generate_videos(request).paths]

    first = run(7, "a")
    assert run(7, "b") == first
    assert run(8, "c") != first


# -- MoCoGAN control ---------------------------------------------------------------------


def motion_codes(model, noise, n_frames: int) -> np.ndarray:
    with torch.no_grad():
        codes, _ = model.motion.rollout(model.initial_state(torch.from_numpy(noise.z_motion)), n_frames)
    return codes.transpose(0, 1).numpy()  # (B, T, d_motion)


@pytest.mark.parametrize("fix", ["content", "motion"])
def test_fix_shares_one_code_across_the_videos_and_varies_the_other(made, tmp_path, fix):
    n, t = 3, 4
    noise = sample_noise(CONFIG, n, seed=2, fix=fix)
    shared, varied = (
        (noise.z_content, noise.z_motion) if fix == "content" else (noise.z_motion, noise.z_content)
    )
    assert all(np.array_equal(shared[0], row) for row in shared[1:])
    assert all(not np.allclose(varied[0], row) for row in varied[1:])
    codes = motion_codes(made.model, noise, t)
    # allclose: rows of one batched matmul may round differently (seen on AVX2 CPUs)
    same_motion = all(np.allclose(codes[0], row, rtol=0, atol=1e-6) for row in codes[1:])
    assert same_motion == (fix == "motion")

    request = GenerateRequest(
        weights=made.weights,
        backend="eager",
        device="cpu",
        num_videos=n,
        frames=t,
        format="png",
        seed=2,
        fix=fix,
        out=str(tmp_path),
    )
    sheet = iio.imread(generate_videos(request).paths[0])
    assert np.array_equal(sheet, sheet_of(reference_pixels(made.model, noise, t)))
    rows = sheet.reshape(n, SIZE, t * SIZE, 3)
    assert all(not np.array_equal(rows[0], row) for row in rows[1:])  # the videos still differ


# -- memory -----------------------------------------------------------------------------


def test_endless_video_streams_with_bounded_compute():
    big = ModelConfig()  # 96x96, ngf=64
    plan = plan_generation(
        big, n_videos=1, n_frames=100_000, fmt="mp4", chunk_frames=64, host_available=8 * 2**30
    )
    assert plan.streaming and plan.chunk_frames == 64 and plan.group_size == 1
    assert plan.estimate_bytes < 2**30  # independent of the 100000 frames
    many = plan_generation(
        big, n_videos=100, n_frames=100_000, fmt="mp4", chunk_frames=64, host_available=8 * 2**30
    )
    assert many.group_size <= 8  # encoders open at once
    assert many.estimate_bytes < 2**30


def test_requests_beyond_memory_are_refused_with_the_estimate():
    with pytest.raises(
        InputError, match=r"need an estimated [0-9.]+ TiB of host memory for the contact sheet"
    ):
        plan_generation(ModelConfig(), 1000, 100_000, "png", 64, host_available=16 * 2**30)
    with pytest.raises(InputError, match="each gif until it is complete"):
        plan_generation(ModelConfig(), 1, 10_000_000, "gif", 64, host_available=16 * 2**30)
    with pytest.raises(InputError, match="GPU memory per call"):
        plan_generation(
            ModelConfig(), 1, 100, "mp4", 10_000, host_available=16 * 2**30, device_available=2**28
        )


# -- bad input: one line, non-zero exit, nothing written ---------------------------------------


def run_cli(*args: str):
    return CliRunner().invoke(cli, ["generate", *args], catch_exceptions=False)


def assert_one_error_line(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    # --backend auto says what it chose before the backend opens; the error is the one other line
    lines = [
        line for line in result.output.strip().splitlines() if not line.startswith("--backend auto chose ")
    ]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--frames", "0"], ["frames must be a positive integer, got 0"]),
        (["--frames", "-3"], ["frames must be a positive integer, got -3"]),
        (["--num-videos", "0"], ["num-videos must be a positive integer, got 0"]),
        (
            ["--backend", "tensorrt"],
            [
                "unknown backend 'tensorrt'",
                "auto, eager, optimized, optimized-bf16, torchscript, onnxruntime",
            ],
        ),
        (["--device", "tpu"], ["unknown device 'tpu'", "cpu, cuda, auto"]),
        (["--format", "avi"], ["unknown format 'avi'", "mp4, gif, png"]),
        (["--fix", "both"], ["unknown fix 'both'"]),
        (["--fps", "0"], ["fps must be between 0.01 and 1000, got 0"]),
        (["--fps", "inf"], ["fps must be a finite number, got inf"]),
        (["--frames", "0", "--format", "avi"], ["frames must be", "unknown format"]),  # all at once
        (
            ["--format", "png", "--frames", "100000", "--num-videos", "100000"],
            ["need an estimated", "contact sheet"],
        ),
        (["--category", "1"], ["this model has no categories"]),
    ],
)
def test_bad_options_fail_in_one_line_and_write_nothing(made, tmp_path, args, fragments):
    out = tmp_path / "out"
    result = run_cli("--weights", made.weights, "--device", "cpu", "--out", str(out), *args)
    assert_one_error_line(result, *fragments)
    assert not out.exists()


def test_artifacts_and_weights_together_or_eager_on_artifacts_are_refused(made, tmp_path):
    out = tmp_path / "out"
    assert_one_error_line(
        run_cli("--weights", made.weights, "--artifacts", made.artifacts, "--out", str(out)), "not both"
    )
    assert_one_error_line(
        run_cli("--artifacts", made.artifacts, "--backend", "eager", "--out", str(out)),
        "eager backend runs weights",
    )
    assert not out.exists()


@pytest.mark.parametrize(
    "backend, victim", [("onnxruntime", "generator.onnx"), ("torchscript", "generator.pt")]
)
def test_tampered_artifacts_are_refused(made, tmp_path, backend, victim):
    tampered = tmp_path / "tampered"
    shutil.copytree(made.artifacts, tampered)
    data = bytearray((tampered / victim).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tampered / victim).write_bytes(bytes(data))
    out = tmp_path / "out"
    result = run_cli("--artifacts", str(tampered), "--backend", backend, "--device", "cpu", "--out", str(out))
    assert_one_error_line(result, victim, "sha256")
    assert not out.exists()


def test_mixed_artifacts_are_refused(made, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(made.artifacts, mixed)
    shutil.copy(mixed / "generator.onnx", mixed / "generator_chunk.onnx")  # a file from elsewhere
    result = run_cli("--artifacts", str(mixed), "--device", "cpu", "--out", str(tmp_path / "out"))
    assert_one_error_line(result, "generator_chunk.onnx")
    assert not (tmp_path / "out").exists()


def test_missing_artifacts_directory_is_refused(tmp_path):
    result = run_cli(
        "--artifacts", str(tmp_path / "nowhere"), "--device", "cpu", "--out", str(tmp_path / "out")
    )
    assert_one_error_line(result, "does not exist")


def test_unwritable_output_is_refused_before_any_work(made, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    assert_one_error_line(run_cli("--weights", made.weights, "--out", str(a_file)), "not a directory")
    assert_one_error_line(
        run_cli("--weights", made.weights, "--out", str(a_file / "sub")), "is not a directory"
    )
    assert a_file.read_text() == "not a directory"


def test_failure_part_way_leaves_nothing_half_written(made, tmp_path, monkeypatch):
    from vidsynth.runtime.torch_backends import TorchBackend

    calls = []
    real_chunk = TorchBackend.generate_chunk

    def failing_chunk(self, noise, state, n_frames):
        calls.append(n_frames)
        if len(calls) == 3:
            raise RuntimeBackendError("simulated failure in the third chunk")
        return real_chunk(self, noise, state, n_frames)

    monkeypatch.setattr(TorchBackend, "generate_chunk", failing_chunk)
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "video_000.mp4").write_bytes(b"an older video")
    for out in (tmp_path / "new" / "deeper", existing):
        calls.clear()
        request = GenerateRequest(
            weights=made.weights, device="cpu", num_videos=2, frames=12, chunk_frames=4, out=str(out)
        )
        with pytest.raises(VidsynthError, match="simulated"):
            generate_videos(request)
    assert not (tmp_path / "new").exists()  # created for the run, removed with it
    assert [p.name for p in existing.iterdir()] == ["video_000.mp4"]  # no staging, no new files
    assert (existing / "video_000.mp4").read_bytes() == b"an older video"


@pytest.mark.skipif(not NO_GPU, reason="a GPU is present")
@pytest.mark.parametrize("backend", ["eager", "torchscript", "onnxruntime"])
def test_cuda_without_a_gpu_is_an_error_and_auto_says_it_falls_back(made, tmp_path, backend):
    base = ["--out", str(tmp_path / "out"), "--frames", "2", "--num-videos", "1"]
    src = ["--weights", made.weights] if backend == "eager" else ["--artifacts", made.artifacts]
    result = run_cli(*src, "--backend", backend, "--device", "cuda", *base)
    assert_one_error_line(result, "--device cuda is not usable")
    assert not (tmp_path / "out").exists()
    result = run_cli(*src, "--backend", backend, "--device", "auto", *base)
    assert result.exit_code == 0, result.output
    assert "--device auto: no usable CUDA" in result.output and "running on cpu" in result.output


# -- the command line -------------------------------------------------------------------


def test_generate_prints_the_paths_it_wrote(made, tmp_path):
    out = tmp_path / "clips"
    result = run_cli(
        "--artifacts",
        made.artifacts,
        "--device",
        "cpu",
        "--num-videos",
        "2",
        "--frames",
        "3",
        "--format",
        "gif",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    paths = [line for line in result.output.splitlines() if line.endswith(".gif")]
    assert paths == [str(out / "video_000.gif"), str(out / "video_001.gif")]
    assert all(read_frames(p).shape == (3, SIZE, SIZE, 3) for p in paths)


def test_generate_without_options_uses_the_default_weights(tmp_path, monkeypatch):
    from vidsynth.weights import DEFAULT_WEIGHTS_DIR

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["generate"], catch_exceptions=False)
    if (DEFAULT_WEIGHTS_DIR / "model.safetensors").is_file():
        assert result.exit_code == 0, result.output
        written = sorted(p.name for p in (tmp_path / "videos").iterdir())
        assert written == [f"video_{i:03d}.mp4" for i in range(4)]
        assert all(f"videos/video_{i:03d}.mp4" in result.output for i in range(4))
    else:
        assert_one_error_line(result, "no default weights")
        assert not (tmp_path / "videos").exists()
