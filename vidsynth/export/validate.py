"""Validation at export, in the style of optimum's validate_model_outputs: compare eager PyTorch,
the written TorchScript file and the written ONNX files through ONNX Runtime on fresh seeded
inputs at shapes never used while exporting. Every problem (names, then shapes, then values)
is collected first, then reported in one ValidationError; a tolerance failure is never a
warning. The figures measured go into the manifest.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from vidsynth.artifacts.contract import (
    MIN_PSNR_DB,
    ONNX_CHUNK_FILE,
    ONNX_FILE,
    TOLERANCE,
    TORCHSCRIPT_FILE,
    VALIDATION_CHUNKS,
    VALIDATION_SEED,
    VALIDATION_SHAPES,
    ExportContract,
    chunk_contract,
    generator_contract,
    graph_inputs,
    initial_state,
)
from vidsynth.artifacts.pt2 import load_pt2
from vidsynth.artifacts.torchscript_ops import load_torchscript
from vidsynth.errors import ValidationError
from vidsynth.export.onnx_export import RANDOM_OPS, RECURRENT_OPS, op_types
from vidsynth.export.precision import psnr_db
from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import VideoGenerator
from vidsynth.model.noise import Noise, sample_noise
from vidsynth.optional import CPU_PROVIDER, onnxruntime_session

REL_ERROR = "max |actual - reference| / max |reference|"

# A backend runs whole videos: (noise, n_frames) -> video, and streams: (noise, chunks) -> (video, state).
WholeRunner = Callable[[Noise, int], np.ndarray]
StreamRunner = Callable[[Noise, "tuple[int, ...]"], "tuple[np.ndarray, np.ndarray]"]


@dataclass(frozen=True)
class Comparison:
    backend: str  # "torchscript", "onnx", "pt2", or one of them + "_streaming"
    output: str  # "video" or "state_out"
    batch: int
    n_frames: int
    max_abs: float
    max_rel: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_abs <= self.tolerance

    def describe(self) -> str:
        return (
            f"{self.backend} {self.output} (batch {self.batch}, n_frames {self.n_frames}): "
            f"max abs error {self.max_abs:.3g} > tolerance {self.tolerance:.3g} (max rel {self.max_rel:.3g})"
        )


def compare(
    backend: str, output: str, n_frames: int, reference: np.ndarray, actual: np.ndarray, tolerance: float
) -> Comparison:
    """Max abs and rel error of `actual` against `reference` (same shape, batch first)."""
    diff = np.abs(actual.astype(np.float64) - reference.astype(np.float64))
    max_abs = float(diff.max()) if diff.size else 0.0
    peak = float(np.abs(reference).max()) if reference.size else 0.0
    max_rel = max_abs / peak if peak > 0 else (0.0 if max_abs == 0 else math.inf)
    return Comparison(backend, output, reference.shape[0], n_frames, max_abs, max_rel, tolerance)


def _as_torch(noise: Noise) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    category = None if noise.category is None else torch.from_numpy(noise.category)
    return torch.from_numpy(noise.z_content), torch.from_numpy(noise.z_motion), category


def eager_video(model: VideoGenerator, noise: Noise, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Eager PyTorch's video and final recurrent state: the reference."""
    return torch_runners(model)[1](noise, (n_frames,))


def torch_runners(module: Any) -> tuple[WholeRunner, StreamRunner]:
    """Runners over a torch module with the generator's interface: forward, initial_state and
    generate_chunk (the eager model, the scripted generator.pt, or the .pt2 packages' Pt2Generator)."""

    def whole(noise: Noise, n_frames: int) -> np.ndarray:
        z_content, z_motion, category = _as_torch(noise)
        with torch.inference_mode():
            return module(z_content, z_motion, n_frames, category).numpy()

    def stream(noise: Noise, chunks: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        z_content, z_motion, category = _as_torch(noise)
        parts = []
        with torch.inference_mode():
            state = module.initial_state(z_motion)
            for n_frames in chunks:
                video, state = module.generate_chunk(z_content, state, n_frames, category)
                parts.append(video.numpy())
        return np.concatenate(parts, axis=1), state.numpy()

    return whole, stream


def onnx_runners(whole_session, chunk_session, config: ModelConfig) -> tuple[WholeRunner, StreamRunner]:
    def whole(noise: Noise, n_frames: int) -> np.ndarray:
        return whole_session.run(None, graph_inputs(generator_contract(config), noise, n_frames))[0]

    def stream(noise: Noise, chunks: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        state = initial_state(noise.z_motion, config.state_size)
        parts = []
        for n_frames in chunks:
            inputs = graph_inputs(chunk_contract(config), noise, n_frames)
            video, state = chunk_session.run(None, {**inputs, "state": state})
            parts.append(video)
        return np.concatenate(parts, axis=1), state

    return whole, stream


def check_session_signature(file: str, session, contract: ExportContract) -> list[str]:
    """Names and dtypes an ORT session exposes, against the contract."""
    problems = []
    for kind, got, want in (
        ("inputs", session.get_inputs(), contract.inputs),
        ("outputs", session.get_outputs(), contract.outputs),
    ):
        got_names = [value.name for value in got]
        want_names = [spec.name for spec in want]
        if got_names != want_names:
            problems.append(f"{file} {kind} are {got_names}, expected {want_names}")
            continue
        for value, spec in zip(got, want):
            if value.type != f"tensor({spec.dtype.replace('float32', 'float')})":
                problems.append(
                    f"{file} {kind[:-1]} {spec.name} has type {value.type}, expected {spec.dtype}"
                )
    return problems


def check_output(backend: str, output: str, actual: np.ndarray, expected_shape: tuple[int, ...]) -> list[str]:
    problems = []
    if actual.dtype != np.float32:
        problems.append(f"{backend} {output} has dtype {actual.dtype}, expected float32")
    if tuple(actual.shape) != tuple(expected_shape):
        problems.append(
            f"{backend} {output} has shape {tuple(actual.shape)}, expected {tuple(expected_shape)}"
        )
    return problems


def validate_backends(
    model: VideoGenerator,
    dtype: str,
    whole: dict[str, WholeRunner],
    stream: dict[str, StreamRunner],
    fp32_model: VideoGenerator | None = None,
    min_psnr_db: float = MIN_PSNR_DB,
) -> dict:
    """Compares each backend with eager `model` at the validation shapes, and each streaming
    backend (chunks VALIDATION_CHUNKS) with one eager call of the same total length.
    Lower precisions are also held to `min_psnr_db` against `fp32_model`. Raises one
    ValidationError listing every problem; returns the figures."""
    problems: list[str] = []
    tolerance = TOLERANCE[dtype]
    comparisons: list[Comparison] = []
    psnr: dict[str, float] = {}
    for index, (batch, n_frames) in enumerate(VALIDATION_SHAPES):
        noise = sample_noise(model.config, batch, seed=VALIDATION_SEED + index)
        expected = dict(zip(("video", "state_out"), eager_video(model, noise, n_frames)))
        outputs = {backend: {"video": run(noise, n_frames)} for backend, run in whole.items()}
        if sum(VALIDATION_CHUNKS) == n_frames:
            for backend, run in stream.items():
                outputs[backend] = dict(zip(("video", "state_out"), run(noise, VALIDATION_CHUNKS)))
        videos = {"eager": expected["video"]}
        for backend, made in outputs.items():
            found = [
                p
                for name, out in made.items()
                for p in check_output(backend, name, out, expected[name].shape)
            ]
            problems += found
            if not found:
                comparisons += [
                    compare(backend, name, n_frames, expected[name], out, tolerance)
                    for name, out in made.items()
                ]
                videos[backend] = made["video"]
        if fp32_model is not None:
            fp32_video = eager_video(fp32_model, noise, n_frames)[0]
            for backend, video in videos.items():
                psnr[backend] = min(psnr.get(backend, math.inf), psnr_db(fp32_video, video))
    problems += [c.describe() for c in comparisons if not c.ok]
    problems += [
        f"{backend} {dtype} video is {value:.1f} dB PSNR from float32, below the {min_psnr_db:g} dB minimum"
        for backend, value in psnr.items()
        if value < min_psnr_db
    ]
    if problems:
        header = f"export validation failed against eager PyTorch ({dtype}, tolerance max abs {tolerance:g}):"
        raise ValidationError("\n  - ".join([header] + problems))
    backends = dict.fromkeys(c.backend for c in comparisons)
    figures = {
        "reference": f"eager PyTorch, {dtype}",
        "tolerance": {"max_abs": tolerance},
        "max_rel_definition": REL_ERROR,
        "shapes": [{"batch": b, "n_frames": n} for b, n in VALIDATION_SHAPES],
        "seeds": [VALIDATION_SEED + i for i in range(len(VALIDATION_SHAPES))],
        "streaming_chunks": list(VALIDATION_CHUNKS),
        "onnxruntime_provider": CPU_PROVIDER,
        "max_abs": {b: max(c.max_abs for c in comparisons if c.backend == b) for b in backends},
        "max_rel": {b: max(c.max_rel for c in comparisons if c.backend == b) for b in backends},
        "comparisons": [asdict(c) for c in comparisons],
    }
    if psnr:
        figures["psnr_db_vs_fp32"] = {
            k: (round(v, 2) if math.isfinite(v) else "inf") for k, v in psnr.items()
        }
        figures["min_psnr_db"] = min_psnr_db
    return figures


def validate_export(
    model: VideoGenerator,
    directory: Path,
    formats: tuple[str, ...],
    dtype: str,
    fp32_model: VideoGenerator | None = None,
    min_psnr_db: float = MIN_PSNR_DB,
) -> dict:
    """Loads what `directory` holds (generator.pt, generator.onnx, generator_chunk.onnx, the
    .pt2 packages) and validates it against eager `model`; see validate_backends."""
    config = model.config
    problems: list[str] = []
    whole: dict[str, WholeRunner] = {}
    stream: dict[str, StreamRunner] = {}
    if "torchscript" in formats:
        module, _ = load_torchscript(directory / TORCHSCRIPT_FILE)
        whole["torchscript"], stream["torchscript_streaming"] = torch_runners(module)
        if "prim::Loop" not in str(module.motion.rollout.graph):
            problems.append(f"{TORCHSCRIPT_FILE}: the motion recurrence is not a loop")
    if "onnx" in formats:
        sessions = {}
        for file, contract in (
            (ONNX_FILE, generator_contract(config)),
            (ONNX_CHUNK_FILE, chunk_contract(config)),
        ):
            sessions[file] = onnxruntime_session(directory / file, [CPU_PROVIDER])
            problems += check_session_signature(file, sessions[file], contract)
            ops = op_types(onnx.load(str(directory / file)).graph)
            if not RECURRENT_OPS.intersection(ops):
                problems.append(f"{file}: the recurrence is not an ONNX Loop, Scan, LSTM or GRU")
            random = sorted(RANDOM_OPS.intersection(ops))
            if random:
                problems.append(f"{file} holds random ops {random}")
        whole["onnx"], stream["onnx_streaming"] = onnx_runners(
            sessions[ONNX_FILE], sessions[ONNX_CHUNK_FILE], config
        )
    if "pt2" in formats:
        whole["pt2"], stream["pt2_streaming"] = torch_runners(load_pt2(directory, config, torch.__version__))
    if problems:  # a wrong signature makes value comparisons meaningless
        raise ValidationError("\n  - ".join(["export validation failed:"] + problems))
    return validate_backends(model, dtype, whole, stream, fp32_model, min_psnr_db)
