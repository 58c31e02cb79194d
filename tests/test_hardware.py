"""`--backend auto`: the choice follows the machine's facts (CPU flags, installed runtimes,
GPU) and the source; it is said in one line; bf16 on a CPU that emulates it warns."""

import json

import pytest
from click.testing import CliRunner

from vidsynth.cli import cli
from vidsynth.errors import InputError
from vidsynth.model.config import ModelConfig
from vidsynth.runtime import GenerateRequest, generate_videos
from vidsynth.runtime.hardware import Hardware, auto_backend, probe_hardware
from vidsynth.weights.demo import demo_model
from vidsynth.weights.format import save_weights

ALL = {"torch": "2.13.0", "onnxruntime": "1.32.0", "openvino": "2026.4.1"}


def machine(flags=("avx2",), runtimes=ALL, gpu=None) -> Hardware:
    return Hardware("test CPU", 2, frozenset(flags), dict(runtimes), gpu)


@pytest.mark.parametrize(
    "artifacts, device, hardware, expected",
    [
        (False, "auto", machine(), "optimized"),
        (False, "auto", machine(flags=("avx2", "amx_bf16")), "optimized-bf16"),
        (False, "auto", machine(flags=("avx512_bf16",)), "optimized-bf16"),
        (False, "cpu", machine(gpu="H200"), "optimized"),
        (False, "auto", machine(gpu="H200"), "torchscript"),
        (True, "auto", machine(), "openvino"),
        (True, "auto", machine(runtimes={**ALL, "openvino": None}), "onnxruntime"),
        (True, "auto", machine(runtimes={**ALL, "openvino": None, "onnxruntime": None}), "torchscript"),
        (True, "auto", machine(gpu="H200"), "torchscript"),
    ],
)
def test_auto_picks_by_source_and_hardware(artifacts, device, hardware, expected):
    name, why = auto_backend(artifacts, device, hardware)
    assert name == expected and why


def test_probe_reads_this_machine():
    found = probe_hardware()
    with open("/proc/cpuinfo") as cpuinfo:
        flags = next(line for line in cpuinfo if line.startswith("flags")).split(":")[1].split()
    assert found.cpu_flags == frozenset(flags)
    assert found.native_bf16 == ("amx_bf16" in flags or "avx512_bf16" in flags)
    assert found.runtimes["torch"] is not None and found.runtimes["onnxruntime"] is not None


def test_info_hardware_prints_the_facts_and_the_picks():
    result = CliRunner().invoke(cli, ["info", "--hardware"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["auto_backend"]) == {"weights", "artifacts"}
    assert report["native_bf16"] == probe_hardware().native_bf16


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    directory = tmp_path_factory.mktemp("auto") / "weights"
    save_weights(demo_model(ModelConfig(ngf=8, image_size=64)), directory, {"source": "test"})
    return str(directory)


def test_generate_says_what_auto_chose(weights, tmp_path):
    said = []
    result = generate_videos(
        GenerateRequest(weights=weights, num_videos=1, frames=2, format="png", out=str(tmp_path)), said.append
    )
    expected, _ = auto_backend(False, "auto", probe_hardware())
    assert result.backend == expected
    assert [line for line in said if line.startswith(f"--backend auto chose {expected}: ")]


@pytest.mark.skipif(probe_hardware().native_bf16, reason="this CPU has native bf16: nothing to warn about")
def test_explicit_bf16_on_an_emulating_cpu_warns(weights, tmp_path):
    said = []
    request = GenerateRequest(
        weights=weights,
        backend="optimized-bf16",
        device="cpu",
        num_videos=1,
        frames=2,
        format="png",
        out=str(tmp_path),
    )
    generate_videos(request, said.append)
    assert any(
        line.startswith("warning: this CPU has no native bf16") and "slower than fp32" in line
        for line in said
    )


def test_validation_names_every_bad_field():
    with pytest.raises(InputError) as caught:
        GenerateRequest(backend="tpu", fps=float("inf"), frames=0, threads=-1, seed=True).validate()
    assert set(caught.value.fields) == {"backend", "fps", "frames", "threads", "seed"}
    assert "unknown backend 'tpu'" in str(caught.value) and "auto" in str(caught.value)


@pytest.mark.parametrize("flags, expected", [(("avx2", "avx512f"), 5.5), (("avx2",), 108.0)])
def test_emulated_bf16_cost_follows_the_vector_unit(flags, expected):
    assert machine(flags=flags).emulated_bf16_slowdown[0] == expected
