"""The ONNX graphs' inference rewrites: what each graph holds, which rewrites apply to which
model, and manifests that name a newer format or an unknown rewrite refused with the versions.

The equivalence of the default rewritten graphs over every family and shape is in
test_export.py (the default export is the optimized one).
"""

import json
import shutil

import onnx
import pytest
from click.testing import CliRunner

from vidsynth.artifacts.contract import GRAPH_REWRITES
from vidsynth.cli import cli
from vidsynth.errors import ExportError, RuntimeBackendError
from vidsynth.export import export_artifacts, read_manifest
from vidsynth.export.onnx_export import op_types
from vidsynth.export.rewrites import DEFAULT_REWRITES, applicable_rewrites
from vidsynth.model.config import ModelConfig
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
            assert len(body) < len(literal_body)
            assert not {"Shape", "Gather", "Div"} & set(body)  # the gates split at fixed widths
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
    # the candidates that did not win are bench/graphs.py's experiments, not the exporter's
    for experiment in ("latent-matmul", "sub-pixel-upsampling"):
        with pytest.raises(ExportError, match=f"unknown graph rewrite '{experiment}'"):
            applicable_rewrites(same_input, (experiment,))
    with pytest.raises(ExportError, match="fold-motion-bn comes with the recurrence rewrite"):
        applicable_rewrites(same_input, ("fold-motion-bn",))
    assert set(DEFAULT_REWRITES) <= set(GRAPH_REWRITES)


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
