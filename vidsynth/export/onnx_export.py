"""generator.onnx and generator_chunk.onnx.

The torch.onnx path is chosen in one place, `export_graph`: the TorchScript-based exporter
(`dynamo=False`) run on a `torch.jit.script`ed wrapper that takes `n_frames` as an int64
scalar tensor. Scripting keeps the motion recurrence's `for _ in range(n_frames)` a loop, which
that exporter writes as one ONNX Loop, so one file serves any batch and any frame count and
its size does not depend on them. The torch.export path (dynamo=True) would unroll that
Python loop, so it exports the model's while_loop formulation instead (onnx_dynamo.py, for a
torch without the TorchScript-based exporter, or `exporter="dynamo"`); the TorchScript path
exports the very code that runs eagerly. It is deprecated upstream; the manifest records which
path wrote each file.

The inference rewrites (folded batch norms, the fused or lean recurrence) are made on the
torch model before export (vidsynth.export.rewrites); `export_graph` records their names in
the graph's metadata, and the same validation checks the result against the literal model.
"""

from __future__ import annotations

import json
import os
import warnings

import onnx
import torch
from torch import Tensor, nn

from vidsynth.artifacts.contract import EXPORT_SHAPE, ExportContract, chunk_contract, generator_contract
from vidsynth.errors import ExportError
from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import VideoGenerator
from vidsynth.model.noise import sample_noise
from vidsynth.version import __version__

EXAMPLE_SEED = 1  # the example inputs' seed; validation uses other seeds and other shapes


class WholeVideo(nn.Module):
    """generator.onnx: (z_content, z_motion, n_frames) -> video."""

    def __init__(self, generator: VideoGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, z_content: Tensor, z_motion: Tensor, n_frames: Tensor) -> Tensor:
        return self.generator(z_content, z_motion, int(n_frames))


class WholeVideoConditional(WholeVideo):
    """generator.onnx of a conditional model: (..., category) -> video."""

    def forward(self, z_content: Tensor, z_motion: Tensor, n_frames: Tensor, category: Tensor) -> Tensor:
        return self.generator(z_content, z_motion, int(n_frames), category)


class VideoChunk(nn.Module):
    """generator_chunk.onnx: (z_content, state, n_frames) -> (video, state_out)."""

    def __init__(self, generator: VideoGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, z_content: Tensor, state: Tensor, n_frames: Tensor) -> tuple[Tensor, Tensor]:
        return self.generator.generate_chunk(z_content, state, int(n_frames))


class VideoChunkConditional(VideoChunk):
    def forward(
        self, z_content: Tensor, state: Tensor, n_frames: Tensor, category: Tensor
    ) -> tuple[Tensor, Tensor]:
        return self.generator.generate_chunk(z_content, state, int(n_frames), category)


def graph_contract(config: ModelConfig, streaming: bool) -> ExportContract:
    return chunk_contract(config) if streaming else generator_contract(config)


def example_inputs(model: VideoGenerator, streaming: bool, batch: int, n_frames: int) -> tuple[Tensor, ...]:
    """Seeded example inputs in the contract's order (from the one noise factory)."""
    noise = sample_noise(model.config, batch, seed=EXAMPLE_SEED)
    z_content = torch.from_numpy(noise.z_content)
    z_motion = torch.from_numpy(noise.z_motion)
    second = model.initial_state(z_motion).detach() if streaming else z_motion
    inputs = (z_content, second, torch.tensor(n_frames, dtype=torch.int64))
    if noise.category is not None:
        inputs += (torch.from_numpy(noise.category),)
    return inputs


def export_graph(
    model: VideoGenerator,
    path: str | os.PathLike,
    opset: int,
    streaming: bool = False,
    example_shape: tuple[int, int] = EXPORT_SHAPE,
    rewrites: tuple[str, ...] = (),
    exporter: str | None = None,
) -> None:
    """Writes one ONNX graph of `model` (eval mode, CPU) to `path`, signature and metadata
    from the export contract. `exporter`: "torchscript" or "dynamo" (see onnx_dynamo);
    None: the TorchScript-based one where this torch has it."""
    from vidsynth.export.onnx_dynamo import DYNAMO, default_exporter, export_graph_dynamo

    config = model.config
    contract = graph_contract(config, streaming)
    if (exporter or default_exporter()) == DYNAMO:
        export_graph_dynamo(
            model, path, opset, contract, example_inputs(model, streaming, *example_shape), streaming
        )
    else:
        _export_scripted(model, path, opset, contract, streaming, example_shape)
    metadata = {
        "config": json.dumps(config.to_dict(), sort_keys=True),
        "vidsynth_version": __version__,
        "rewrites": ",".join(rewrites),
    }
    _describe(path, contract, metadata)


def _export_scripted(
    model: VideoGenerator,
    path: str | os.PathLike,
    opset: int,
    contract: ExportContract,
    streaming: bool,
    example_shape: tuple[int, int],
) -> None:
    """The TorchScript-based exporter on the scripted wrapper (see the module docstring)."""
    conditional = model.config.n_categories > 0
    if streaming:
        wrapper = VideoChunkConditional(model) if conditional else VideoChunk(model)
    else:
        wrapper = WholeVideoConditional(model) if conditional else WholeVideo(model)
    try:
        scripted = torch.jit.script(wrapper.eval())
        with warnings.catch_warnings():
            # The deprecation notice of this exporter: the choice is deliberate (see above).
            warnings.filterwarnings(
                "ignore", category=DeprecationWarning, message=".*TorchScript-based ONNX export.*"
            )
            # The fused LSTM/GRU initial state is a graph input (sliced from `state`), which is
            # what this warning asks for; validation runs other batch sizes than the example.
            warnings.filterwarnings("ignore", category=UserWarning, message=".*batch_size other than 1.*")
            torch.onnx.export(
                scripted,
                example_inputs(model, streaming, *example_shape),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=contract.input_names,
                output_names=contract.output_names,
                dynamic_axes=contract.dynamic_axes(),
                do_constant_folding=True,
            )
    except Exception as exc:  # torch.onnx raises many unrelated types
        raise ExportError(
            f"ONNX export of {'generator_chunk' if streaming else 'generator'} failed: {exc}"
        ) from exc


def _describe(path: str | os.PathLike, contract: ExportContract, metadata: dict[str, str]) -> None:
    """Names the graph's output dimensions after the contract and stores the metadata."""
    model = onnx.load(str(path))
    outputs = {value.name: value for value in model.graph.output}
    for spec in contract.outputs:
        dims = outputs[spec.name].type.tensor_type.shape.dim
        for dim, size in zip(dims, spec.shape):
            if isinstance(size, str):
                dim.dim_param = size
            else:
                dim.dim_value = size
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "vidsynth"
    model.producer_version = __version__
    onnx.save(model, str(path))


def check_graph(path: str | os.PathLike) -> None:
    """onnx.checker's full check (including strict shape inference) of a written graph."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"{os.path.basename(path)} fails onnx.checker: {exc}") from None


RECURRENT_OPS = frozenset({"Loop", "Scan", "LSTM", "GRU"})  # a recurrence that is not unrolled
RANDOM_OPS = frozenset(
    {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli"}
)


def op_types(graph: onnx.GraphProto) -> list[str]:
    """Every node's op type, subgraphs (Loop bodies, If branches) included."""
    found = []
    for node in graph.node:
        found.append(node.op_type)
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                found.extend(op_types(attribute.g))
            for subgraph in attribute.graphs:
                found.extend(op_types(subgraph))
    return found
