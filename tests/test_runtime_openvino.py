"""`--backend openvino`: the same files as onnxruntime from the same artifacts, streaming with
carried state, weights exported on the fly, torch-free, telemetry client not started, and a
missing runtime or an impossible device named in one error.

Needs the openvino package (the dev extra installs it); skipped with the reason otherwise,
except the missing-runtime test, which runs everywhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import imageio.v3 as iio
import numpy as np
import pytest
from click.testing import CliRunner

from vidsynth.cli import cli
from vidsynth.errors import MissingDependencyError, RuntimeBackendError
from vidsynth.export import export_artifacts, export_weights
from vidsynth.model.config import ModelConfig
from vidsynth.model.noise import sample_noise
from vidsynth.runtime import GenerateRequest, generate_videos
from vidsynth.runtime.backend import open_backend
from vidsynth.weights.demo import demo_model
from vidsynth.weights.format import save_weights

CONFIG = ModelConfig(ngf=8, hidden_size=16, image_size=64, cell="lstm", motion_mode="same-input")
BLOCK_TORCH = """
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "onnx", "safetensors"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked for this test)")
sys.meta_path.insert(0, Blocker())
"""
NO_TELEMETRY_PROBE = """
import sys
from vidsynth.runtime import GenerateRequest, generate_videos
generate_videos(GenerateRequest(artifacts=sys.argv[1], backend="openvino", device="cpu",
                                num_videos=2, frames=9, chunk_frames=4, format="png", out=sys.argv[2]))
loaded = sorted(m for m in sys.modules if m.startswith(("openvino_telemetry", "torch")))
print("openvino" in sys.modules, loaded)
"""


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("openvino")
    model = demo_model(CONFIG)
    save_weights(model, root / "weights", {"source": "test"})
    export_artifacts(model, root / "artifacts", formats=("onnx",))
    return SimpleNamespace(
        model=model, weights=str(root / "weights"), artifacts=str(root / "artifacts"), root=root
    )


@pytest.fixture
def openvino_installed():
    pytest.importorskip(
        "openvino", reason="openvino is not installed (pip install 'vidsynth[openvino]'); CI installs it"
    )


def sheet(made, backend: str, out, **options) -> np.ndarray:
    request = GenerateRequest(
        artifacts=made.artifacts,
        backend=backend,
        device="cpu",
        num_videos=3,
        frames=11,
        format="png",
        seed=3,
        out=str(out),
        **options,
    )
    return iio.imread(generate_videos(request).paths[0]).astype(int)


@pytest.mark.usefixtures("openvino_installed")
def test_openvino_writes_what_onnxruntime_writes(made, tmp_path):
    reference = sheet(made, "onnxruntime", tmp_path / "ort")
    assert np.abs(sheet(made, "openvino", tmp_path / "ov") - reference).max() <= 1
    streamed = sheet(
        made, "openvino", tmp_path / "ov-stream", chunk_frames=4
    )  # 4 + 4 + 3 frames, state carried
    assert np.abs(streamed - reference).max() <= 1


@pytest.mark.usefixtures("openvino_installed")
def test_openvino_from_weights_and_the_command_line(made, tmp_path):
    backend = open_backend(
        GenerateRequest(weights=made.weights, backend="openvino", device="cpu"), exporter=export_weights
    )
    noise = sample_noise(CONFIG, 2, seed=5)
    expected = open_backend(GenerateRequest(weights=made.weights, backend="eager", device="cpu")).generate(
        noise, 6
    )
    assert backend.name == "openvino" and "openvino" in backend.detail
    assert np.abs(backend.generate(noise, 6) - expected).max() <= 1e-4
    result = CliRunner().invoke(
        cli,
        [
            "generate",
            "--artifacts",
            made.artifacts,
            "--backend",
            "openvino",
            "--frames",
            "5",
            "--num-videos",
            "2",
            "--out",
            str(tmp_path / "v"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["video_000.mp4", "video_001.mp4"]


@pytest.mark.usefixtures("openvino_installed")
def test_openvino_runs_without_torch_and_loads_no_telemetry(made, tmp_path):
    blocker = tmp_path / "no_torch"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_TORCH)
    home = tmp_path / "home"  # where the telemetry client would write its client id (~/intel)
    home.mkdir()
    env = dict(
        os.environ,
        HOME=str(home),
        PYTHONPATH=os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")])),
    )
    result = subprocess.run(
        [sys.executable, "-c", NO_TELEMETRY_PROBE, made.artifacts, str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == "True []"
    assert list(home.iterdir()) == []
    assert (tmp_path / "out" / "sheet.png").is_file()
    script = subprocess.run(
        [
            sys.executable,
            "-m",
            "vidsynth",
            "generate",
            "--artifacts",
            made.artifacts,
            "--backend",
            "openvino",
            "--device",
            "cpu",
            "--frames",
            "3",
            "--format",
            "gif",
            "--out",
            str(tmp_path / "script"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert script.returncode == 0, script.stderr
    assert "openvino" in script.stderr


@pytest.mark.usefixtures("openvino_installed")
def test_openvino_refuses_cuda_and_bad_artifacts(made, tmp_path):
    with pytest.raises(RuntimeBackendError, match="the openvino backend runs on the CPU"):
        open_backend(GenerateRequest(artifacts=made.artifacts, backend="openvino", device="cuda"))
    with pytest.raises(RuntimeBackendError, match="no manifest.json"):
        open_backend(GenerateRequest(artifacts=str(tmp_path), backend="openvino", device="cpu"))


def test_missing_openvino_names_the_extra(made, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` now raises ImportError
    with pytest.raises(MissingDependencyError, match="pip install openvino"):
        open_backend(GenerateRequest(artifacts=made.artifacts, backend="openvino", device="cpu"))
    result = CliRunner().invoke(
        cli,
        ["generate", "--artifacts", made.artifacts, "--backend", "openvino", "--out", str(tmp_path / "v")],
    )
    assert result.exit_code == 1 and "pip install openvino" in result.output
    assert not (tmp_path / "v").exists()
