"""The motion recurrence alone as an ONNX graph, written the way `vidsynth export` writes it
in generator.onnx: vidsynth.export.rewrites' motion module (ONNX's LSTM/GRU operator for
same-input models, the one-matmul-per-step Loop for feedback ones), exported by the same
TorchScript-based exporter. What onnxruntime's kernels make of the motion generator alone."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from vidsynth.artifacts.contract import initial_state


def motion_graph(model: Any) -> bytes:
    """Serialized ONNX: inputs state (B, state_size) f32, n_frames int64 scalar -> codes (T, B, d_motion)."""
    import torch
    from torch import Tensor, nn

    from vidsynth.export.rewrites import rewrite_for_export

    class Rollout(nn.Module):
        def __init__(self, motion: nn.Module) -> None:
            super().__init__()
            self.motion = motion

        def forward(self, state: Tensor, n_frames: Tensor) -> Tensor:
            return self.motion.rollout(state, int(n_frames))[0]

    rewritten, _ = rewrite_for_export(model)
    example = rewritten.initial_state(torch.zeros(2, model.config.d_motion))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and batch-size notes
        torch.onnx.export(
            torch.jit.script(Rollout(rewritten.motion)),
            (example, torch.tensor(3)),
            buffer,
            dynamo=False,
            opset_version=17,
            input_names=["state", "n_frames"],
            output_names=["codes"],
            dynamic_axes={"state": {0: "batch"}, "codes": {0: "n_frames", 1: "batch"}},
        )
    return buffer.getvalue()


def motion_kind(model: Any) -> str:
    return (
        f"ONNX {model.config.cell.upper()} op"
        if model.config.motion_mode == "same-input"
        else "one-matmul Loop"
    )


def ort_motion(model: Any, threads: int) -> Callable[[Any, int], np.ndarray]:
    """(z_motion tensor, n_frames) -> codes, through onnxruntime."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(motion_graph(model), options, providers=["CPUExecutionProvider"])

    def run(z_motion: Any, n_frames: int) -> np.ndarray:
        state = initial_state(z_motion.numpy(), model.config.state_size)
        return session.run(["codes"], {"state": state, "n_frames": np.array(n_frames, dtype=np.int64)})[0]

    return run
