"""The inference rewrites the ONNX graphs carry, applied to a copy of the model before export.

`rewrite_for_export(model)` returns a VideoGenerator whose motion and image modules are
replaced by vidsynth.model.inference's inference forms (one helper per concept, shared with the
in-process optimized backend) and the names of the rewrites applied, which the manifest
records. The copy keeps VideoGenerator's `forward`, `initial_state` and `generate_chunk`, so
the exporter, the wrappers and the validation against the literal eager model are unchanged.

Which rewrites are on by default was measured on onnxruntime and OpenVINO (bench/graphs.py);
the others stay available by name for that measurement.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from torch import nn

from vidsynth.artifacts.contract import GRAPH_REWRITES
from vidsynth.errors import ExportError, choice_error
from vidsynth.model.generator import VideoGenerator
from vidsynth.model.inference import (
    FusedMotion,
    LatentProjection,
    LeanFeedbackMotion,
    SubPixelConvTranspose,
    fold_image_generator,
)

# Measured with `python -m vidsynth.bench.graphs` (demo 96x96 ngf=64, AVX2-only 2-core machine
# shared with other jobs). One thread, B=2 x T=16, best of 9, load ~9: the sub-pixel last layer
# took OpenVINO from 0.75 s to 0.54 s and left onnxruntime unchanged within noise (0.57-0.61 s);
# latent-matmul was slower on both (0.70 s / 0.79 s), so it stays off. Two threads, B=8 x T=64,
# best of 3, load ~4.5: literal -> these defaults took onnxruntime from 6.29 s to 5.76 s and
# OpenVINO from 3.82 s to 3.21 s; sub-pixel-upsampling helped onnxruntime further (4.93 s) but
# slowed OpenVINO (4.13 s), so it stays off while one file serves both runtimes.
DEFAULT_REWRITES = (
    "fold-motion-bn",
    "fold-image-bn",
    "fused-recurrence",
    "lean-feedback-loop",
    "sub-pixel-last",
)


def applicable_rewrites(
    model: VideoGenerator, requested: Sequence[str] = DEFAULT_REWRITES
) -> tuple[str, ...]:
    """The requested rewrites that apply to this model (the recurrence rewrite fits its mode)."""
    for name in requested:
        if name not in GRAPH_REWRITES:
            raise choice_error(ExportError, "graph rewrite", name, tuple(GRAPH_REWRITES))
    recurrence = {"same-input": "fused-recurrence", "feedback": "lean-feedback-loop"}[
        model.config.motion_mode
    ]
    chosen = set(requested) - {"fused-recurrence", "lean-feedback-loop"}
    if recurrence in requested:
        chosen |= {recurrence, "fold-motion-bn"}  # the recurrence rewrites fold the motion batch norm
    elif "fold-motion-bn" in chosen:
        raise ExportError(
            "fold-motion-bn comes with the recurrence rewrite: add fused-recurrence and lean-feedback-loop"
        )
    if {"latent-matmul", "sub-pixel-last", "sub-pixel-upsampling"} & chosen and "fold-image-bn" not in chosen:
        raise ExportError(
            "latent-matmul and the sub-pixel rewrites rewrite the folded layers: add fold-image-bn"
        )
    if "sub-pixel-upsampling" in chosen:
        chosen.discard("sub-pixel-last")  # the last layer is one of them
    return tuple(name for name in GRAPH_REWRITES if name in chosen)


def rewrite_for_export(
    model: VideoGenerator, requested: Sequence[str] = DEFAULT_REWRITES
) -> tuple[VideoGenerator, tuple[str, ...]]:
    """An eval-mode float32 CPU copy of `model` with the applicable rewrites, and their names."""
    applied = applicable_rewrites(model, requested)
    rewritten = copy.deepcopy(model).cpu().float().eval()
    cell = model.config.cell
    if "fused-recurrence" in applied:
        rewritten.motion = FusedMotion(rewritten.motion, cell)
    elif "lean-feedback-loop" in applied:
        rewritten.motion = LeanFeedbackMotion(rewritten.motion, cell)
    if "fold-image-bn" in applied:
        layers = list(fold_image_generator(rewritten.image))
        if "latent-matmul" in applied:
            layers[0] = LatentProjection(layers[0])
        upsampling = [
            i
            for i, layer in enumerate(layers)
            if isinstance(layer, nn.ConvTranspose2d) and layer.stride == (2, 2)
        ]
        if "sub-pixel-upsampling" in applied:
            for i in upsampling:
                layers[i] = SubPixelConvTranspose(layers[i])
        elif "sub-pixel-last" in applied:
            layers[upsampling[-1]] = SubPixelConvTranspose(layers[upsampling[-1]])
        rewritten.image = nn.Sequential(*layers)
    return rewritten.eval(), applied
