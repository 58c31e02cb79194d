"""Export options and failures: bad input refused before anything is written, interrupted or
failing exports leave the previous artifacts untouched, validation reports every mismatch
at once, lower precisions keep float32 at the boundary and are held to a PSNR floor."""

import copy
import hashlib
import json

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

import vidsynth.export.onnx_export as export_onnx
import vidsynth.export.torchscript as export_torchscript
import vidsynth.export.validate as validate
from vidsynth.artifacts.torchscript_ops import load_torchscript
from vidsynth.cli import cli
from vidsynth.errors import ExportError, InputError, RuntimeBackendError, ValidationError, WeightsError
from vidsynth.export import export_artifacts, read_manifest
from vidsynth.export.precision import deployable_copy, with_precision
from vidsynth.model.config import ModelConfig
from vidsynth.model.noise import sample_noise
from vidsynth.optional import onnxruntime_session
from vidsynth.weights.demo import demo_model
from vidsynth.weights.format import save_weights

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    return demo_model(ModelConfig(ngf=8, hidden_size=16))


@pytest.fixture(scope="module")
def weights_dir(model, tmp_path_factory):
    return save_weights(model, tmp_path_factory.mktemp("w") / "weights")


@pytest.fixture(scope="module")
def previous(model, tmp_path_factory):
    """A good export directory, and the sha256 of each of its files."""
    out = tmp_path_factory.mktemp("prev") / "art"
    export_artifacts(model, out)
    return out


def digests(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def leftovers(directory):
    """Temporary or backup siblings an export could leave behind."""
    return sorted(p.name for p in directory.parent.iterdir() if p.name.startswith(f".{directory.name}."))


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options,message",
    [
        (dict(opset=12), "unsupported ONNX opset 12; expected an integer from 13 to 20"),
        (dict(opset=21), "unsupported ONNX opset 21"),
        (dict(opset="17"), "unsupported ONNX opset '17'"),
        (dict(dtype="fp8"), "unknown dtype 'fp8'; expected one of: fp32, fp16, bf16"),
        (dict(dtype="bf16"), "bf16 is available for the torchscript format only"),
        (
            dict(formats=("onnx", "tflite")),
            "unknown export format 'tflite'; expected one of: torchscript, onnx",
        ),
        (dict(formats=()), "no export format given"),
        (dict(formats=("torchscript",), opset=17), "--opset applies to the onnx format only"),
    ],
)
def test_bad_options_refused_before_writing(model, tmp_path, options, message):
    out = tmp_path / "art"
    with pytest.raises(ExportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        export_artifacts(model, out, **options)
    assert not out.exists() and leftovers(out) == []


def test_not_a_generator_refused(tmp_path):
    with pytest.raises(ExportError, match="needs a vidsynth VideoGenerator or weights, got Linear"):
        export_artifacts(torch.nn.Linear(2, 2), tmp_path / "art")


def test_unknown_weights_refused(tmp_path):
    with pytest.raises(WeightsError, match="unknown weights 'no-such-weights'"):
        export_artifacts("no-such-weights", tmp_path / "art")
    assert not (tmp_path / "art").exists()


def test_existing_output_refused_without_force(model, previous):
    before = digests(previous)
    with pytest.raises(InputError, match="already exists and is not empty; pass --force"):
        export_artifacts(model, previous)
    assert digests(previous) == before


def test_unwritable_output_refused(model, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(InputError, match="cannot write into"):
        export_artifacts(model, blocker / "art")
    with pytest.raises(InputError, match="exists and is not a directory"):
        export_artifacts(model, blocker)


def test_force_replaces_a_previous_export(model, tmp_path):
    out = tmp_path / "art"
    export_artifacts(model, out, formats=("onnx",))
    manifest = export_artifacts(model, out, formats=("torchscript",), force=True)
    assert sorted(p.name for p in out.iterdir()) == ["generator.pt", "manifest.json"]
    assert set(manifest["files"]) == {"generator.pt"} and manifest["opset"] is None
    assert manifest["onnx_exporter"] is None
    assert leftovers(out) == []
    (out / "stale.txt").write_text("mine")  # not vidsynth's: --force must not delete it
    with pytest.raises(InputError, match="also holds stale.txt"):
        export_artifacts(model, out, formats=("torchscript",), force=True)
    assert (out / "stale.txt").read_text() == "mine"


def test_current_directory_as_output(model, tmp_path, monkeypatch):
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    export_artifacts(model, ".", formats=("torchscript",))
    assert sorted(p.name for p in (tmp_path / "here").iterdir()) == ["generator.pt", "manifest.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["here"]  # no temporary directory left


# -- interrupted and failing exports ------------------------------------------------------


@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError], ids=["interrupt", "error"])
def test_interrupted_export_keeps_previous_artifacts(model, previous, monkeypatch, failure):
    before = digests(previous)
    real_export_graph = export_onnx.export_graph
    calls = []

    def fail_on_second_graph(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:  # generator.pt and generator.onnx are written by now
            raise failure("simulated failure mid-export")
        return real_export_graph(*args, **kwargs)

    monkeypatch.setattr(export_onnx, "export_graph", fail_on_second_graph)
    with pytest.raises(failure, match="simulated failure"):
        export_artifacts(model, previous, force=True)
    assert len(calls) == 2
    assert digests(previous) == before
    assert leftovers(previous) == []
    read_manifest(previous)  # still a complete, verified export


def test_validation_failure_fails_export_and_keeps_previous(model, previous, monkeypatch):
    """A TorchScript file that drifts from eager fails the export with the figures."""
    before = digests(previous)
    real_script = export_torchscript.script_generator

    def script_perturbed(generator):
        drifted = copy.deepcopy(generator)
        with torch.no_grad():
            drifted.image.main[0].weight.add_(0.05)  # the written file no longer matches eager
        return real_script(drifted)

    monkeypatch.setattr(export_torchscript, "script_generator", script_perturbed)
    with pytest.raises(ValidationError) as caught:
        export_artifacts(model, previous, force=True)
    message = str(caught.value)
    assert "tolerance max abs 0.0001" in message
    for shape in ("batch 1, n_frames 7", "batch 4, n_frames 13"):
        assert f"torchscript video ({shape}): max abs error" in message
    assert "torchscript_streaming state_out" not in message  # the recurrence was untouched
    assert "onnx video" not in message
    assert digests(previous) == before and leftovers(previous) == []


def test_validation_collects_every_mismatch(model):
    """Shapes and values of several backends, reported in one error."""
    good = lambda noise, n: validate.eager_video(model, noise, n)[0]  # noqa: E731
    off = lambda noise, n: good(noise, n) + 1e-3  # noqa: E731
    short = lambda noise, n: good(noise, n)[:, :-1]  # noqa: E731
    with pytest.raises(ValidationError) as caught:
        validate.validate_backends(model, "fp32", {"ok": good, "off": off, "short": short}, {})
    lines = str(caught.value).splitlines()
    assert lines[0] == "export validation failed against eager PyTorch (fp32, tolerance max abs 0.0001):"
    assert (
        sum("off video" in line and "max abs error 0.001 > tolerance 0.0001" in line for line in lines) == 2
    )
    assert sum("short video has shape" in line for line in lines) == 2
    assert not any("ok video" in line for line in lines)


# -- manifest -----------------------------------------------------------------------------


def test_read_manifest_detects_tampering(previous, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(previous, copy)
    data = bytearray((copy / "generator.onnx").read_bytes())
    data[-1] ^= 0xFF
    (copy / "generator.onnx").write_bytes(bytes(data))
    with pytest.raises(RuntimeBackendError, match="generator.onnx does not match its sha256"):
        read_manifest(copy)
    assert read_manifest(copy, verify_hashes=False)["files"]
    (copy / "generator.pt").unlink()
    with pytest.raises(RuntimeBackendError, match="generator.pt is listed in manifest.json but missing"):
        read_manifest(copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "format_version": 2}))
    with pytest.raises(RuntimeBackendError, match="format_version 2"):
        read_manifest(copy, verify_hashes=False)
    with pytest.raises(RuntimeBackendError, match="no manifest.json"):
        read_manifest(tmp_path)


def test_manifest_module_is_torch_free():
    import subprocess
    import sys

    code = (
        "import sys, vidsynth.artifacts.manifest, vidsynth.artifacts.contract; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# -- lower precision ----------------------------------------------------------------------


def test_fp16_export_keeps_float32_boundary(model, tmp_path):
    manifest = export_artifacts(model, tmp_path / "art", dtype="fp16")
    validation = manifest["validation"]
    assert manifest["dtype"] == "fp16" and manifest["precision"]["motion"] == "fp32"
    assert set(validation["psnr_db_vs_fp32"]) == {
        "eager",
        "torchscript",
        "onnx",
        "torchscript_streaming",
        "onnx_streaming",
    }
    assert all(35 <= value < 200 for value in validation["psnr_db_vs_fp32"].values())
    graph = onnx.load(str(tmp_path / "art" / "generator.onnx")).graph
    assert onnx.TensorProto.FLOAT16 in {init.data_type for init in graph.initializer}
    session = onnxruntime_session(tmp_path / "art" / "generator.onnx", threads=1)
    assert [i.type for i in session.get_inputs()][:2] == ["tensor(float)", "tensor(float)"]
    noise = sample_noise(model.config, 2, seed=5)
    video = session.run(
        None, {"z_content": noise.z_content, "z_motion": noise.z_motion, "n_frames": np.array(6, np.int64)}
    )[0]
    assert video.dtype == np.float32 and video.shape == (2, 6, 3, 96, 96)
    with torch.inference_mode():
        fp32 = model(torch.from_numpy(noise.z_content), torch.from_numpy(noise.z_motion), 6).numpy()
    error = np.abs(video - fp32).max()
    assert 0 < error < 0.05  # really computed at lower precision, still close


def test_bf16_torchscript_export(model, tmp_path):
    manifest = export_artifacts(model, tmp_path / "art", formats=("torchscript",), dtype="bf16")
    assert manifest["dtype"] == "bf16"
    assert min(manifest["validation"]["psnr_db_vs_fp32"].values()) >= 35
    scripted, _ = load_torchscript(tmp_path / "art" / "generator.pt")
    with torch.inference_mode():
        video = scripted(torch.randn(2, 50), torch.randn(2, 10), 3)
    assert video.dtype == torch.float32


def test_psnr_floor_fails_validation(model, tmp_path):
    export_artifacts(model, tmp_path / "art", formats=("torchscript",), dtype="bf16")
    lowered, fp32 = with_precision(model, "bf16"), deployable_copy(model)
    with pytest.raises(
        ValidationError,
        match=r"torchscript bf16 video is [\d.]+ dB PSNR from float32, below the 500 dB minimum",
    ):
        validate.validate_export(lowered, tmp_path / "art", ("torchscript",), "bf16", fp32, min_psnr_db=500.0)


# -- command line -------------------------------------------------------------------------


def test_cli_export(weights_dir, tmp_path):
    out = tmp_path / "art"
    result = CliRunner().invoke(
        cli,
        ["export", "--weights", str(weights_dir), "--out", str(out), "--formats", "onnx", "--opset", "15"],
    )
    assert result.exit_code == 0, result.output
    assert "exported generator.onnx, generator_chunk.onnx (fp32)" in result.output
    assert read_manifest(out)["opset"] == 15
    again = CliRunner().invoke(cli, ["export", "--weights", str(weights_dir), "--out", str(out)])
    assert again.exit_code == 1
    assert again.output.strip().splitlines()[-1].startswith("Error: ") and "--force" in again.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["--weights", "nope"], "Error: unknown weights 'nope'"),
        (["--dtype", "int8"], "Error: unknown dtype 'int8'"),
        (["--opset", "99"], "Error: unsupported ONNX opset 99"),
        (["--formats", "torchscript,coreml"], "Error: unknown export format 'coreml'"),
    ],
)
def test_cli_export_bad_input(weights_dir, tmp_path, args, message):
    argv = ["export", "--weights", str(weights_dir), "--out", str(tmp_path / "art"), *args]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 1
    assert message in result.output
    assert not (tmp_path / "art").exists()


@pytest.mark.slow
def test_cli_export_demo_weights(tmp_path):
    """The full-size demo model, as in the README."""
    out = tmp_path / "art"
    result = CliRunner().invoke(cli, ["export", "--weights", "demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert set(manifest["files"]) == {"generator.pt", "generator.onnx", "generator_chunk.onnx"}
    assert max(manifest["validation"]["max_abs"].values()) <= 1e-4


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_export_of_a_cuda_model(model, tmp_path):
    on_gpu = copy.deepcopy(model).to("cuda")
    manifest = export_artifacts(on_gpu, tmp_path / "art")
    assert max(manifest["validation"]["max_abs"].values()) <= 1e-4
    assert next(on_gpu.parameters()).is_cuda  # the caller's model is left where it was


def test_export_into_an_existing_directory_is_refused_before_loading_the_model(previous):
    from entry_point import run_vidsynth

    before = digests(previous)
    result = run_vidsynth("export", "--weights", "no-such-weights", "--out", str(previous))
    assert result.returncode == 1
    assert "already exists and is not empty; pass --force" in result.stderr, result.stderr
    assert digests(previous) == before
