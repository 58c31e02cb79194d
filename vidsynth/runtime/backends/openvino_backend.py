"""The OpenVINO backend (torch-free): OpenVINO's CPU runtime reads generator.onnx (whole
videos) and generator_chunk.onnx (streaming, state carried between chunks) directly, the
very files onnxruntime runs.

Compiled for float32 inference: on CPUs with bf16 or fp16 units OpenVINO would otherwise
lower the precision by default, and the artifacts are validated at float32.

Telemetry is off: openvino is imported through vidsynth.optional.import_openvino, which
keeps its telemetry client from starting (see there).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vidsynth.errors import RuntimeBackendError
from vidsynth.noise import Noise
from vidsynth.optional import import_openvino
from vidsynth.runtime.backends.artifacts import Artifacts
from vidsynth.runtime.backends.base import Backend

VIDEO_FILE = "generator.onnx"
CHUNK_FILE = "generator_chunk.onnx"
DEVICE = "CPU"


def compile_graph(path: str | os.PathLike, threads: int = 0) -> Any:
    """An OpenVINO CompiledModel of the ONNX graph at `path`, float32, tuned for latency;
    `threads` 0 leaves the thread count to OpenVINO."""
    ov = import_openvino()
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    if threads > 0:
        config["INFERENCE_NUM_THREADS"] = threads
    try:
        core = ov.Core()
        return core.compile_model(core.read_model(str(path)), DEVICE, config)
    except RuntimeError as exc:  # OpenVINO reports unreadable models and unsupported ops this way
        raise RuntimeBackendError(f"OpenVINO cannot compile {path}: {str(exc).strip().splitlines()[0]}") from None


class _Graph:
    """One compiled graph with its infer request, checked against the expected signature."""

    def __init__(self, path: Path, inputs: set[str], outputs: tuple[str, ...], threads: int) -> None:
        self.compiled = compile_graph(path, threads)
        got_in = {name for port in self.compiled.inputs for name in port.get_names()}
        got_out = {name for port in self.compiled.outputs for name in port.get_names()}
        if not inputs <= got_in or not set(outputs) <= got_out:
            raise RuntimeBackendError(
                f"{path} has inputs {sorted(got_in)} and outputs {sorted(got_out)}; "
                f"expected {sorted(inputs)} and {sorted(outputs)}"
            )
        self.outputs = outputs
        self.request = self.compiled.create_infer_request()

    def __call__(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.request.infer(feed)
        # The request reuses its output buffers on the next call: hand out copies.
        return [np.array(self.request.get_tensor(name).data, copy=True) for name in self.outputs]


class OpenVinoBackend(Backend):
    name = "openvino"
    device = "cpu"

    def __init__(self, artifacts: Artifacts, threads: int = 0) -> None:
        self.config = artifacts.config
        conditional = {"category"} if self.config.n_categories > 0 else set()
        self.video_graph = _Graph(
            artifacts.path(VIDEO_FILE, "onnx"), {"z_content", "z_motion", "n_frames"} | conditional, ("video",), threads
        )
        self.chunk_graph = None
        if artifacts.has(CHUNK_FILE):
            self.chunk_graph = _Graph(
                artifacts.path(CHUNK_FILE, "onnx"), {"z_content", "state", "n_frames"} | conditional,
                ("video", "state_out"), threads,
            )
        self.detail = f"openvino {import_openvino().__version__.split('-')[0]} {DEVICE}, f32"

    def _feed(self, noise: Noise, n_frames: int) -> dict[str, np.ndarray]:
        feed = {
            "z_content": np.ascontiguousarray(noise.z_content, dtype=np.float32),
            "n_frames": np.array(n_frames, dtype=np.int64),
        }
        if self.config.n_categories > 0:
            feed["category"] = np.ascontiguousarray(noise.category, dtype=np.int64)
        return feed

    def generate(self, noise: Noise, n_frames: int) -> np.ndarray:
        feed = self._feed(noise, n_frames)
        feed["z_motion"] = np.ascontiguousarray(noise.z_motion, dtype=np.float32)
        (video,) = self.video_graph(feed)
        return video

    def initial_state(self, noise: Noise) -> np.ndarray:
        batch = noise.z_motion.shape[0]
        zeros = np.zeros((batch, self.config.state_size - self.config.d_motion), dtype=np.float32)
        return np.concatenate([zeros, noise.z_motion.astype(np.float32, copy=False)], axis=1)

    def generate_chunk(self, noise: Noise, state: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
        if self.chunk_graph is None:
            raise RuntimeBackendError(f"streaming needs {CHUNK_FILE}, which these artifacts do not have; re-export them")
        feed = self._feed(noise, n_frames)
        feed["state"] = state
        video, state_out = self.chunk_graph(feed)
        return video, state_out


def open_openvino(artifacts: str | Path, device: str, notify: Callable[[str], None]) -> OpenVinoBackend:
    """The OpenVINO backend over an export directory; it runs on the CPU."""
    if device == "cuda":
        raise RuntimeBackendError("the openvino backend runs on the CPU; on CUDA use --backend onnxruntime, torchscript or eager")
    import_openvino()  # a missing runtime is named before the artifacts are read
    backend = OpenVinoBackend(Artifacts(artifacts))
    if device == "auto":
        notify("the openvino backend runs on the CPU")
    return backend
