"""vidsynth generate on a CUDA GPU: every backend on `cuda` matches the CPU within the export
tolerance, streams with the state kept on the device, and writes real files.

Skipped without a GPU (and the onnxruntime case without onnxruntime-gpu).
"""

from __future__ import annotations

from types import SimpleNamespace

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import build_model
from vidsynth.model.noise import sample_noise
from vidsynth.runtime import GenerateRequest, generate_videos
from vidsynth.runtime.backend import open_backend
from vidsynth.weights.format import save_weights

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

CONFIG = ModelConfig(ngf=8, image_size=64)


def ort_has_cuda() -> bool:
    from vidsynth.runtime.onnxruntime_backend import cuda_provider_available

    return cuda_provider_available()


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    from vidsynth.export import export_artifacts

    root = tmp_path_factory.mktemp("runtime_cuda")
    model = build_model(CONFIG, seed=3).eval()
    save_weights(model, root / "weights", {"source": "test"})
    export_artifacts(model, root / "artifacts")
    return SimpleNamespace(weights=str(root / "weights"), artifacts=str(root / "artifacts"))


def source(made, backend: str) -> dict:
    if backend == "eager":
        return {"weights": made.weights, "backend": "eager"}
    if backend == "onnxruntime" and not ort_has_cuda():
        pytest.skip("onnxruntime has no CUDAExecutionProvider (onnxruntime-gpu not installed)")
    return {"artifacts": made.artifacts, "backend": backend}


@pytest.mark.parametrize("backend", ["eager", "torchscript", "onnxruntime"])
def test_cuda_matches_cpu_and_streams_on_the_device(made, backend):
    noise = sample_noise(CONFIG, 3, seed=5)
    cpu = open_backend(GenerateRequest(**source(made, backend), device="cpu")).generate(noise, 10)
    gpu = open_backend(GenerateRequest(**source(made, backend), device="cuda"))
    assert gpu.device == "cuda"
    whole = gpu.generate(noise, 10)
    assert np.abs(whole - cpu).max() <= 1e-4
    state = gpu.initial_state(noise)
    parts = []
    for count in (4, 6):
        part, state = gpu.generate_chunk(noise, state, count)
        parts.append(part)
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, rtol=0, atol=1e-4)


@pytest.mark.parametrize("backend", ["eager", "torchscript", "onnxruntime"])
def test_cuda_writes_videos(made, tmp_path, backend):
    # GIF: the encoder is not what is tested here (the mp4 path has its own CPU tests), and
    # CUDA machines often lack imageio-ffmpeg's bundled ffmpeg.
    request = GenerateRequest(
        **source(made, backend),
        device="cuda",
        num_videos=2,
        frames=40,
        chunk_frames=16,
        out=str(tmp_path),
        format="gif",
    )
    result = generate_videos(request)
    assert result.device == "cuda" and result.plan.streaming
    for path in result.paths:
        assert iio.imread(path, index=None).shape == (40, 64, 64, 3)


def test_auto_picks_cuda(made):
    backend = open_backend(GenerateRequest(weights=made.weights, device="auto"))
    assert backend.device == "cuda"
