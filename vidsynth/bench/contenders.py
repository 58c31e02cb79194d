"""Everything the benchmark times, behind one small interface.

A Contender turns seeded noise into its own inputs once (untimed), then makes whole videos
(`video`) or the first streamed frame (`first_frame`); every call returns a host float32
numpy array, so the cost of handing frames back is counted alike for all (and no call leaves
GPU work running: timing a call needs no CUDA synchronisation).
"""

from __future__ import annotations

import copy
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidsynth.errors import VidsynthError
from vidsynth.model.noise import Noise

logger = logging.getLogger(__name__)

# onnxruntime / openvino run the exported graphs with their inference rewrites (the default
# export); the -literal rows run the same weights exported with --no-optimize.
BENCH_BACKENDS = (
    "reference", "eager", "torchscript", "onnxruntime", "onnxruntime-literal", "openvino", "openvino-literal",
    "torch.compile", "optimized", "pt2", "auto", "auto-artifacts",
)  # fmt: skip
BENCH_PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class Row:
    backend: str  # one of BENCH_BACKENDS
    precision: str  # fp32, bf16 or fp16 (the image generator's compute precision)
    device: str  # cpu or cuda

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision}" + ("" if self.device == "cpu" else f" {self.device}")


@dataclass
class Skipped(Row):
    reason: str


@dataclass
class Contender(Row):
    provider: str  # what executes it
    notes: str
    prepare: Callable[[Noise], Any]  # noise -> backend inputs (untimed)
    video: Callable[[Any, int], np.ndarray]  # inputs, n_frames -> (B, T, nc, H, W) float32
    first_frame: Callable[[Any], np.ndarray]  # inputs -> the first frame of each video, streamed
    setup_s: float = 0.0
    first_call_s: float | None = None  # lazy setup included (torch.compile compiles there)


# -- torch contenders ----------------------------------------------------------------------


def torch_contender(
    backend: str,
    precision: str,
    device: str,
    module: Any,
    notes: str,
    autocast: str | None = None,
    streams: bool = True,
    setup_s: float = 0.0,
) -> Contender:
    """A module with VideoGenerator's forward(z_content, z_motion, n_frames[, category]) and,
    when `streams`, initial_state + generate_chunk. `autocast` runs it under torch.autocast."""
    import torch

    from vidsynth.export.precision import TORCH_DTYPES

    dtype = TORCH_DTYPES.get(autocast) if autocast else None

    def prepare(noise: Noise) -> tuple:
        arrays = (noise.z_content, noise.z_motion) + (() if noise.category is None else (noise.category,))
        return tuple(torch.from_numpy(array).to(device) for array in arrays)

    def host(call: Callable[[], Any]) -> np.ndarray:
        with torch.inference_mode(), torch.autocast(device, dtype, enabled=dtype is not None):
            return call().detach().to("cpu", torch.float32).numpy()

    def video(inputs: tuple, n_frames: int) -> np.ndarray:
        z_content, z_motion, *category = inputs
        return host(lambda: module(z_content, z_motion, n_frames, *category))

    def first_frame(inputs: tuple) -> np.ndarray:
        if not streams:
            return video(inputs, 1)
        z_content, z_motion, *category = inputs
        return host(lambda: module.generate_chunk(z_content, module.initial_state(z_motion), 1, *category)[0])

    provider = f"torch {torch.__version__} {device}"
    return Contender(backend, precision, device, provider, notes, prepare, video, first_frame, setup_s)


def reference_contender(model: Any, device: str) -> Contender:
    from vidsynth.bench.reference import ReferenceGenerator

    start = time.perf_counter()
    reference = ReferenceGenerator.from_model(model).to(device)
    notes = (
        "torch.nn LSTMCell/GRUCell in a Python loop + nn.Sequential Generator_I, "
        "eager fp32 (the public scripts)"
    )
    return torch_contender(
        "reference", "fp32", device, reference, notes, streams=False, setup_s=time.perf_counter() - start
    )


def eager_contenders(model: Any, device: str, precisions: tuple[str, ...]) -> list[Contender]:
    module = copy.deepcopy(model).to(device).eval()
    out = []
    for precision in precisions:
        if precision == "fp32":
            out.append(torch_contender("eager", "fp32", device, module, "vidsynth VideoGenerator, eager"))
        elif precision == "bf16" or device == "cuda":
            notes = f"vidsynth VideoGenerator under torch.autocast({precision})"
            out.append(torch_contender("eager", precision, device, module, notes, autocast=precision))
    return out


def compile_contenders(model: Any, device: str, precisions: tuple[str, ...]) -> list[Contender]:
    """torch.compile of the image generator (dynamic shapes); the recurrence stays eager, since
    compiling it would unroll the frame loop once per frame count."""
    import torch

    out = []
    for precision in (p for p in precisions if p in ("fp32", "bf16")):
        module = copy.deepcopy(model).to(device).eval()
        module.image = torch.compile(module.image, dynamic=True)
        autocast = None if precision == "fp32" else precision
        notes = "torch.compile(image generator, dynamic=True), inductor" + (
            f" under torch.autocast({autocast})" if autocast else ""
        )
        out.append(torch_contender("torch.compile", precision, device, module, notes, autocast=autocast))
    return out


def optimized_contenders(model: Any, device: str, precisions: tuple[str, ...]) -> list[Contender]:
    from vidsynth.model.inference import optimize_for_inference

    out = []
    for precision in (p for p in precisions if p in ("fp32", "bf16") and device == "cpu"):
        start = time.perf_counter()
        module = optimize_for_inference(model, precision)
        last = "sub-pixel last layer, " if precision == "fp32" else ""
        notes = (
            f"vidsynth.model.inference: {module.motion_kind} motion, batch norm folded, first layer as "
            f"a matmul, {last}channels-last, {module.image.frame_chunk}-frame chunks"
        )
        setup_s = time.perf_counter() - start
        out.append(torch_contender("optimized", precision, device, module, notes, setup_s=setup_s))
    return out


# -- exported artifacts: TorchScript, ONNX Runtime, OpenVINO and pt2 ------------------------------


@functools.cache  # several rows run one export
def export_dir(
    model: Any, work_dir: Path, dtype: str, optimize: bool = True
) -> tuple[Path | None, str | None, float]:
    """vidsynth.export's artifacts for `dtype` (ONNX graphs rewritten unless not `optimize`),
    the reason there are none or no ONNX graph among them, and the seconds it took."""
    from vidsynth.export import export_artifacts

    target = work_dir / (f"export-{dtype}" if optimize else f"export-{dtype}-literal")
    start = time.perf_counter()
    try:
        formats = ("torchscript", "onnx") if optimize else ("onnx",)
        export_artifacts(model, target, formats=formats, dtype=dtype, force=True, optimize=optimize)
    except VidsynthError as exc:
        try:  # a precision that onnxruntime cannot validate may still script
            export_artifacts(model, target, formats=("torchscript",), dtype=dtype, force=True)
        except VidsynthError:
            return None, f"vidsynth.export refused dtype {dtype}: {exc}", time.perf_counter() - start
        return target, f"onnx at {dtype}: {exc}", time.perf_counter() - start
    return target, None, time.perf_counter() - start


def runtime_contender(
    row: str, precision: str, device: str, runner: Any, notes: str, setup_s: float
) -> Contender:
    """A vidsynth.runtime backend: its whole-video call and its first streamed chunk."""
    return Contender(
        row,
        precision,
        device,
        runner.detail,
        notes,
        prepare=lambda noise: noise,
        video=runner.generate,
        first_frame=lambda noise: runner.generate_chunk(noise, runner.initial_state(noise), 1)[0],
        setup_s=setup_s,
    )


def artifact_contender(
    row: str, directory: Path, precision: str, device: str, threads: int, export_s: float
) -> Contender:
    """An exported artifact run exactly as `vidsynth generate --artifacts` runs it, by the
    backend `row` names (the -literal rows: the --no-optimize export's graph)."""
    from vidsynth.export import read_manifest
    from vidsynth.runtime.backend import open_backend
    from vidsynth.runtime.request import GenerateRequest

    backend = row.removesuffix("-literal")
    request = GenerateRequest(artifacts=str(directory), backend=backend, device=device, threads=threads)
    runner = open_backend(request.validate())
    notes = f"vidsynth.export artifacts ({precision}) through vidsynth.runtime's {backend} backend"
    if backend in ("onnxruntime", "openvino"):
        rewrites = read_manifest(directory, verify_hashes=False)["rewrites"]
        literal = "; --no-optimize: the literal ONNX graph"
        notes += f"; ONNX rewrites: {', '.join(rewrites)}" if rewrites else literal
    return runtime_contender(row, precision, device, runner, notes, export_s)


def auto_contender(source: dict[str, str], device: str, threads: int, export_s: float = 0.0) -> Contender:
    """What `vidsynth generate` runs by default (`--backend auto`) for weights or artifacts."""
    from vidsynth.runtime.backend import auto_choice, open_backend
    from vidsynth.runtime.request import GenerateRequest

    name, why = auto_choice(GenerateRequest(**source, device=device, threads=threads).validate())
    runner = open_backend(GenerateRequest(**source, backend=name, device=device, threads=threads))
    row = "auto" if "weights" in source else "auto-artifacts"
    precision = "bf16" if runner.name.endswith("bf16") else "fp32"
    return runtime_contender(
        row, precision, runner.device, runner, f"--backend auto chose {name}: {why}", export_s
    )


def build_contenders(
    model: Any,
    weights: str,
    device: str,
    backends: tuple[str, ...],
    precisions: tuple[str, ...],
    threads: int,
    work_dir: Path,
) -> tuple[list[Contender], list[Skipped]]:
    contenders: list[Contender] = []
    skipped: list[Skipped] = []

    def add_artifact(row: str, directory: Path, precision: str, export_s: float, problem: str | None) -> None:
        """An ONNX runtime's row (openvino: CPU only), or why it is skipped."""
        if problem is None and row.startswith("openvino") and device != "cpu":
            problem = "the openvino backend runs on the CPU"
        if problem is not None:
            skipped.append(Skipped(row, precision, device, problem))
            return
        try:
            contenders.append(artifact_contender(row, directory, precision, device, threads, export_s))
        except VidsynthError as exc:  # the runtime not installed, or a graph it cannot load
            skipped.append(Skipped(row, precision, device, str(exc)))

    if "reference" in backends:
        contenders.append(reference_contender(model, device))
    if "eager" in backends:
        contenders += eager_contenders(model, device, precisions)
    wants_export = {"torchscript", "onnxruntime", "openvino"} & set(backends)
    for precision in precisions if wants_export else ():
        if device == "cpu" and precision == "fp16" and "onnxruntime" not in backends:
            continue
        logger.info(f"exporting {precision} artifacts")
        directory, problem, export_s = export_dir(model, work_dir, precision)
        if directory is None:
            skipped += [Skipped(backend, precision, device, problem) for backend in sorted(wants_export)]
            continue
        if "torchscript" in backends and not (device == "cpu" and precision == "fp16"):
            contenders.append(
                artifact_contender("torchscript", directory, precision, device, threads, export_s)
            )
        if "onnxruntime" in backends:
            add_artifact("onnxruntime", directory, precision, export_s, problem)
        if "openvino" in backends and precision == "fp32" and problem is None:
            add_artifact("openvino", directory, precision, export_s, None)
    literal_rows = [row for row in ("onnxruntime-literal", "openvino-literal") if row in backends]
    if literal_rows and "fp32" in precisions:
        logger.info("exporting fp32 artifacts with --no-optimize")
        literal, problem, export_s = export_dir(model, work_dir, "fp32", optimize=False)
        for row in literal_rows:
            add_artifact(row, literal, "fp32", export_s, problem)
    if "torch.compile" in backends:
        contenders += compile_contenders(model, device, precisions)
    if "optimized" in backends:
        contenders += optimized_contenders(model, device, precisions)
    if "pt2" in backends:
        contenders += pt2_contenders(model, device, precisions, threads, work_dir, skipped)
    if "auto" in backends:
        contenders.append(auto_contender({"weights": weights}, device, threads))
    if "auto-artifacts" in backends:
        directory, problem, export_s = export_dir(model, work_dir, "fp32")
        if problem is None:
            contenders.append(auto_contender({"artifacts": str(directory)}, device, threads, export_s))
        else:
            skipped.append(Skipped("auto-artifacts", "fp32", device, problem))
    return contenders, skipped


def pt2_contenders(
    model: Any, device: str, precisions: tuple[str, ...], threads: int, work_dir: Path, skipped: list[Skipped]
) -> list[Contender]:
    """The .pt2 packages (AOTInductor, CPU fp32), exported here (compiling is their setup) and
    run through the runtime's pt2 backend; or, in `skipped`, why not."""
    from vidsynth.export import export_artifacts

    logger.info("exporting the pt2 packages (AOTInductor compiles C++)")
    if device != "cpu" or "fp32" not in precisions:
        skipped.append(Skipped("pt2", "fp32", device, "the pt2 packages are compiled for the CPU in fp32"))
        return []
    target = work_dir / "export-pt2"
    start = time.perf_counter()
    try:
        export_artifacts(model, target, formats=("pt2",), force=True)
    except VidsynthError as exc:
        skipped.append(Skipped("pt2", "fp32", device, f"vidsynth.export refused pt2: {exc}"))
        return []
    return [artifact_contender("pt2", target, "fp32", device, threads, time.perf_counter() - start)]
