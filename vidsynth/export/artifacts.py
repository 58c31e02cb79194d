"""export_artifacts: write, check and validate an export directory in one atomic step."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnx
import torch

from vidsynth.artifacts.contract import (
    DEFAULT_FORMATS,
    EXPORT_SHAPE,
    FILES,
    ONNX_CHUNK_FILE,
    ONNX_FILE,
    TORCHSCRIPT_FILE,
    check_options,
    generator_contract,
    streaming_record,
)
from vidsynth.artifacts.manifest import FORMAT_VERSION, file_record, recognise_export, write_manifest
from vidsynth.artifacts.torchscript_ops import recorded_operators
from vidsynth.atomic import atomic_directory, check_replaceable, output_lock
from vidsynth.errors import ExportError
from vidsynth.export import onnx_export, torchscript
from vidsynth.export.onnx_export import EXPORTERS, check_exporter, check_opset, exporter_rewrites
from vidsynth.export.precision import deployable_copy, with_precision
from vidsynth.export.pt2 import pt2_record, save_pt2
from vidsynth.export.rewrites import rewrite_for_export
from vidsynth.export.validate import validate_export
from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import VideoGenerator
from vidsynth.version import __version__


def export_artifacts(
    model: VideoGenerator | str | None,
    out_dir: str | os.PathLike,
    formats: Sequence[str] = DEFAULT_FORMATS,
    opset: int | None = None,
    dtype: str = "fp32",
    force: bool = False,
    optimize: bool = True,
    onnx_exporter: str | None = None,
) -> dict[str, Any]:
    """Exports `model` into `out_dir` and returns the manifest written there. `model` is a
    VideoGenerator, or weights named as on the command line (None or "default", "demo", a
    weights directory), loaded once the options are checked.

    Everything is written to a temporary directory that replaces `out_dir` (non-empty: only
    with `force`) once every file passed onnx.checker and the validation against eager PyTorch.
    With `optimize` the ONNX graphs carry the inference rewrites of vidsynth.export.rewrites;
    generator.pt is always the literal model. `onnx_exporter`: "torchscript" or "dynamo" (see
    vidsynth.export.onnx_export), None: the TorchScript-based one where this torch has it.
    """
    onnx_exporter = check_exporter(onnx_exporter)
    formats, opset = check_options(formats, check_opset(opset, onnx_exporter, formats), dtype)
    with output_lock(out_dir):  # one export at a time into out_dir, for the whole run
        check_replaceable(out_dir, force, recognise_export)  # before the model is even loaded
        if model is None or isinstance(model, str):
            from vidsynth.weights import load_model

            model = load_model(model)
        if not isinstance(model, VideoGenerator):
            raise ExportError(
                f"export needs a vidsynth VideoGenerator or weights, got {type(model).__name__}"
            )
        reference = deployable_copy(model)
        lowered = with_precision(model, dtype)
        graph_model, rewrites = lowered, ()
        if optimize and "onnx" in formats:
            rewritten, rewrites = rewrite_for_export(reference, exporter_rewrites(onnx_exporter))
            graph_model = with_precision(rewritten, dtype)
        started = time.perf_counter()
        with atomic_directory(out_dir, force=force, recognise=recognise_export) as tmp:
            operators = write_artifacts(lowered, graph_model, tmp, formats, opset, rewrites, onnx_exporter)
            written = time.perf_counter()
            validation = validate_export(lowered, tmp, formats, dtype, reference if dtype != "fp32" else None)
            files = {name: file_record(tmp / name) for fmt in formats for name in FILES[fmt]}
            manifest = build_manifest(
                model.config, formats, opset, dtype, files, validation, rewrites, onnx_exporter
            )
            if operators is not None:
                manifest["torchscript_ops"] = operators
            manifest["seconds"] = {
                "export": round(written - started, 2),
                "validation": round(time.perf_counter() - written, 2),
            }
            write_manifest(tmp, manifest)
        return manifest


def write_artifacts(
    model: VideoGenerator,
    graph_model: VideoGenerator,
    directory: Path,
    formats: tuple[str, ...],
    opset: int | None,
    rewrites: tuple[str, ...],
    onnx_exporter: str,
) -> list[str] | None:
    """Writes the requested formats' files into `directory` (the ONNX graphs from `graph_model`,
    which carries `rewrites`) and checks each ONNX graph. Returns the TorchScript graph's
    operator set (None without TorchScript)."""
    operators = None
    if "torchscript" in formats:
        scripted = torchscript.script_generator(model)
        operators = recorded_operators(scripted)
        torchscript.save_torchscript(scripted, directory / TORCHSCRIPT_FILE, model.config.to_dict())
    if "onnx" in formats:
        for file, streaming in ((ONNX_FILE, False), (ONNX_CHUNK_FILE, True)):
            onnx_export.export_graph(
                graph_model, directory / file, opset, streaming, rewrites=rewrites, exporter=onnx_exporter
            )
            onnx_export.check_graph(directory / file)
    if "pt2" in formats:
        save_pt2(model, directory)
    return operators


def build_manifest(
    config: ModelConfig,
    formats: tuple[str, ...],
    opset: int | None,
    dtype: str,
    files: dict[str, dict[str, Any]],
    validation: dict[str, Any],
    rewrites: Sequence[str],
    onnx_exporter: str,
) -> dict[str, Any]:
    contract = generator_contract(config)
    return {
        "format_version": FORMAT_VERSION,
        "vidsynth_version": __version__,
        "config": config.to_dict(),
        "dtype": dtype,
        "precision": {"image_generator": dtype, "motion": "fp32", "inputs_outputs": "float32"},
        "formats": list(formats),
        "opset": opset,
        "onnx_exporter": EXPORTERS[onnx_exporter] if "onnx" in formats else None,
        "rewrites": list(rewrites),  # names from vidsynth.artifacts.contract.GRAPH_REWRITES
        "torch_version": torch.__version__,
        "onnx_version": onnx.__version__,
        "onnxruntime_version": _installed_version("onnxruntime") or _installed_version("onnxruntime-gpu"),
        "python_version": platform.python_version(),
        "inputs": [spec.to_dict() for spec in contract.inputs],
        "outputs": [spec.to_dict() for spec in contract.outputs],
        "export_shape": {"batch": EXPORT_SHAPE[0], "n_frames": EXPORT_SHAPE[1]},
        "streaming": streaming_record(config, with_onnx="onnx" in formats),
        **({"pt2": pt2_record()} if "pt2" in formats else {}),
        "files": files,
        "validation": validation,
    }


def _installed_version(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None
