"""The inference rewrites the ONNX graphs carry, applied to a copy of the model before export.

`rewrite_for_export(model)` returns a VideoGenerator whose motion and image modules are
replaced by vidsynth.optimize's inference forms (one helper per concept, shared with the
in-process optimized backend) and the names of the rewrites applied, which the manifest
records. The copy keeps VideoGenerator's `forward`, `initial_state` and `generate_chunk`, so
the exporter, the wrappers and the validation against the literal eager model are unchanged.

Which rewrites are on by default was measured on onnxruntime and OpenVINO (bench/graphs.py);
the others stay available by name for that measurement.
"""
from __future__ import annotations

import copy
from typing import Sequence

from torch import nn

from vidsynth.errors import ExportError, choice_error
from vidsynth.export.contract import GRAPH_REWRITES
from vidsynth.models import VideoGenerator
from vidsynth.optimize import FusedMotion, LatentProjection, LeanFeedbackMotion, SubPixelConvTranspose, fold_image_generator

DEFAULT_REWRITES = ("fold-motion-bn", "fold-image-bn", "fused-recurrence", "lean-feedback-loop")


def applicable_rewrites(model: VideoGenerator, requested: Sequence[str] = DEFAULT_REWRITES) -> tuple[str, ...]:
    """The requested rewrites that apply to this model (the recurrence rewrite fits its mode)."""
    for name in requested:
        if name not in GRAPH_REWRITES:
            raise choice_error(ExportError, "graph rewrite", name, tuple(GRAPH_REWRITES))
    recurrence = {"same-input": "fused-recurrence", "feedback": "lean-feedback-loop"}[model.config.motion_mode]
    chosen = set(requested) - {"fused-recurrence", "lean-feedback-loop"}
    if recurrence in requested:
        chosen |= {recurrence, "fold-motion-bn"}  # the recurrence rewrites fold the motion batch norm
    elif "fold-motion-bn" in chosen:
        raise ExportError("fold-motion-bn comes with the recurrence rewrite: add fused-recurrence and lean-feedback-loop")
    if {"latent-matmul", "sub-pixel-last"} & chosen and "fold-image-bn" not in chosen:
        raise ExportError("latent-matmul and sub-pixel-last rewrite the folded layers: add fold-image-bn")
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
        if "sub-pixel-last" in applied:
            last = max(i for i, layer in enumerate(layers) if isinstance(layer, nn.ConvTranspose2d))
            layers[last] = SubPixelConvTranspose(layers[last])
        rewritten.image = nn.Sequential(*layers)
    return rewritten.eval(), applied
