"""generator.onnx and generator_chunk.onnx, through one of torch.onnx's two exporters.

The TorchScript-based exporter (`dynamo=False`, deprecated upstream) runs on a
`torch.jit.script`ed wrapper that takes `n_frames` as an int64 scalar tensor: scripting keeps the
motion recurrence's `for _ in range(n_frames)` a loop, written as one ONNX Loop, so one file
serves any batch and frame count and exports the very code that runs eagerly. The
torch.export-based exporter (`dynamo=True`, for a torch without the other) would unroll that
Python loop, so it exports the while_loop formulation (vidsynth.export.while_loop) instead,
with the same contract. The manifest records which exporter wrote the files.

The inference rewrites (vidsynth.export.rewrites) are made on the torch model before export;
`export_graph` records their names in the graph's metadata.
"""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from collections.abc import Sequence

import onnx
import torch
from torch import Tensor, nn

from vidsynth.artifacts.contract import (
    BATCH,
    EXPORT_SHAPE,
    ExportContract,
    chunk_contract,
    generator_contract,
)
from vidsynth.errors import ExportError, MissingDependencyError, choice_error
from vidsynth.export.rewrites import DEFAULT_REWRITES
from vidsynth.export.while_loop import WhileLoopGenerator
from vidsynth.model.generator import VideoGenerator
from vidsynth.model.noise import sample_noise
from vidsynth.version import __version__

TORCHSCRIPT = "torchscript"
DYNAMO = "dynamo"
EXPORTERS = {
    TORCHSCRIPT: "torch.onnx.export(dynamo=False) of a torch.jit.script module (TorchScript-based exporter)",
    DYNAMO: "torch.onnx.export(dynamo=True) of the while_loop formulation (torch.export-based exporter)",
}
MIN_OPSET = 18  # the torch.export-based exporter writes opset 18 and up (its down-conversion breaks Split)
# Rewrites that replace the motion module: the while_loop formulation steps the literal cells.
MOTION_REWRITES = ("fold-motion-bn", "fused-recurrence", "lean-feedback-loop")
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
    from the export contract. `exporter`: "torchscript" or "dynamo"; None: default_exporter()."""
    contract = chunk_contract(model.config) if streaming else generator_contract(model.config)
    inputs = example_inputs(model, streaming, *example_shape)
    dynamo = (exporter or default_exporter()) == DYNAMO
    if dynamo and importlib.util.find_spec("onnxscript") is None:  # what this exporter writes its graphs with
        raise MissingDependencyError(
            "onnxscript is not installed (the torch.export-based ONNX exporter needs it): pip install "
            "onnxscript"
        )
    options = dict(opset_version=opset, input_names=contract.input_names, output_names=contract.output_names)
    try:
        if dynamo:
            _export_dynamo(model, streaming, inputs, str(path), options)
        else:
            options["dynamic_axes"] = contract.dynamic_axes()
            _export_scripted(model, streaming, inputs, str(path), options)
    except Exception as exc:  # torch.onnx raises many unrelated types
        how = " (torch.export-based)" if dynamo else ""
        name = "generator_chunk" if streaming else "generator"
        raise ExportError(f"ONNX export{how} of {name} failed (torch {torch.__version__}): {exc}") from exc
    metadata = {
        "config": json.dumps(model.config.to_dict(), sort_keys=True),
        "vidsynth_version": __version__,
        "rewrites": ",".join(rewrites),
    }
    _describe(path, contract, metadata)


def _export_scripted(model: VideoGenerator, streaming: bool, inputs: tuple, path: str, options: dict) -> None:
    """The TorchScript-based exporter on the scripted wrapper; `options`: torch.onnx.export's."""
    conditional = model.config.n_categories > 0
    if streaming:
        wrapper = VideoChunkConditional(model) if conditional else VideoChunk(model)
    else:
        wrapper = WholeVideoConditional(model) if conditional else WholeVideo(model)
    scripted = torch.jit.script(wrapper.eval())
    with warnings.catch_warnings():
        # The deprecation notice of this exporter: the choice is deliberate (module docstring).
        warnings.filterwarnings(
            "ignore", category=DeprecationWarning, message=".*TorchScript-based ONNX export.*"
        )
        # The fused LSTM/GRU initial state is a graph input (sliced from `state`), which is
        # what this warning asks for; validation runs other batch sizes than the example.
        warnings.filterwarnings("ignore", category=UserWarning, message=".*batch_size other than 1.*")
        torch.onnx.export(scripted, inputs, path, dynamo=False, do_constant_folding=True, **options)


def exporter_rewrites(exporter: str) -> tuple[str, ...]:
    """The default graph rewrites (vidsynth.export.rewrites) an exporter's graphs carry: all of
    them with the TorchScript-based exporter, the image generator's with the dynamo one."""
    if exporter != DYNAMO:
        return DEFAULT_REWRITES
    return tuple(name for name in DEFAULT_REWRITES if name not in MOTION_REWRITES)


def default_exporter() -> str:
    """The TorchScript-based exporter where this torch still ships it (deprecated upstream)."""
    scripts = callable(getattr(torch.jit, "script", None))
    names = ("torch.onnx._internal.torchscript_exporter", "torch.onnx.utils")
    return TORCHSCRIPT if scripts and any(importlib.util.find_spec(n) is not None for n in names) else DYNAMO


def check_exporter(exporter: str | None) -> str:
    """The exporter to use: `exporter` if it is a known one, else default_exporter()."""
    if exporter is None:
        return default_exporter()
    if exporter not in EXPORTERS:
        raise choice_error(ExportError, "ONNX exporter", exporter, tuple(EXPORTERS))
    return exporter


def check_opset(requested: int | None, exporter: str, formats: Sequence[str]) -> int | None:
    """The opset the dynamo exporter writes: MIN_OPSET unless one at least as high was asked
    for; lower ones are refused. Without onnx in `formats`, or with another exporter:
    `requested` unchanged (vidsynth.artifacts.contract.check_options checks it)."""
    if exporter != DYNAMO or "onnx" not in formats:
        return requested
    if requested is None:
        return MIN_OPSET
    if requested < MIN_OPSET:
        raise ExportError(
            f"ONNX opset {requested} is below {MIN_OPSET}, the lowest the torch.export-based exporter "
            f"writes; use --opset {MIN_OPSET} or higher"
        )
    return requested


def _export_dynamo(model: VideoGenerator, streaming: bool, inputs: tuple, path: str, options: dict) -> None:
    """The torch.export-based exporter on the while_loop formulation; `options`: torch.onnx.export's."""
    batch = torch.export.Dim(BATCH, min=1)
    with warnings.catch_warnings():
        # The exporter reports its own progress and version conversions as warnings.
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            WhileLoopGenerator(model, streaming).eval(),
            inputs,
            dynamo=True,
            dynamic_shapes=tuple({0: batch} if tensor.dim() > 0 else None for tensor in inputs),
            optimize=True,
            verbose=False,
            **options,
        )
    program.save(path, external_data=False)


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
