"""export_artifacts: write, check and validate an export directory in one atomic step."""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from vidsynth.atomic import atomic_directory
from vidsynth.errors import ExportError
from vidsynth.export.contract import (
    EXPORT_SHAPE,
    FILES,
    ONNX_CHUNK_FILE,
    ONNX_FILE,
    TORCHSCRIPT_FILE,
    check_options,
    generator_contract,
    streaming_record,
)
from vidsynth.export.manifest import FORMAT_VERSION, file_record, write_manifest
from vidsynth.export.onnx_dynamo import EXPORTERS, check_exporter, check_opset
from vidsynth.export.precision import deployable_copy, with_precision
from vidsynth.models import VideoGenerator
from vidsynth.version import __version__


def export_artifacts(
    model: VideoGenerator,
    out_dir: str | os.PathLike,
    formats: Sequence[str] = ("torchscript", "onnx"),
    opset: Optional[int] = None,
    dtype: str = "fp32",
    force: bool = False,
    onnx_exporter: Optional[str] = None,
) -> dict[str, Any]:
    """Exports `model` into `out_dir` and returns the manifest written there.

    Options are checked first; then everything is written to a temporary directory that
    replaces `out_dir` only once every file passed onnx.checker and the validation against
    eager PyTorch. An existing non-empty `out_dir` is refused unless `force`.
    `onnx_exporter` ("torchscript" or "dynamo", see vidsynth.export.onnx_dynamo): None picks
    the TorchScript-based exporter where this torch has it.
    """
    if not isinstance(model, VideoGenerator):
        raise ExportError(f"export needs a vidsynth VideoGenerator, got {type(model).__name__}")
    onnx_exporter = check_exporter(onnx_exporter)
    formats, opset = check_options(formats, check_opset(opset, onnx_exporter, formats), dtype)
    reference = deployable_copy(model)
    lowered = with_precision(model, dtype)
    config_dict = model.config.to_dict()
    started = time.perf_counter()
    with atomic_directory(out_dir, force=force) as tmp:
        write_artifacts(lowered, tmp, formats, opset, onnx_exporter)
        written = time.perf_counter()
        from vidsynth.export.validate import validate_export

        validation = validate_export(lowered, tmp, formats, dtype, reference if dtype != "fp32" else None)
        validated = time.perf_counter()
        files = {name: file_record(tmp / name) for fmt in formats for name in FILES[fmt]}
        manifest = build_manifest(config_dict, formats, opset, dtype, files, validation, onnx_exporter)
        manifest["seconds"] = {"export": round(written - started, 2), "validation": round(validated - written, 2)}
        write_manifest(tmp, manifest)
    return manifest


def write_artifacts(
    model: VideoGenerator, directory: Path, formats: tuple[str, ...], opset: Optional[int], onnx_exporter: Optional[str] = None
) -> None:
    """Writes the requested formats' files into `directory` and checks each ONNX graph."""
    if "torchscript" in formats:
        from vidsynth.export.torchscript import save_torchscript, script_generator

        save_torchscript(script_generator(model), directory / TORCHSCRIPT_FILE, model.config.to_dict())
    if "onnx" in formats:
        from vidsynth.export.onnx import check_graph, export_graph

        export_graph(model, directory / ONNX_FILE, opset, streaming=False, exporter=onnx_exporter)
        export_graph(model, directory / ONNX_CHUNK_FILE, opset, streaming=True, exporter=onnx_exporter)
        check_graph(directory / ONNX_FILE)
        check_graph(directory / ONNX_CHUNK_FILE)
    if "pt2" in formats:
        from vidsynth.export.pt2 import save_pt2

        save_pt2(model, directory)


def build_manifest(
    config_dict: dict[str, Any],
    formats: tuple[str, ...],
    opset: Optional[int],
    dtype: str,
    files: dict[str, dict[str, Any]],
    validation: dict[str, Any],
    onnx_exporter: Optional[str] = None,
) -> dict[str, Any]:
    import onnx

    from vidsynth.config import ModelConfig
    from vidsynth.export.pt2 import pt2_record

    config = ModelConfig.from_dict(config_dict)
    contract = generator_contract(config)
    return {
        "format_version": FORMAT_VERSION,
        "vidsynth_version": __version__,
        "config": config_dict,
        "dtype": dtype,
        "precision": {
            "image_generator": dtype,
            "motion": "fp32",
            "inputs_outputs": "float32",
        },
        "formats": list(formats),
        "opset": opset,
        "onnx_exporter": EXPORTERS[check_exporter(onnx_exporter)] if "onnx" in formats else None,
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


def export_weights(
    weights: Optional[str],
    out_dir: str | os.PathLike,
    formats: Sequence[str] = ("torchscript", "onnx"),
    opset: Optional[int] = None,
    dtype: str = "fp32",
    force: bool = False,
    onnx_exporter: Optional[str] = None,
) -> dict[str, Any]:
    """export_artifacts for weights named as on the command line: default, demo or a directory."""
    from vidsynth.weights import load_model

    exporter = check_exporter(onnx_exporter)  # refuse bad options before loading anything
    check_options(formats, check_opset(opset, exporter, formats), dtype)
    return export_artifacts(load_model(weights), out_dir, formats, opset, dtype, force, onnx_exporter)


def _installed_version(distribution: str) -> Optional[str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None
