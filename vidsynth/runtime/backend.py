"""The backends behind one interface, their device choice, the export directory as they read it,
and the registry that opens one by name. Inputs are numpy noise codes; outputs are numpy float32
videos (B, T, nc, H, W) in [-1, 1]. The state between chunks is opaque (it may live on the GPU);
`state_to_host` and `state_from_host` turn it into numpy and back, so another process can
continue a stream. Torch-free: `open_backend` imports only the backend asked for."""

from __future__ import annotations

import importlib
import json
import logging
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vidsynth.artifacts.contract import (
    MANIFEST_FILE,
    ONNX_CHUNK_FILE,
    ONNX_FILE,
    ExportContract,
    chunk_contract,
    formats_in,
    generator_contract,
    graph_inputs,
    initial_state,
)
from vidsynth.artifacts.manifest import read_manifest
from vidsynth.errors import ConfigError, MissingDependencyError, RuntimeBackendError, choice_error
from vidsynth.model.config import ModelConfig
from vidsynth.model.noise import Noise
from vidsynth.optional import ONNXRUNTIME_HINT, OPENVINO_HINT

if TYPE_CHECKING:
    from vidsynth.model.generator import VideoGenerator
    from vidsynth.runtime.request import GenerateRequest

logger = logging.getLogger(__name__)
DEVICES = ("cpu", "cuda", "auto")

# (model, out_dir, formats): exports weights for artifact backends. The runtime never imports the
# exporter: its caller passes one (vidsynth.export.export_artifacts or export_weights).
Exporter = Callable[["VideoGenerator", Path, Sequence[str]], Any]


@dataclass(frozen=True)
class BackendSpec:
    module: str  # imported only when this backend is opened
    opener: str  # module function (request, exporter) -> Backend
    runs_artifacts: bool  # False: it runs weights only
    install: str  # what to install when the module's runtime is missing


_TORCH = "vidsynth.runtime.torch_backends"
_TORCH_INSTALL = "pip install torch (the CPU build: pip install torch==2.13.0)"
REGISTRY: dict[str, BackendSpec] = {
    "eager": BackendSpec(_TORCH, "open_eager", False, _TORCH_INSTALL),
    "optimized": BackendSpec(_TORCH, "open_optimized", False, _TORCH_INSTALL),
    "optimized-bf16": BackendSpec(_TORCH, "open_optimized", False, _TORCH_INSTALL),
    "torchscript": BackendSpec(_TORCH, "open_torchscript", True, _TORCH_INSTALL),
    "onnxruntime": BackendSpec(
        "vidsynth.runtime.onnxruntime_backend", "open_onnxruntime", True, ONNXRUNTIME_HINT
    ),
    "openvino": BackendSpec("vidsynth.runtime.openvino_backend", "open_openvino", True, OPENVINO_HINT),
    "pt2": BackendSpec(_TORCH, "open_pt2", True, _TORCH_INSTALL),
}
AUTO = "auto"  # the fastest backend for this machine and source (runtime/hardware.py)
BACKENDS = (AUTO, *REGISTRY)


class Backend(ABC):
    name: str  # a REGISTRY key
    device: str  # "cpu" or "cuda"
    config: ModelConfig
    detail: str = ""  # library and provider, for messages
    slow: bool = False  # far below its usual speed here (emulated bf16): every run shows progress

    @abstractmethod
    def generate(self, noise: Noise, n_frames: int) -> np.ndarray:
        """Whole videos in one call: (B, n_frames, nc, H, W) float32."""

    def initial_state(self, noise: Noise) -> Any:
        """The state a video starts from (the contract's initial_state), ready for generate_chunk."""
        return self.state_from_host(initial_state(noise.z_motion, self.config.state_size))

    @abstractmethod
    def generate_chunk(self, noise: Noise, state: Any, n_frames: int) -> tuple[np.ndarray, Any]:
        """The next n_frames frames and the state to continue from."""

    def state_to_host(self, state: Any) -> np.ndarray:
        """The state generate_chunk returned, as a float32 numpy array (B, state_size)."""
        return np.asarray(state, dtype=np.float32)

    def state_from_host(self, state: np.ndarray) -> Any:
        """A state from state_to_host (made by any backend of the same model), ready for generate_chunk."""
        return np.ascontiguousarray(state, dtype=np.float32)

    def device_memory_available(self) -> int | None:
        """Free bytes on the compute device when it is not host memory; None otherwise."""
        return None


def auto_choice(request: GenerateRequest) -> tuple[str, str]:
    """(backend, why) that `auto` picks for the request's source and device on this machine."""
    from vidsynth.runtime.hardware import auto_backend, probe_hardware

    formats = None
    if request.artifacts is not None:  # its files are verified when the chosen backend opens them
        _check_is_directory(Path(request.artifacts))
        formats = formats_in(read_manifest(request.artifacts, verify_hashes=False))
    return auto_backend(formats, request.device, probe_hardware())


def open_backend(request: GenerateRequest, exporter: Exporter | None = None) -> Backend:
    """The backend `request` names, opened on its device (the request is validated already).
    Artifact backends (onnxruntime, openvino, pt2) given weights instead of artifacts export
    them for this run with `exporter`; without one they refuse. `auto` logs its choice."""
    name = request.backend
    if name == AUTO:
        name, why = auto_choice(request)
        logger.info("--backend auto chose %s: %s", name, why)
    request = replace(request, backend=name)
    spec = REGISTRY[name]
    try:
        module = importlib.import_module(spec.module)
    except ImportError as exc:
        raise MissingDependencyError(f"the {name} backend cannot start ({exc}): {spec.install}") from None
    return getattr(module, spec.opener)(request, exporter)


def _check_is_directory(directory: Path) -> None:
    if not directory.is_dir():
        raise RuntimeBackendError(
            f"artifacts directory {directory} does not exist; make one with `vidsynth export`"
        )


@dataclass(frozen=True)
class DeviceChoice:
    name: str  # "cpu" or "cuda"
    note: str | None = None  # set when `auto` fell back to the CPU


def choose_device(requested: str, cuda_usable: bool, why_not: str) -> DeviceChoice:
    """`cuda` without a usable GPU is an error; only `auto` falls back to the CPU, and the note
    says so. `why_not` explains what is missing for CUDA."""
    if requested not in DEVICES:
        raise choice_error(RuntimeBackendError, "device", requested, DEVICES)
    if requested == "cpu":
        return DeviceChoice("cpu")
    if cuda_usable:
        return DeviceChoice("cuda")
    if requested == "cuda":
        raise RuntimeBackendError(f"--device cuda is not usable: {why_not}; use --device cpu or auto")
    return DeviceChoice("cpu", note=f"--device auto: no usable CUDA ({why_not}); running on cpu")


class Artifacts:
    """An export directory, its manifest checked (sha256 of every file it lists) before any
    artifact is loaded, so tampered or mixed files are refused."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        _check_is_directory(self.directory)
        self.manifest: dict[str, Any] = read_manifest(self.directory, verify_hashes=True)
        try:
            self.config = ModelConfig.from_dict(self.manifest["config"])
        except (KeyError, TypeError, ConfigError) as exc:
            raise RuntimeBackendError(
                f"{self.directory / MANIFEST_FILE} has no valid model config: {exc}"
            ) from None

    def has(self, filename: str) -> bool:
        return filename in self.manifest.get("files", {})

    def path(self, filename: str, made_by: str) -> Path:
        """The verified path of `filename`; `made_by` names the export format that writes it."""
        if not self.has(filename):
            raise RuntimeBackendError(
                f"artifacts in {self.directory} have no {filename}; export with the {made_by} format"
            )
        return self.directory / filename


@contextmanager
def request_artifacts(
    request: GenerateRequest, formats: tuple[str, ...], exporter: Exporter | None
) -> Iterator[Artifacts]:
    """For artifact backends: the request's export directory, or its weights exported by
    `exporter` to `formats` in a temporary directory (needs torch), removed after the block:
    open what you need inside it."""
    from vidsynth.weights import load_model

    if request.artifacts is not None:
        yield Artifacts(request.artifacts)
        return
    if exporter is None:
        raise RuntimeBackendError(
            f"the {request.backend} backend runs export artifacts: pass artifacts made by `vidsynth export` "
            "(--artifacts DIR), or from Python an exporter (exporter=vidsynth.export.export_weights) "
            "to export these weights for this run"
        )
    model = load_model(request.weights)
    logger.info(
        "exporting the weights (%s) for this run; `vidsynth export` once and --artifacts skip this",
        ", ".join(formats),
    )
    with tempfile.TemporaryDirectory(prefix="vidsynth-export-") as tmp:
        directory = Path(tmp) / "artifacts"
        exporter(model, directory, formats)
        yield Artifacts(directory)


def check_graph_config(manifest_config: ModelConfig, carried: str | None, where: str) -> None:
    """The manifest is not trusted on its own: its config must match `carried`, the config JSON
    a graph holds (ONNX metadata_props, TorchScript's config.json; None or "" if none)."""
    if not carried:
        raise RuntimeBackendError(f"{where} carries no model config; it was not written by vidsynth export")
    try:
        graph_config = ModelConfig.from_dict(json.loads(carried))
    except (json.JSONDecodeError, TypeError, ValueError, RecursionError, ConfigError) as exc:
        raise RuntimeBackendError(f"{where} carries an unreadable model config: {exc}") from None
    if graph_config != manifest_config:
        ours, theirs = manifest_config.to_dict(), graph_config.to_dict()
        differ = [
            f"{key}: manifest {ours[key]!r}, graph {theirs.get(key)!r}"
            for key in ours
            if ours[key] != theirs.get(key)
        ]
        raise RuntimeBackendError(
            f"{where} was exported for another model than manifest.json describes ({'; '.join(differ)}); "
            "artifacts are mixed or edited: re-export them"
        )


def check_video_shape(video: Any, n_videos: int, n_frames: int, config: ModelConfig, backend: str) -> None:
    """A backend's output must be (videos, frames, nc, H, W) as requested."""
    expected = (n_videos, n_frames, config.nc, config.image_size, config.image_size)
    shape = tuple(np.shape(video))
    if shape != expected:
        raise RuntimeBackendError(
            f"the {backend} backend returned videos of shape {shape}, expected {expected} "
            "(videos, frames, channels, height, width): the model does not match its config"
        )


class OnnxGraphsBackend(Backend):
    """What the onnxruntime and OpenVINO backends share: an export's generator.onnx (whole
    videos) and generator_chunk.onnx (streaming), fed as the contract says. A subclass opens and
    runs one graph its own way."""

    def __init__(self, artifacts: Artifacts) -> None:
        self.config = artifacts.config
        self.video_graph = self._open(artifacts.path(ONNX_FILE, "onnx"), generator_contract(self.config))
        self.chunk_graph = None
        if artifacts.has(ONNX_CHUNK_FILE):  # optional: only streaming needs it
            self.chunk_graph = self._open(artifacts.directory / ONNX_CHUNK_FILE, chunk_contract(self.config))

    @abstractmethod
    def _open(self, path: Path, contract: ExportContract) -> Any:
        """The graph at `path`, checked against `contract`."""

    @abstractmethod
    def _run(self, graph: Any, inputs: dict[str, Any], contract: ExportContract) -> list[Any]:
        """The graph's outputs in the contract's order: the video as a numpy array, a state as
        this backend keeps it between chunks."""

    def generate(self, noise: Noise, n_frames: int) -> np.ndarray:
        contract = generator_contract(self.config)
        (video,) = self._run(self.video_graph, graph_inputs(contract, noise, n_frames), contract)
        return video

    def generate_chunk(self, noise: Noise, state: Any, n_frames: int) -> tuple[np.ndarray, Any]:
        if self.chunk_graph is None:
            raise RuntimeBackendError(
                f"streaming needs {ONNX_CHUNK_FILE}, which these artifacts do not have; re-export them"
            )
        contract = chunk_contract(self.config)
        inputs = {**graph_inputs(contract, noise, n_frames), "state": state}
        video, state_out = self._run(self.chunk_graph, inputs, contract)
        return video, state_out
