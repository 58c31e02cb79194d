"""ONNX through the torch.export-based exporter (`torch.onnx.export(..., dynamo=True)`), for
torch builds without the TorchScript-based one.

It exports the while_loop formulation (vidsynth.export.while_loop), which the exporter
writes as one ONNX Loop, so the graphs keep the contract of the TorchScript-based path:
same input and output names, dynamic batch and frame count, no unrolling, and the same
validation against eager PyTorch afterwards.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Sequence

import torch

from vidsynth.artifacts.contract import BATCH, ExportContract
from vidsynth.errors import ExportError, MissingDependencyError, choice_error
from vidsynth.export.while_loop import while_loop_module
from vidsynth.model.generator import VideoGenerator

TORCHSCRIPT = "torchscript"
DYNAMO = "dynamo"
MIN_OPSET = 18  # the torch.export-based exporter writes opset 18 and up (its down-conversion breaks Split)
EXPORTERS = {
    TORCHSCRIPT: "torch.onnx.export(dynamo=False) of a torch.jit.script module (TorchScript-based exporter)",
    DYNAMO: "torch.onnx.export(dynamo=True) of the while_loop formulation (torch.export-based exporter)",
}


def torchscript_exporter_available() -> bool:
    """Whether this torch still ships the TorchScript-based ONNX exporter (deprecated upstream)."""
    if not callable(getattr(torch.jit, "script", None)):
        return False
    return any(
        importlib.util.find_spec(name) is not None
        for name in ("torch.onnx._internal.torchscript_exporter", "torch.onnx.utils")
    )


# Rewrites that replace the motion module: the while_loop formulation steps the literal cells.
MOTION_REWRITES = ("fold-motion-bn", "fused-recurrence", "lean-feedback-loop")


def exporter_rewrites(exporter: str) -> tuple[str, ...]:
    """The default graph rewrites (vidsynth.export.rewrites) an exporter's graphs carry: all of
    them with the TorchScript-based exporter, the image generator's with the dynamo one."""
    from vidsynth.export.rewrites import DEFAULT_REWRITES

    if exporter != DYNAMO:
        return DEFAULT_REWRITES
    return tuple(name for name in DEFAULT_REWRITES if name not in MOTION_REWRITES)


def default_exporter() -> str:
    return TORCHSCRIPT if torchscript_exporter_available() else DYNAMO


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


def require_onnxscript() -> None:
    """The torch.export-based exporter writes its graphs with onnxscript, an optional package."""
    if importlib.util.find_spec("onnxscript") is None:
        raise MissingDependencyError(
            "onnxscript is not installed (the torch.export-based ONNX exporter needs it): pip install "
            "onnxscript"
        )


def export_graph_dynamo(
    model: VideoGenerator,
    path: str | os.PathLike,
    opset: int,
    contract: ExportContract,
    example_inputs: tuple[torch.Tensor, ...],
    streaming: bool,
) -> None:
    """Writes one ONNX graph of `model` (eval mode, CPU) with the exporter of torch.export."""
    require_onnxscript()
    batch = torch.export.Dim(BATCH, min=1)
    dynamic_shapes = tuple({0: batch} if tensor.dim() > 0 else None for tensor in example_inputs)
    try:
        with warnings.catch_warnings():
            # The exporter reports its own progress and version conversions as warnings.
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                while_loop_module(model, streaming),
                example_inputs,
                dynamo=True,
                opset_version=opset,
                input_names=contract.input_names,
                output_names=contract.output_names,
                dynamic_shapes=dynamic_shapes,
                optimize=True,
                verbose=False,
            )
        program.save(str(path), external_data=False)
    except Exception as exc:  # torch.onnx raises many unrelated types
        name = "generator_chunk" if streaming else "generator"
        raise ExportError(
            f"ONNX export (torch.export-based) of {name} failed (torch {torch.__version__}): {exc}"
        ) from exc
