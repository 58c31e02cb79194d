"""Messages go through `logging`: the library prints nothing on its own, the CLI prints them on
stderr as plain text (warnings prefixed), `-v`/`-q` set how much; the runtime exports weights
for artifact backends only with an exporter its caller passes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from vidsynth.cli import cli
from vidsynth.errors import RuntimeBackendError
from vidsynth.export import export_weights
from vidsynth.model.config import ModelConfig
from vidsynth.runtime import GenerateRequest, generate_videos
from vidsynth.runtime.backend import open_backend
from vidsynth.runtime.hardware import Hardware
from vidsynth.weights.demo import demo_model
from vidsynth.weights.format import save_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    directory = tmp_path_factory.mktemp("messages") / "weights"
    save_weights(demo_model(ModelConfig(ngf=8, image_size=64)), directory, {"source": "test"})
    return str(directory)


def generate(weights: str, out, *options: str, group: tuple[str, ...] = ()):
    """`vidsynth [group] generate` of one 2-frame sheet from `weights`."""
    sheet = ["--device", "cpu", "--num-videos", "1", "--frames", "2", "--format", "png", "--out", str(out)]
    command = [*group, "generate", "--weights", weights, *sheet, *options]
    return CliRunner().invoke(cli, command, catch_exceptions=False)


def test_the_library_prints_nothing_on_its_own():
    code = (
        "import logging, vidsynth.runtime.backend as b; "
        "b.logger.warning('a warning'); b.logger.info('a message')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout == "" and result.stderr == ""


def test_the_cli_prints_messages_plainly_and_q_keeps_only_warnings(weights, tmp_path):
    said = generate(weights, tmp_path / "a", "--backend", "onnxruntime")
    assert said.exit_code == 0, said.output
    lines = said.output.splitlines()
    assert any(line.startswith("exporting the weights (onnx) for this run") for line in lines)
    assert any(line.startswith("1 file(s) from onnxruntime") for line in lines)
    assert lines[-1] == str(tmp_path / "a" / "sheet.png")
    quiet = generate(weights, tmp_path / "b", "--backend", "onnxruntime", group=("-q",))
    assert quiet.exit_code == 0, quiet.output
    assert quiet.output.splitlines() == [str(tmp_path / "b" / "sheet.png")]


def test_warnings_say_so_even_with_q(weights, tmp_path, monkeypatch):
    emulating = Hardware("test CPU", 2, frozenset({"avx2"}), {"torch": "2.13.0"}, None)
    monkeypatch.setattr("vidsynth.runtime.hardware.probe_hardware", lambda: emulating)
    for group in ((), ("-q",)):
        result = generate(weights, tmp_path / "v", "--backend", "optimized-bf16", group=group)
        assert result.exit_code == 0, result.output
        assert result.output.startswith("warning: this CPU has no native bf16 (amx_bf16 or avx512_bf16)")


def test_verbose_and_quiet_together_are_refused(weights, tmp_path):
    result = generate(weights, tmp_path / "v", group=("-v", "-q"))
    assert result.exit_code == 2 and "contradict each other" in result.output
    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "pt2"])
def test_artifact_backends_given_weights_need_an_exporter(weights, backend):
    request = GenerateRequest(weights=weights, backend=backend, device="cpu")
    with pytest.raises(
        RuntimeBackendError, match=r"--artifacts DIR.*exporter=vidsynth\.export\.export_weights"
    ):
        open_backend(request)


def test_an_exporter_runs_weights_on_an_artifact_backend(weights, tmp_path, caplog):
    caplog.set_level("INFO", logger="vidsynth")
    request = GenerateRequest(
        weights=weights, backend="onnxruntime", device="cpu", frames=2, out=str(tmp_path)
    )
    result = generate_videos(request, exporter=export_weights)
    assert result.backend == "onnxruntime" and len(result.paths) == 4
    assert any(message.startswith("exporting the weights (onnx)") for message in caplog.messages)
