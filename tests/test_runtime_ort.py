"""The torch-free ONNX Runtime script, conditional models, and flat memory when streaming.

One conditional model (ngf=8, 64x64, GRU feedback, 3 named categories) is saved and exported once.
The script runs in subprocesses where `import torch` (and onnx, safetensors) fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from vidsynth.export import export_artifacts
from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import build_model
from vidsynth.model.noise import sample_noise
from vidsynth.runtime import GenerateRequest, generate_videos
from vidsynth.runtime.stream import to_uint8
from vidsynth.weights.format import save_weights

CONFIG = ModelConfig(
    ngf=8,
    image_size=64,
    cell="gru",
    motion_mode="feedback",
    n_categories=3,
    category_names=("wave", "jump", "bend"),
)
SIZE = CONFIG.image_size

TORCH_BLOCKER = '''
import sys

BLOCKED = ("torch", "onnx", "safetensors")


class Blocker:
    """Makes `import torch` (and the other libraries a serving image can leave out) fail."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked for this test)")
        return None


sys.meta_path.insert(0, Blocker())
'''

RSS_PROBE = """
import json, resource, sys
from vidsynth.runtime import GenerateRequest, generate_videos
source, lengths, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
for frames in lengths:  # ru_maxrss is a high-water mark: report it after each length
    generate_videos(GenerateRequest(**source, device="cpu", num_videos=1, frames=frames, chunk_frames=32,
                                    out=f"{out}/{frames}"))
    print("peak_rss_kib", frames, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("ort")
    model = build_model(CONFIG, seed=4).eval()
    save_weights(model, root / "weights", {"source": "test"})
    export_artifacts(model, root / "artifacts")
    blocker = root / "no_torch"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(TORCH_BLOCKER)
    return SimpleNamespace(
        model=model, weights=str(root / "weights"), artifacts=str(root / "artifacts"), blocker=blocker
    )


def torch_free(made, *args: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(made.blocker), os.environ.get("PYTHONPATH")])),
    )
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=120)


def ort_script(made, *args: str) -> subprocess.CompletedProcess:
    return torch_free(
        made, "-m", "vidsynth", "generate", "--artifacts", made.artifacts, "--device", "cpu", *args
    )


def reference_sheet(model, noise, n_frames: int) -> np.ndarray:
    with torch.no_grad():
        video = model(
            torch.from_numpy(noise.z_content),
            torch.from_numpy(noise.z_motion),
            n_frames,
            torch.from_numpy(noise.category),
        )
    pixels = to_uint8(video.numpy())
    b, t, s = pixels.shape[:3]
    return pixels.transpose(0, 2, 1, 3, 4).reshape(b * s, t * s, 3)


@pytest.mark.parametrize("module", ["torch", "torch.nn", "onnx", "safetensors"])
def test_the_blocker_really_blocks(made, module):
    result = torch_free(made, "-c", f"import {module}")
    assert result.returncode != 0 and "blocked for this test" in result.stderr


def test_torch_free_script_writes_the_videos_eager_makes(made, tmp_path):
    result = ort_script(
        made,
        "--num-videos",
        "3",
        "--frames",
        "5",
        "--format",
        "png",
        "--category",
        "2",
        "--seed",
        "4",
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(tmp_path / "sheet.png")]
    noise = sample_noise(CONFIG, 3, seed=4, category=2)
    assert noise.category.tolist() == [2, 2, 2]
    diff = np.abs(iio.imread(tmp_path / "sheet.png").astype(int) - reference_sheet(made.model, noise, 5))
    assert diff.max() <= 1  # float differences of ~1e-7 may cross a rounding boundary


def test_torch_free_script_streams_mp4(made, tmp_path):
    result = ort_script(
        made, "--num-videos", "2", "--frames", "21", "--chunk-frames", "8", "--out", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert [os.path.basename(p) for p in result.stdout.split()] == ["video_000.mp4", "video_001.mp4"]
    for path in result.stdout.split():
        assert iio.imread(path, index=None).shape == (21, SIZE, SIZE, 3)


def test_conditional_models_draw_a_category_per_video_unless_given(made, tmp_path):
    noise = sample_noise(CONFIG, 6, seed=1)
    assert noise.category.shape == (6,) and len(set(noise.category.tolist())) > 1
    for backend in ("eager", "onnxruntime"):
        src = {"weights": made.weights} if backend == "eager" else {"artifacts": made.artifacts}
        request = GenerateRequest(
            **src,
            backend=backend,
            device="cpu",
            num_videos=6,
            frames=3,
            format="png",
            seed=1,
            out=str(tmp_path / backend),
        )
        sheet = iio.imread(generate_videos(request).paths[0]).astype(int)
        assert np.abs(sheet - reference_sheet(made.model, noise, 3)).max() <= (0 if backend == "eager" else 1)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--category", "3"], "category must be in [0, 2] (0 = wave, 1 = jump, 2 = bend), got 3"),
        (["--frames", "0"], "frames must be a positive integer"),
        (["--backend", "eager"], "the eager backend runs weights, not export artifacts"),
        (["--format", "webm"], "unknown format 'webm'"),
    ],
)
def test_script_bad_input_is_one_error_line(made, tmp_path, args, fragment):
    out = tmp_path / "out"
    result = torch_free(
        made,
        "-m",
        "vidsynth",
        "generate",
        "--artifacts",
        made.artifacts,
        "--device",
        "cpu",
        "--out",
        str(out),
        *args,
    )
    assert result.returncode == 1 and result.stdout == ""
    lines = [
        line for line in result.stderr.strip().splitlines() if not line.startswith("--backend auto chose ")
    ]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and fragment in lines[0], result.stderr
    assert not out.exists()


def test_script_names_torch_when_weights_need_it_and_refuses_tampered_artifacts(made, tmp_path):
    result = torch_free(made, "-m", "vidsynth", "generate", "--out", str(tmp_path / "out"))
    (error,) = result.stderr.strip().splitlines()  # auto chooses nothing it cannot run
    assert result.returncode == 1 and error.startswith("Error: --backend auto: weights on the CPU need torch")
    assert "pip install torch" in error and "--artifacts" in error
    import shutil

    tampered = tmp_path / "tampered"
    shutil.copytree(made.artifacts, tampered)
    with open(tampered / "generator_chunk.onnx", "ab") as handle:
        handle.write(b"\0")
    result = torch_free(
        made, "-m", "vidsynth", "generate", "--artifacts", str(tampered), "--out", str(tmp_path / "out")
    )
    assert result.returncode == 1 and "generator_chunk.onnx" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 2  # what auto chose, then the one error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("backend", ["onnxruntime", "eager"])
def test_streaming_keeps_memory_flat(made, tmp_path, backend):
    """Peak RSS after 200 frames, then after 2000 more, streamed in 32-frame chunks, in one
    fresh process. Made in one call instead (--chunk-frames 100000), a 200- and a 2000-frame
    video differed by about 370-490 MiB of peak RSS on an ngf=8, 64x64 model."""
    import json

    source = {"artifacts": made.artifacts} if backend == "onnxruntime" else {"weights": made.weights}
    args = ["-c", RSS_PROBE, json.dumps(source), "[200, 2000]", str(tmp_path)]
    # The onnxruntime run goes without torch; eager needs it (one thread: on a busy machine
    # torch's spinning worker threads made this run several times slower).
    result = (
        torch_free(made, *args)
        if backend == "onnxruntime"
        else subprocess.run(
            [sys.executable, *args],
            env=dict(os.environ, OMP_NUM_THREADS="1"),
            capture_output=True,
            text=True,
            timeout=120,
        )
    )
    assert result.returncode == 0, result.stderr
    peaks = {
        int(frames): int(kib) for _, frames, kib in (line.split() for line in result.stdout.splitlines())
    }
    for frames in (200, 2000):
        assert iio.imread(tmp_path / str(frames) / "video_000.mp4", index=None).shape[0] == frames
    growth_mib = (peaks[2000] - peaks[200]) / 1024
    assert growth_mib < 24, f"peak RSS grew {growth_mib:.1f} MiB from 200 to 2000 frames: {peaks}"
