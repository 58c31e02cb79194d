"""The while_loop formulation and the torch.export-based ONNX exporter that uses it where the
TorchScript-based one is missing: same contract, same validation, recorded in the manifest."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from vidsynth.errors import ExportError
from vidsynth.export import export_artifacts
from vidsynth.export.onnx_export import EXPORTERS, op_types
from vidsynth.export.while_loop import WhileLoopGenerator
from vidsynth.model.config import ModelConfig
from vidsynth.model.noise import sample_noise
from vidsynth.optional import onnxruntime_session
from vidsynth.weights.demo import demo_model

ATOL = 1e-4
FAMILIES = {
    "lstm-same-input": ModelConfig(ngf=8, hidden_size=16, image_size=64),
    "gru-feedback-categories": ModelConfig(
        ngf=8, hidden_size=16, image_size=64, cell="gru", motion_mode="feedback", n_categories=3
    ),
}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("family", FAMILIES, ids=list(FAMILIES))
def test_while_loop_formulation_equals_the_model(family):
    config = FAMILIES[family]
    model = demo_model(config)
    noise = sample_noise(config, 3, seed=5)
    content, motion = torch.from_numpy(noise.z_content), torch.from_numpy(noise.z_motion)
    category = None if noise.category is None else torch.from_numpy(noise.category)
    state = model.initial_state(motion)
    with torch.inference_mode():
        video, state_out = WhileLoopGenerator(model, True)(content, state, torch.tensor(6), category)
        expected, expected_state = model.generate_chunk(content, state, 6, category)
        whole = WhileLoopGenerator(model, False)(content, motion, torch.tensor(6), category)
    assert (
        torch.equal(video, expected)
        and torch.equal(state_out, expected_state)
        and torch.equal(whole, expected)
    )


def test_training_mode_is_refused():
    with pytest.raises(ValueError, match="eval-mode"):
        WhileLoopGenerator(demo_model(FAMILIES["lstm-same-input"]).train(), streaming=False)


@pytest.mark.parametrize("family", FAMILIES, ids=list(FAMILIES))
def test_dynamo_exporter_writes_the_same_contract_and_passes_validation(family, tmp_path):
    pytest.importorskip("onnxscript")
    config = FAMILIES[family]
    model = demo_model(config)
    manifest = export_artifacts(model, tmp_path / "out", formats=("onnx",), onnx_exporter="dynamo")
    assert manifest["onnx_exporter"] == EXPORTERS["dynamo"]
    # the image generator's rewrites apply; the while_loop steps the literal motion cells
    assert manifest["rewrites"] == ["fold-image-bn", "sub-pixel-last"]
    assert max(manifest["validation"]["max_abs"].values()) <= ATOL
    assert set(manifest["validation"]["max_abs"]) == {"onnx", "onnx_streaming"}
    graph = onnx.load(str(tmp_path / "out" / "generator.onnx")).graph
    assert "Loop" in op_types(graph)
    # beyond the validation shapes: a long video and a batch of one
    session = onnxruntime_session(tmp_path / "out" / "generator.onnx", threads=1)
    noise = sample_noise(config, 1, seed=9)
    feed = {"z_content": noise.z_content, "z_motion": noise.z_motion, "n_frames": np.array(40, np.int64)}
    category = None
    if noise.category is not None:
        feed["category"] = noise.category
        category = torch.from_numpy(noise.category)
    video = session.run(["video"], feed)[0]
    with torch.inference_mode():
        expected = model(
            torch.from_numpy(noise.z_content), torch.from_numpy(noise.z_motion), 40, category
        ).numpy()
    assert video.shape == expected.shape and np.abs(video - expected).max() <= ATOL


def test_unknown_exporter_is_refused(tmp_path):
    with pytest.raises(
        ExportError, match="unknown ONNX exporter 'jit'; expected one of: torchscript, dynamo"
    ):
        export_artifacts(demo_model(FAMILIES["lstm-same-input"]), tmp_path / "out", onnx_exporter="jit")
    assert not (tmp_path / "out").exists()


def test_default_manifest_names_the_torchscript_based_exporter_where_torch_has_it(tmp_path):
    from vidsynth.export.onnx_export import default_exporter

    manifest = export_artifacts(demo_model(FAMILIES["lstm-same-input"]), tmp_path / "out", formats=("onnx",))
    assert manifest["onnx_exporter"] == EXPORTERS[default_exporter()]


def test_opsets_below_what_the_dynamo_exporter_writes_are_refused(tmp_path):
    with pytest.raises(ExportError, match="opset 17 is below 18"):
        export_artifacts(
            demo_model(FAMILIES["lstm-same-input"]), tmp_path / "out", opset=17, onnx_exporter="dynamo"
        )
    assert not (tmp_path / "out").exists()
