"""The motion recurrence alone, at batch 1 on the CPU in fp32: the reference's torch.nn cell
loop, vidsynth's eager and scripted loops, the optimized module, and the ONNX graph written
the way `vidsynth export` writes it in generator.onnx (vidsynth.export.rewrites' motion module:
ONNX's LSTM/GRU operator for same-input models, the one-matmul-per-step Loop for feedback
ones) run by onnxruntime."""

from __future__ import annotations

import copy
import io
import logging
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from vidsynth.artifacts.contract import initial_state
from vidsynth.bench.measure import round_robin
from vidsynth.model.noise import sample_noise

logger = logging.getLogger(__name__)


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


def measure_motion(model: Any, frames: int, repeats: int, seed: int, threads: int) -> dict[str, Any]:
    """Microseconds per recurrent step at batch 1, each contender's largest difference from eager."""
    import torch

    from vidsynth.bench.reference import ReferenceGenerator
    from vidsynth.model.inference import optimize_for_inference
    from vidsynth.optional import onnxruntime_session

    config = model.config
    reference = ReferenceGenerator.from_model(model).motion
    optimized = optimize_for_inference(model)
    session = onnxruntime_session(motion_graph(model), threads=threads)
    z_motion = torch.from_numpy(sample_noise(config, 1, seed=seed).z_motion)

    def run_reference() -> Any:
        reference.initHidden(z_motion.size(0))
        return reference(z_motion, frames)

    def run_onnx() -> np.ndarray:
        state = initial_state(z_motion.numpy(), config.state_size)
        return session.run(["codes"], {"state": state, "n_frames": np.array(frames, dtype=np.int64)})[0]

    def rollout(module: Any) -> Callable[[], Any]:
        return lambda: module.rollout(optimized.initial_state(z_motion), frames)[0]

    exported = f"ONNX {config.cell.upper()} op" if config.motion_mode == "same-input" else "one-matmul Loop"
    calls = {
        f"reference (nn.{'LSTM' if config.cell == 'lstm' else 'GRU'}Cell loop)": run_reference,
        "eager (vidsynth layers loop)": rollout(copy.deepcopy(model.motion).eval()),
        "torchscript (scripted loop)": rollout(torch.jit.script(copy.deepcopy(model.motion).eval())),
        f"optimized ({optimized.motion_kind})": rollout(optimized.motion),
    }
    calls = {name: torch.inference_mode()(call) for name, call in calls.items()}
    calls[f"onnxruntime ({exported} as exported, motion-only graph)"] = run_onnx
    with torch.inference_mode():
        expected, _ = copy.deepcopy(model.motion).eval().rollout(model.initial_state(z_motion), frames)
    errors = {
        name: float(np.abs(np.asarray(call()) - expected.numpy()).max()) for name, call in calls.items()
    }
    per_step = {name: float(np.median(s) / frames * 1e6) for name, s in round_robin(calls, repeats).items()}
    for name, us in per_step.items():
        logger.info(f"  motion {name}: {us:.2f} us/step")
    return {
        "batch": 1,
        "frames": frames,
        "repeats": repeats,
        "us_per_step": per_step,
        "max_abs_err_vs_eager": errors,
    }
