"""The optimized backend: vidsynth.optimize's CPU inference copy of the weights (fused
recurrence, folded batch norm, channels-last, optionally bf16 on AMX). Same videos as eager
within float rounding (fp32) or bf16 rounding of the image generator."""
from __future__ import annotations

from typing import Callable, Optional

from vidsynth.errors import RuntimeBackendError
from vidsynth.runtime.backends.torch_backend import TorchBackend


def open_optimized(weights: Optional[str], device: str, precision: str, notify: Callable[[str], None]) -> TorchBackend:
    from vidsynth.optimize import optimize_for_inference
    from vidsynth.weights import load_model

    if device == "cuda":
        raise RuntimeBackendError("the optimized backend runs on the CPU; on CUDA use --backend eager or torchscript")
    if device == "auto":
        notify("the optimized backend runs on the CPU")
    model = optimize_for_inference(load_model(weights), precision)
    backend = TorchBackend("optimized" if precision == "fp32" else f"optimized-{precision}", model, model.config, "cpu")
    backend.detail += f", {precision}, motion: {model.motion_kind}"
    return backend
