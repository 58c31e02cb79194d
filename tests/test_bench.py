"""The benchmark: the reference code makes vidsynth's videos from the same weights, the quick
mode runs end to end on a tiny model and writes its three files, bad options fail cleanly.
No timing is asserted anywhere."""

import importlib.util
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vidsynth.artifacts.contract import DEFAULT_OPSET
from vidsynth.bench.graphs import EXPERIMENTS, variant_model
from vidsynth.bench.reference import ReferenceGenerator
from vidsynth.bench.run import run_benchmark
from vidsynth.cli import cli
from vidsynth.export.onnx_export import export_graph
from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import build_model
from vidsynth.model.noise import sample_noise
from vidsynth.optional import onnxruntime_session
from vidsynth.weights.demo import demo_model
from vidsynth.weights.format import save_weights

TINY = ModelConfig(ngf=8)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    directory = tmp_path_factory.mktemp("weights") / "tiny"
    save_weights(demo_model(TINY), directory, {"source": "test"})
    return str(directory)


@pytest.mark.parametrize(
    "config",
    [TINY, TINY.replace(cell="gru", motion_mode="feedback"), TINY.replace(n_categories=3, image_size=64)],
    ids=["lstm-same-input", "gru-feedback", "conditional-64"],
)
def test_reference_code_makes_the_same_videos(config):
    model = build_model(config, seed=3).eval()
    reference = ReferenceGenerator.from_model(model)
    z_content, z_motion = torch.randn(3, config.d_content), torch.randn(3, config.d_motion)
    extra = (torch.tensor([0, 2, 1]),) if config.n_categories else ()
    with torch.no_grad():
        ours = model(z_content, z_motion, 9, *extra)
        theirs = reference(z_content, z_motion, 9, *extra)
    assert theirs.shape == ours.shape
    assert torch.allclose(theirs, ours, atol=1e-5)


@pytest.mark.parametrize("cell,mode", [("lstm", "same-input"), ("gru", "feedback")])
@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_graph_experiments_compute_the_same_video(tmp_path, cell, mode, experiment, one_thread):
    """The rewrites bench/graphs.py times against the export's own stay correct, so that its
    measurement means something."""
    model = demo_model(ModelConfig(ngf=8, hidden_size=16, cell=cell, motion_mode=mode))
    rewritten, applied = variant_model(model, f"default + {experiment}")
    kinds = [type(layer).__name__ for layer in rewritten.image]
    assert applied[-1] == experiment and (kinds[0] == "LatentProjection") == (experiment == "latent-matmul")
    assert kinds.count("SubPixelConvTranspose") == (4 if experiment == "sub-pixel-upsampling" else 1)
    export_graph(rewritten, tmp_path / "g.onnx", DEFAULT_OPSET, rewrites=applied)
    session = onnxruntime_session(tmp_path / "g.onnx", threads=1)
    for batch, n_frames in ((1, 1), (3, 23)):
        noise = sample_noise(model.config, batch, seed=n_frames)
        with torch.inference_mode():
            eager = model(torch.from_numpy(noise.z_content), torch.from_numpy(noise.z_motion), n_frames)
        feed = {
            "z_content": noise.z_content,
            "z_motion": noise.z_motion,
            "n_frames": np.array(n_frames, np.int64),
        }
        assert np.abs(session.run(["video"], feed)[0] - eager.numpy()).max() <= 1e-4


def test_quick_run_writes_results(tiny_weights, tmp_path, caplog):
    caplog.set_level("INFO", logger="vidsynth")
    out = tmp_path / "results"
    # One thread: two would wait on each other whenever the suite's other work takes a core.
    results = run_benchmark(weights=tiny_weights, out=out, quick=True, threads=1)
    assert any(message.startswith(f"wrote {out}/results.json") for message in caplog.messages)
    assert {p.name for p in out.iterdir()} >= {"results.json", "results.md", "latency.png"}
    saved = json.loads((out / "results.json").read_text())
    labels = {c["label"] for c in saved["contenders"]}
    assert {
        "reference fp32",
        "eager fp32",
        "eager bf16",
        "torchscript fp32",
        "onnxruntime fp32",
        "optimized fp32",
        "optimized bf16",
    } <= labels
    if importlib.util.find_spec("openvino") is not None:
        assert "openvino fp32" in labels
    shapes = {(b, t) for b in (1, 2) for t in (4, 8)}
    for label in labels:
        measured = {(r["batch"], r["frames"]) for r in saved["rows"] if r["label"] == label}
        assert measured == shapes, label
    for row in saved["rows"]:
        assert row["p50_ms"] > 0 and row["n"] >= 1
        assert row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["frames_per_s"] == pytest.approx(row["batch"] * row["frames"] / (row["p50_ms"] / 1e3))
        assert 0 < row["peak_fraction"]
        assert row["ttff_ms"] > 0
        if row["backend"] == "reference":
            assert row["speedup_vs_reference"] == pytest.approx(1.0)
    # Same weights and noise: every fp32 backend matches eager; bf16 stays close.
    for contender in saved["contenders"]:
        error = contender["max_abs_err_vs_eager_fp32"]
        assert error < (1e-4 if contender["precision"] == "fp32" else 0.1), contender["label"]
    assert set(saved["limit"]["matmul"]) == {"fp32", "bf16"}
    assert saved["motion"]["us_per_step"] and all(v > 0 for v in saved["motion"]["us_per_step"].values())
    assert saved["machine"]["threads"]["torch_intra_op"] == saved["machine"]["threads"]["ort_intra_op"] == 1
    table = (out / "results.md").read_text()
    assert "| reference | fp32 |" in table and "onnxruntime" in table
    assert results["rows"] and len(results["rows"]) == len(saved["rows"])


def test_cli_bench_selected_backend(tiny_weights, tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "--quick",
            "--weights",
            tiny_weights,
            "--backend",
            "eager",
            "--precision",
            "fp32",
            "--batch",
            "8",
            "--frames",
            "64",
            "--threads",  # as in test_quick_run_writes_results
            "1",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "r" / "results.json").read_text())
    assert [(r["label"], r["batch"], r["frames"]) for r in saved["rows"]] == [("eager fp32", 8, 64)]
    # At the targets' shape the matmul limit is timed between the repeats too.
    assert saved["limit"]["interleaved_at_focus"]["fp32"]["flops_per_s"] > 0
    assert saved["rows"][0]["peak_fraction_interleaved"] > 0
    assert saved["targets"]["fp32_peak_fraction"]["against"].startswith("matmul peak timed interleaved")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--backend", "tensorflow"], "unknown backend 'tensorflow'"),
        (["--precision", "int3"], "unknown precision 'int3'"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--batch", "0"], "batch sizes and frame counts must be >= 1"),
    ],
)
def test_cli_bench_bad_options(tiny_weights, tmp_path, args, message):
    result = CliRunner().invoke(
        cli, ["bench", "--quick", "--weights", tiny_weights, "--out", str(tmp_path / "r"), *args]
    )
    assert result.exit_code == 1
    assert message in result.output
    assert not (tmp_path / "r").exists()


def test_cli_bench_on_conditional_weights_finishes(tmp_path):
    """The default weights are conditional: every measurement, the last (levers) included."""
    from entry_point import run_vidsynth

    weights = tmp_path / "conditional"
    save_weights(demo_model(ModelConfig(ngf=8, image_size=64, n_categories=3)), weights, {"source": "test"})
    result = run_vidsynth(
        "bench",
        "--quick",
        "--weights",
        str(weights),
        "--backend",
        "eager",
        "--precision",
        "fp32",
        "--batch",
        "1",
        "--frames",
        "2",
        "--out",
        str(tmp_path / "r"),
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    saved = json.loads((tmp_path / "r" / "results.json").read_text())
    assert saved["levers"]["rows"] and saved["config"]["n_categories"] == 3
