"""The inference rewrites the ONNX graphs carry, applied to a copy of the model before export.

`rewrite_for_export` swaps in vidsynth.model.inference's forms (shared with the in-process
optimized backend) and keeps VideoGenerator's interface, so the exporter and the validation
against the literal eager model are unchanged. The image generator keeps the rewrites that made
onnxruntime or OpenVINO faster and neither slower, since one file serves both (bench/graphs.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from vidsynth.artifacts.contract import GRAPH_REWRITES
from vidsynth.errors import ExportError, choice_error
from vidsynth.export.precision import deployable_copy
from vidsynth.model.generator import VideoGenerator
from vidsynth.model.inference import InferenceMotion, fold_image_generator, rewrite_for_cpu

DEFAULT_REWRITES = tuple(GRAPH_REWRITES)
RECURRENCE_REWRITES = {"same-input": "fused-recurrence", "feedback": "lean-feedback-loop"}


def applicable_rewrites(
    model: VideoGenerator, requested: Sequence[str] = DEFAULT_REWRITES
) -> tuple[str, ...]:
    """The requested rewrites that apply to this model (the recurrence rewrite fits its mode)."""
    for name in requested:
        if name not in GRAPH_REWRITES:
            raise choice_error(ExportError, "graph rewrite", name, tuple(GRAPH_REWRITES))
    recurrence = RECURRENCE_REWRITES[model.config.motion_mode]
    chosen = set(requested) - set(RECURRENCE_REWRITES.values())
    if recurrence in requested:
        chosen |= {recurrence, "fold-motion-bn"}  # the recurrence rewrites fold the motion batch norm
    elif "fold-motion-bn" in chosen:
        raise ExportError(
            "fold-motion-bn comes with the recurrence rewrite: add fused-recurrence and lean-feedback-loop"
        )
    if "sub-pixel-last" in chosen and "fold-image-bn" not in chosen:
        raise ExportError("sub-pixel-last rewrites the folded last layer: add fold-image-bn")
    return tuple(name for name in GRAPH_REWRITES if name in chosen)


def rewrite_for_export(
    model: VideoGenerator, requested: Sequence[str] = DEFAULT_REWRITES
) -> tuple[VideoGenerator, tuple[str, ...]]:
    """An eval-mode float32 CPU copy of `model` with the applicable rewrites, and their names."""
    applied = applicable_rewrites(model, requested)
    rewritten = deployable_copy(model)
    if "fold-motion-bn" in applied:
        rewritten.motion = InferenceMotion(rewritten.motion, model.config.cell)
    if "fold-image-bn" in applied:
        folded = fold_image_generator(rewritten.image)
        rewritten.image = rewrite_for_cpu(
            folded, latent_matmul=False, sub_pixel_last="sub-pixel-last" in applied
        )
    return rewritten.eval(), applied
