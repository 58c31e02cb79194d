"""The ONNX graphs' inference rewrites: what each graph holds, which rewrites apply to which
model, the rewrites left off by default still computing the same video, and manifests that
name a newer format or an unknown rewrite refused with the versions.

The equivalence of the default rewritten graphs over every family and shape is in
test_export.py (the default export is the optimized one).
"""

import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from vidsynth.artifacts.contract import GRAPH_REWRITES
from vidsynth.cli import cli
from vidsynth.errors import ExportError, RuntimeBackendError
from vidsynth.export import export_artifacts, read_manifest
from vidsynth.export.onnx_export import export_graph, op_types
from vidsynth.export.rewrites import DEFAULT_REWRITES, applicable_rewrites, rewrite_for_export
from vidsynth.model.config import ModelConfig
from vidsynth.model.inference import LeanFeedbackMotion
from vidsynth.model.noise import sample_noise
from vidsynth.optional import onnxruntime_session
from vidsynth.version import __version__
from vidsynth.weights.demo import demo_model

pytestmark = pytest.mark.usefixtures("one_thread")
ATOL = 1e-4


def small_model(**changes):
    return demo_model(ModelConfig(ngf=8, hidden_size=16, **changes))


def graph_ops(path):
    return op_types(onnx.load(str(path)).graph)


def loop_body_ops(path):
    loop = next(node for node in onnx.load(str(path)).graph.node if node.op_type == "Loop")
    body = next(a.g for a in loop.attribute if a.name == "body")
    return op_types(body)


@pytest.fixture(scope="module", params=["same-input", "feedback"])
def both_exports(request, tmp_path_factory):
    """The same GRU model exported with and without the rewrites (ONNX only)."""
    model = small_model(cell="gru", motion_mode=request.param)
    root = tmp_path_factory.mktemp(request.param)
    optimized = export_artifacts(model, root / "optimized", formats=("onnx",))
    literal = export_artifacts(model, root / "literal", formats=("onnx",), optimize=False)
    return model, root, optimized, literal


def test_optimized_graphs_fold_batch_norms_and_fuse_the_recurrence(both_exports):
    model, root, optimized, literal = both_exports
    feedback = model.config.motion_mode == "feedback"
    recurrence = "lean-feedback-loop" if feedback else "fused-recurrence"
    assert optimized["rewrites"] == ["fold-motion-bn", "fold-image-bn", recurrence, "sub-pixel-last"]
    assert literal["rewrites"] == []
    for name in ("generator.onnx", "generator_chunk.onnx"):
        new, old = graph_ops(root / "optimized" / name), graph_ops(root / "literal" / name)
        assert "BatchNormalization" in old and "BatchNormalization" not in new
        assert "Loop" in old
        if feedback:
            body, literal_body = (
                loop_body_ops(root / "optimized" / name),
                loop_body_ops(root / "literal" / name),
            )
            assert sum(op in ("MatMul", "Gemm") for op in body) == 1  # one matrix product per step
            assert sum(op in ("MatMul", "Gemm") for op in literal_body) >= 3
            assert len(body) < 0.6 * len(literal_body)
        else:
            assert "GRU" in new and "Loop" not in new
        assert old.count("ConvTranspose") == 5 and new.count("ConvTranspose") == 4  # the last one sub-pixel
        assert new.count("Conv") == 1


def test_no_optimize_from_the_command_line(tmp_path):
    result = CliRunner().invoke(
        cli,
        ["export", "--weights", "demo", "--out", str(tmp_path / "a"), "--formats", "onnx", "--no-optimize"],
    )
    assert result.exit_code == 0, result.output
    assert "rewrites" not in result.output
    assert read_manifest(tmp_path / "a")["rewrites"] == []
    assert "BatchNormalization" in graph_ops(tmp_path / "a" / "generator.onnx")


@pytest.mark.parametrize("cell,mode", [("lstm", "same-input"), ("gru", "feedback")])
def test_rewrites_left_off_by_default_compute_the_same_video(tmp_path, cell, mode):
    """latent-matmul and sub-pixel-upsampling did not win on either runtime (bench/graphs.py)
    but stay correct, so that measurement means something."""
    model = small_model(cell=cell, motion_mode=mode, image_size=96)
    rewritten, applied = rewrite_for_export(
        model, DEFAULT_REWRITES + ("latent-matmul", "sub-pixel-upsampling")
    )
    assert {"latent-matmul", "sub-pixel-upsampling"} <= set(applied) and "sub-pixel-last" not in applied
    assert sum(type(layer).__name__ == "SubPixelConvTranspose" for layer in rewritten.image) == 4
    path = tmp_path / "g.onnx"
    export_graph(rewritten, path, 17, rewrites=applied)
    session = onnxruntime_session(path, threads=1)
    for batch, n_frames in ((1, 1), (3, 23)):
        noise = sample_noise(model.config, batch, seed=n_frames)
        with torch.inference_mode():
            eager = model(
                torch.from_numpy(noise.z_content), torch.from_numpy(noise.z_motion), n_frames
            ).numpy()
        feed = {
            "z_content": noise.z_content,
            "z_motion": noise.z_motion,
            "n_frames": np.array(n_frames, np.int64),
        }
        assert np.abs(session.run(["video"], feed)[0] - eager).max() <= ATOL


def test_rewrite_choices_are_checked():
    same_input, feedback = small_model(), small_model(cell="gru", motion_mode="feedback")
    assert applicable_rewrites(same_input) == (
        "fold-motion-bn",
        "fold-image-bn",
        "fused-recurrence",
        "sub-pixel-last",
    )
    assert applicable_rewrites(feedback) == (
        "fold-motion-bn",
        "fold-image-bn",
        "lean-feedback-loop",
        "sub-pixel-last",
    )
    assert applicable_rewrites(feedback, ("fold-image-bn",)) == ("fold-image-bn",)
    with pytest.raises(
        ExportError, match="unknown graph rewrite 'winograd'; expected one of: fold-motion-bn"
    ):
        applicable_rewrites(same_input, ("winograd",))
    with pytest.raises(ExportError, match="add fold-image-bn"):
        applicable_rewrites(same_input, ("sub-pixel-last",))
    with pytest.raises(ExportError, match="fold-motion-bn comes with the recurrence rewrite"):
        applicable_rewrites(same_input, ("fold-motion-bn",))
    assert set(DEFAULT_REWRITES) <= set(GRAPH_REWRITES)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_lean_feedback_loop_follows_the_literal_recurrence(cell):
    model = small_model(cell=cell, motion_mode="feedback")
    lean = torch.jit.script(LeanFeedbackMotion(model.motion, cell))
    z_motion = torch.from_numpy(sample_noise(model.config, 5, seed=2).z_motion)
    with torch.inference_mode():
        state = model.initial_state(z_motion)
        expected, expected_state = model.motion.rollout(state, 300)
        codes, final = lean.rollout(state, 300)
        # continuing from a carried state is the same as one long rollout
        first, middle = lean.rollout(state, 120)
        rest, _ = lean.rollout(middle, 180)
    assert (codes - expected).abs().max() <= ATOL
    assert (final - expected_state).abs().max() <= ATOL
    assert (torch.cat([first, rest]) - expected).abs().max() <= ATOL


# -- refusing what this vidsynth cannot read -----------------------------------------------


@pytest.fixture
def copied(both_exports, tmp_path):
    _, root, _, _ = both_exports
    target = tmp_path / "copy"
    shutil.copytree(root / "optimized", target)
    return target


def rewrite_manifest(directory, **changes):
    manifest = json.loads((directory / "manifest.json").read_text())
    (directory / "manifest.json").write_text(json.dumps({**manifest, **changes}))


def test_newer_format_refused_with_both_versions(copied):
    rewrite_manifest(copied, format_version=99, vidsynth_version="7.0.0")
    with pytest.raises(RuntimeBackendError) as error:
        read_manifest(copied)
    message = str(error.value)
    assert "written by vidsynth 7.0.0 in format_version 99" in message
    assert f"this vidsynth {__version__} reads format_version 1" in message


def test_unknown_rewrite_refused_with_the_versions(copied):
    rewrite_manifest(copied, rewrites=["fold-image-bn", "int4-weights"], vidsynth_version="0.9.0")
    with pytest.raises(RuntimeBackendError) as error:
        read_manifest(copied)
    message = str(error.value)
    assert "['int4-weights'] unknown to this vidsynth" in message and "written by vidsynth 0.9.0" in message
    rewrite_manifest(copied, rewrites="fold-image-bn")
    with pytest.raises(RuntimeBackendError, match="expected a list of names"):
        read_manifest(copied)


def test_generate_refuses_an_unknown_rewrite(copied, tmp_path):
    rewrite_manifest(copied, rewrites=["int4-weights"])
    result = CliRunner().invoke(
        cli, ["generate", "--artifacts", str(copied), "--out", str(tmp_path / "v"), "--frames", "2"]
    )
    assert result.exit_code == 1
    assert "int4-weights" in result.output and not (tmp_path / "v").exists()
