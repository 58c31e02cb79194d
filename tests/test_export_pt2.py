""".pt2 export (AOTInductor packages): eager = pt2 at any batch and frame count, streaming =
one-shot, packages from another torch refused, and `generate --backend pt2` from the CLI.

AOTInductor compiles C++ (minutes on a small machine), so one small conditional model
(GRU feedback, categories: every optional input) is exported once for the module.
"""

from __future__ import annotations

import json
import re
import shutil
from types import SimpleNamespace

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from entry_point import run_vidsynth

from vidsynth.artifacts.contract import PT2_IMAGE_FILE as IMAGE_FILE
from vidsynth.artifacts.contract import PT2_MOTION_FILE as MOTION_FILE
from vidsynth.artifacts.manifest import read_manifest
from vidsynth.artifacts.pt2 import load_package, load_pt2
from vidsynth.cli import cli
from vidsynth.errors import ExportError, RuntimeBackendError
from vidsynth.export import export_artifacts
from vidsynth.model.config import ModelConfig
from vidsynth.model.noise import sample_noise
from vidsynth.runtime import GenerateRequest
from vidsynth.runtime.backend import open_backend
from vidsynth.runtime.stream import to_uint8
from vidsynth.weights.demo import demo_model
from vidsynth.weights.format import save_weights

ATOL = 1e-4
CONFIG = ModelConfig(ngf=8, hidden_size=16, image_size=64, cell="gru", motion_mode="feedback", n_categories=3)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One export, made by `vidsynth export --formats pt2` as users run it."""
    root = tmp_path_factory.mktemp("pt2")
    model = demo_model(CONFIG)
    save_weights(model, root / "weights", {"source": "test"})
    exported = run_vidsynth(
        "export",
        "--weights",
        str(root / "weights"),
        "--formats",
        "pt2",
        "--out",
        str(root / "artifacts"),
        timeout=1800,
    )
    assert exported.returncode == 0, exported.stderr
    manifest = read_manifest(root / "artifacts")
    generator = load_pt2(root / "artifacts", CONFIG, torch.__version__)
    return SimpleNamespace(
        root=root,
        model=model,
        manifest=manifest,
        generator=generator,
        artifacts=str(root / "artifacts"),
        stderr=exported.stderr,
    )


def test_pt2_export_says_nothing_of_torch_internals(made):
    assert "FutureWarning" not in made.stderr and "Warning" not in made.stderr, made.stderr


def eager(model, noise, n_frames):
    with torch.inference_mode():
        return model(
            torch.from_numpy(noise.z_content),
            torch.from_numpy(noise.z_motion),
            n_frames,
            torch.from_numpy(noise.category),
        ).numpy()


def pt2(generator, noise, n_frames):
    with torch.inference_mode():
        return generator(
            torch.from_numpy(noise.z_content),
            torch.from_numpy(noise.z_motion),
            n_frames,
            torch.from_numpy(noise.category),
        ).numpy()


def test_manifest_records_the_packages_the_torch_and_the_validation(made):
    manifest = made.manifest
    assert manifest["formats"] == ["pt2"]
    assert set(manifest["files"]) == {MOTION_FILE, IMAGE_FILE}
    assert manifest["pt2"]["torch_version"] == torch.__version__
    assert "aoti_compile_and_package" in manifest["pt2"]["packager"]
    assert set(manifest["validation"]["max_abs"]) == {"pt2", "pt2_streaming"}
    assert max(manifest["validation"]["max_abs"].values()) <= ATOL
    metadata = load_package(made.root / "artifacts" / MOTION_FILE, torch.__version__).get_metadata()
    assert metadata["torch_version"] == torch.__version__
    assert json.loads(metadata["config"]) == CONFIG.to_dict()


@pytest.mark.parametrize("batch", [1, 3, 8])
@pytest.mark.parametrize("n_frames", [1, 2, 37])
def test_one_package_serves_any_batch_and_frame_count(made, batch, n_frames):
    noise = sample_noise(CONFIG, batch, seed=100 + batch * n_frames)
    expected = eager(made.model, noise, n_frames)
    video = pt2(made.generator, noise, n_frames)
    assert video.shape == (batch, n_frames, 3, 64, 64) and video.dtype == np.float32
    assert np.abs(video - expected).max() <= ATOL
    assert np.abs(expected).max() > 0.1  # demo weights: videos with contrast, so errors would show


def test_chunks_with_carried_state_equal_one_call(made):
    noise = sample_noise(CONFIG, 2, seed=7)
    content, motion, category = (
        torch.from_numpy(a) for a in (noise.z_content, noise.z_motion, noise.category)
    )
    parts = []
    with torch.inference_mode():
        state = made.generator.initial_state(motion)
        for n_frames in (1, 5, 8):
            video, state = made.generator.generate_chunk(content, state, n_frames, category)
            parts.append(video.numpy())
        _, expected_state = made.model.generate_chunk(content, made.model.initial_state(motion), 14, category)
    assert np.abs(np.concatenate(parts, axis=1) - eager(made.model, noise, 14)).max() <= ATOL
    assert np.abs(state.numpy() - expected_state.numpy()).max() <= ATOL


def test_package_from_another_torch_is_refused_naming_both_versions(made, monkeypatch):
    built_with = torch.__version__
    monkeypatch.setattr(torch, "__version__", "2.99.0")
    request = GenerateRequest(artifacts=made.artifacts, backend="pt2", device="cpu").validate()
    with pytest.raises(
        RuntimeBackendError, match=rf"compiled by torch {re.escape(built_with)}.*this is torch 2\.99\.0"
    ):
        open_backend(request)
    # the package itself says which torch compiled it, whatever a manifest claims
    with pytest.raises(RuntimeBackendError, match=rf"compiled by torch {re.escape(built_with)}"):
        load_package(made.root / "artifacts" / IMAGE_FILE, made_with="2.99.0")


def test_pt2_exports_fp32_only(tmp_path):
    with pytest.raises(ExportError, match="pt2 format is exported in fp32 only"):
        export_artifacts(demo_model(CONFIG), tmp_path / "out", formats=("pt2",), dtype="fp16")
    assert not (tmp_path / "out").exists()


def run_cli(*args: str):
    return CliRunner().invoke(cli, ["generate", *args], catch_exceptions=False)


def test_generate_with_the_pt2_backend_writes_the_videos_eager_makes(made, tmp_path):
    out = tmp_path / "out"
    result = run_cli(
        "--artifacts",
        made.artifacts,
        "--backend",
        "pt2",
        "--device",
        "cpu",
        "--format",
        "png",
        "--num-videos",
        "2",
        "--frames",
        "6",
        "--chunk-frames",
        "4",
        "--category",
        "1",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "pt2" in result.output
    sheet = iio.imread(out / "sheet.png")
    noise = sample_noise(CONFIG, 2, seed=0, category=1)
    expected = to_uint8(eager(made.model, noise, 6))  # (B, T, H, W, 3)
    expected_sheet = expected.transpose(0, 2, 1, 3, 4).reshape(2 * 64, 6 * 64, 3)
    assert np.abs(sheet.astype(int) - expected_sheet.astype(int)).max() <= 1  # rounding at level boundaries


def assert_one_error_line(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_pt2_backend_bad_input_is_one_error_line(made, tmp_path):
    out = tmp_path / "out"
    assert_one_error_line(
        run_cli("--artifacts", made.artifacts, "--backend", "pt2", "--device", "cuda", "--out", str(out)),
        "compiled for the CPU",
    )
    without = tmp_path / "without"
    shutil.copytree(made.artifacts, without)
    manifest = json.loads((without / "manifest.json").read_text())
    del manifest["files"][IMAGE_FILE]
    (without / "manifest.json").write_text(json.dumps(manifest))
    assert_one_error_line(
        run_cli("--artifacts", str(without), "--backend", "pt2", "--device", "cpu", "--out", str(out)),
        IMAGE_FILE,
        "pt2 format",
    )
    assert not out.exists()
