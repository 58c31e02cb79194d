"""`--backend auto`: the choice follows the machine's facts (CPU flags, installed runtimes,
GPU) and the source; it is said in one line; bf16 on a CPU that emulates it warns."""

import json
import logging
import os

import pytest
from click.testing import CliRunner
from entry_point import NO_NATIVE_BF16, run_vidsynth

from vidsynth.cli import cli
from vidsynth.errors import InputError, MissingDependencyError
from vidsynth.export import export_artifacts
from vidsynth.model.config import ModelConfig
from vidsynth.runtime import GenerateRequest, generate_videos
from vidsynth.runtime.hardware import Hardware, auto_backend, probe_hardware
from vidsynth.weights.demo import demo_model
from vidsynth.weights.format import save_weights

ALL = {"torch": "2.13.0", "onnxruntime": "1.32.0", "openvino": "2026.4.1"}
EVERY_FORMAT = frozenset({"torchscript", "onnx", "pt2"})
NO_TORCH = {**ALL, "torch": None}


def machine(flags=("avx2",), runtimes=ALL, gpu=None) -> Hardware:
    return Hardware("test CPU", 2, frozenset(flags), dict(runtimes), gpu)


@pytest.mark.parametrize(
    "formats, device, hardware, expected",
    [
        (None, "auto", machine(), "optimized"),
        (None, "auto", machine(flags=("avx2", "amx_bf16")), "optimized-bf16"),
        (None, "auto", machine(flags=("avx512_bf16",)), "optimized-bf16"),
        (None, "cpu", machine(gpu="H200"), "optimized"),
        (None, "auto", machine(gpu="H200"), "torchscript"),
        (EVERY_FORMAT, "auto", machine(), "openvino"),
        (EVERY_FORMAT, "auto", machine(runtimes={**ALL, "openvino": None}), "onnxruntime"),
        (
            EVERY_FORMAT,
            "auto",
            machine(runtimes={**ALL, "openvino": None, "onnxruntime": None}),
            "torchscript",
        ),
        (EVERY_FORMAT, "auto", machine(gpu="H200"), "torchscript"),
        (frozenset({"torchscript"}), "auto", machine(), "torchscript"),
        (frozenset({"torchscript"}), "cpu", machine(), "torchscript"),
        (frozenset({"pt2"}), "auto", machine(), "pt2"),
        (frozenset({"onnx", "torchscript"}), "cuda", machine(runtimes=NO_TORCH), "onnxruntime"),
        (frozenset({"onnx", "torchscript"}), "auto", machine(runtimes=NO_TORCH), "openvino"),
    ],
)
def test_auto_picks_by_source_and_hardware(formats, device, hardware, expected):
    name, why = auto_backend(formats, device, hardware)
    assert name == expected and why


def test_auto_says_why_it_passed_a_backend_over():
    name, why = auto_backend(frozenset({"torchscript"}), "auto", machine())
    assert name == "torchscript"
    assert "no onnx for openvino" in why and "None" not in why


@pytest.mark.parametrize(
    "formats, runtimes, fragment",
    [
        (frozenset({"torchscript"}), NO_TORCH, "torch not installed"),
        (frozenset({"pt2"}), NO_TORCH, "torch not installed"),
        (frozenset(), ALL, "no onnx for openvino"),
        (None, NO_TORCH, "need torch"),
    ],
)
def test_auto_without_a_runnable_backend_says_what_is_missing(formats, runtimes, fragment):
    with pytest.raises(MissingDependencyError, match=fragment):
        auto_backend(formats, "auto", machine(runtimes=runtimes))


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


def test_generate_says_what_auto_chose(weights, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="vidsynth")
    result = generate_videos(
        GenerateRequest(weights=weights, num_videos=1, frames=2, format="png", out=str(tmp_path))
    )
    expected, _ = auto_backend(None, "auto", probe_hardware())
    assert result.backend == expected
    assert [line for line in caplog.messages if line.startswith(f"--backend auto chose {expected}: ")]


@pytest.mark.skipif(probe_hardware().native_bf16, reason="this CPU has native bf16: nothing to warn about")
def test_explicit_bf16_on_an_emulating_cpu_warns(weights, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="vidsynth")
    request = GenerateRequest(
        weights=weights,
        backend="optimized-bf16",
        device="cpu",
        num_videos=1,
        frames=2,
        format="png",
        out=str(tmp_path),
    )
    generate_videos(request)
    assert any(
        record.levelno == logging.WARNING
        and record.getMessage().startswith("this CPU has no native bf16")
        and "slower than fp32" in record.getMessage()
        for record in caplog.records
    )


def test_validation_names_every_bad_field():
    with pytest.raises(InputError) as caught:
        GenerateRequest(backend="tpu", fps=float("inf"), frames=0, threads=-1, seed=True).validate()
    assert set(caught.value.fields) == {"backend", "fps", "frames", "threads", "seed"}
    assert "unknown backend 'tpu'" in str(caught.value) and "auto" in str(caught.value)


@pytest.mark.parametrize("flags, expected", [(("avx2", "avx512f"), 5.5), (("avx2",), 108.0)])
def test_emulated_bf16_cost_follows_the_vector_unit(flags, expected):
    assert machine(flags=flags).emulated_bf16_slowdown[0] == expected


BLOCK_TORCH = """
import sys


class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r} (blocked for this test)")
        return None


sys.meta_path.insert(0, Blocker())
"""

# onnxruntime-gpu on a machine without a GPU: it lists CUDAExecutionProvider all the same.
FAKE_ORT_GPU = """
import onnxruntime

_available = onnxruntime.get_available_providers
onnxruntime.get_available_providers = lambda: ["CUDAExecutionProvider", *_available()]
"""


@pytest.fixture(scope="module")
def torchscript_only(weights, tmp_path_factory):
    """The README's bf16 recipe: `vidsynth export --dtype bf16 --formats torchscript`."""
    out = tmp_path_factory.mktemp("tsonly") / "artbf"
    export_artifacts(weights, out, formats=("torchscript",), dtype="bf16")
    return str(out)


@pytest.fixture(scope="module")
def onnx_and_torchscript(weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("both") / "art"
    export_artifacts(weights, out, formats=("torchscript", "onnx"))
    return str(out)


def test_auto_runs_a_torchscript_only_export(torchscript_only, tmp_path):
    result = run_vidsynth("generate", "--artifacts", torchscript_only, "--out", str(tmp_path / "v"))
    assert result.returncode == 0, result.stderr
    assert "--backend auto chose torchscript: export artifacts (torchscript)" in result.stderr
    assert len(list((tmp_path / "v").glob("video_*.mp4"))) == 4


def test_auto_on_cuda_without_torch_picks_onnxruntime(onnx_and_torchscript, tmp_path):
    result = run_vidsynth(
        "generate",
        "--artifacts",
        onnx_and_torchscript,
        "--device",
        "cuda",
        "--out",
        str(tmp_path / "v"),
        site=BLOCK_TORCH,
        scratch=tmp_path,
    )
    assert "--backend auto chose onnxruntime" in result.stderr, result.stderr
    assert "torch not installed" in result.stderr and "GPU None" not in result.stderr
    if result.returncode != 0:  # no CUDA here: one clear error from onnxruntime's side, no traceback
        assert "Error: --device cuda is not usable" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(os.path.exists("/proc/driver/nvidia"), reason="this machine has an NVIDIA driver")
def test_device_auto_does_not_ask_onnxruntime_for_cuda_without_a_gpu(onnx_and_torchscript, tmp_path):
    result = run_vidsynth(
        "generate",
        "--artifacts",
        onnx_and_torchscript,
        "--backend",
        "onnxruntime",
        "--out",
        str(tmp_path / "v"),
        site=FAKE_ORT_GPU,
        scratch=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "CUDAExecutionProvider" not in result.stderr


@pytest.mark.parametrize("threads", ["3000", "100000"])
def test_threads_beyond_the_cpus_are_one_error(weights, tmp_path, threads):
    result = run_vidsynth(
        "generate", "--weights", weights, "--threads", threads, "--out", str(tmp_path / "v")
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert f"--threads {threads} is more than the" in lines[0] and "CPUs this process can use" in lines[0]
    assert not (tmp_path / "v").exists()


def test_emulated_bf16_shows_progress_however_short_the_run(weights, tmp_path):
    result = run_vidsynth(
        "generate",
        "--weights",
        weights,
        "--backend",
        "optimized-bf16",
        "--num-videos",
        "2",
        "--frames",
        "4",
        "--format",
        "png",
        "--out",
        str(tmp_path / "v"),
        site=NO_NATIVE_BF16,
        scratch=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "no native bf16" in result.stderr and "frames: 100%" in result.stderr and "8/8" in result.stderr
