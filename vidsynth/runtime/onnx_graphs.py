"""What the onnxruntime and OpenVINO backends share: an export's two ONNX graphs,
generator.onnx (whole videos) and generator_chunk.onnx (streaming, the state carried between
chunks), fed as the contract says. Each runtime opens and runs a graph its own way. Torch-free."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from vidsynth.artifacts.contract import (
    ONNX_CHUNK_FILE,
    ONNX_FILE,
    ExportContract,
    chunk_contract,
    generator_contract,
    graph_inputs,
    initial_state,
)
from vidsynth.errors import RuntimeBackendError
from vidsynth.model.noise import Noise
from vidsynth.runtime.backend import Artifacts, Backend


class OnnxGraphsBackend(Backend):
    """A backend over an export's ONNX graphs; a subclass opens and runs one graph."""

    def __init__(self, artifacts: Artifacts) -> None:
        self.config = artifacts.config
        self.video_graph = self._open(artifacts.path(ONNX_FILE, "onnx"), generator_contract(self.config))
        self.chunk_graph = None
        if artifacts.has(ONNX_CHUNK_FILE):
            path = artifacts.path(ONNX_CHUNK_FILE, "onnx")
            self.chunk_graph = self._open(path, chunk_contract(self.config))

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

    def initial_state(self, noise: Noise) -> Any:
        return self.state_from_host(initial_state(noise.z_motion, self.config.state_size))

    def generate_chunk(self, noise: Noise, state: Any, n_frames: int) -> tuple[np.ndarray, Any]:
        if self.chunk_graph is None:
            raise RuntimeBackendError(
                f"streaming needs {ONNX_CHUNK_FILE}, which these artifacts do not have; re-export them"
            )
        contract = chunk_contract(self.config)
        inputs = {**graph_inputs(contract, noise, n_frames), "state": state}
        video, state_out = self._run(self.chunk_graph, inputs, contract)
        return video, state_out
