"""Everything the benchmark times, behind one small interface.

A Contender turns seeded noise into its own inputs once (untimed), then makes whole videos
(`video`) or the first streamed frame (`first_frame`); every call returns a host float32
numpy array, so the cost of handing frames back is counted alike for all.
"""

from __future__ import annotations

import copy
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidsynth.errors import VidsynthError
from vidsynth.model.noise import Noise

logger = logging.getLogger(__name__)

# onnxruntime / openvino run the exported graphs with their inference rewrites (the default
# export); the -literal rows run the same weights exported with --no-optimize.
BENCH_BACKENDS = (
    "reference",
    "eager",
    "torchscript",
    "onnxruntime",
    "onnxruntime-literal",
    "openvino",
    "openvino-literal",
    "torch.compile",
    "optimized",
    "pt2",
    "auto",
    "auto-artifacts",
)
BENCH_PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class Contender:
    backend: str  # one of BENCH_BACKENDS
    precision: str  # fp32, bf16 or fp16 (the image generator's compute precision)
    device: str  # cpu or cuda
    provider: str  # what executes it
    notes: str
    prepare: Callable[[Noise], Any]  # noise -> backend inputs (untimed)
    video: Callable[[Any, int], np.ndarray]  # inputs, n_frames -> (B, T, nc, H, W) float32
    first_frame: Callable[[Any], np.ndarray]  # inputs -> the first frame of each video, streamed
    setup_s: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision}" + ("" if self.device == "cpu" else f" {self.device}")

    def sync(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()


@dataclass
class Skipped:
    backend: str
    precision: str
    device: str
    reason: str

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision}" + ("" if self.device == "cpu" else f" {self.device}")


# -- torch contenders ----------------------------------------------------------------------


def _torch_inputs(device: str) -> Callable[[Noise], tuple]:
    import torch

    def prepare(noise: Noise) -> tuple:
        category = None if noise.category is None else torch.from_numpy(noise.category).to(device)
        return (
            torch.from_numpy(noise.z_content).to(device),
            torch.from_numpy(noise.z_motion).to(device),
            category,
        )

    return prepare


def _host(video: Any) -> np.ndarray:
    import torch

    return video.detach().to("cpu", torch.float32).numpy()


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
    import contextlib

    import torch

    from vidsynth.export.precision import TORCH_DTYPES

    dtype = TORCH_DTYPES.get(autocast) if autocast else None

    def context():
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if dtype is not None:
            stack.enter_context(torch.autocast(device_type=device, dtype=dtype))
        return stack

    def args(inputs: tuple) -> tuple:
        z_content, z_motion, category = inputs
        return (z_content, z_motion) if category is None else (z_content, z_motion, category)

    def video(inputs: tuple, n_frames: int) -> np.ndarray:
        with context():
            z = args(inputs)
            out = module(z[0], z[1], n_frames, *z[2:])
            return _host(out)

    def first_frame(inputs: tuple) -> np.ndarray:
        with context():
            z_content, z_motion, category = inputs
            if not streams:
                out = module(*args(inputs)[:2], 1, *args(inputs)[2:])
                return _host(out)
            state = module.initial_state(z_motion)
            extra = () if category is None else (category,)
            out, _ = module.generate_chunk(z_content, state, 1, *extra)
            return _host(out)

    provider = f"torch {torch.__version__} {device}"
    return Contender(
        backend, precision, device, provider, notes, _torch_inputs(device), video, first_frame, setup_s
    )


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
    for precision in precisions:
        if precision not in ("fp32", "bf16"):
            continue
        module = copy.deepcopy(model).to(device).eval()
        module.image = torch.compile(module.image, dynamic=True)
        notes = "torch.compile(image generator, dynamic=True), inductor" + (
            " under torch.autocast(bf16)" if precision == "bf16" else ""
        )
        contender = torch_contender(
            "torch.compile",
            precision,
            device,
            module,
            notes,
            autocast=None if precision == "fp32" else precision,
        )
        out.append(contender)
    return out


def optimized_contenders(model: Any, device: str, precisions: tuple[str, ...]) -> list[Contender]:
    from vidsynth.model.inference import optimize_for_inference

    out = []
    for precision in precisions:
        if precision not in ("fp32", "bf16") or device != "cpu":
            continue
        start = time.perf_counter()
        module = optimize_for_inference(model, precision)
        last = "sub-pixel last layer, " if precision == "fp32" else ""
        notes = (
            f"vidsynth.model.inference: {module.motion_kind} motion, batch norm folded, first layer as "
            f"a matmul, {last}"
            f"channels-last, {module.image.frame_chunk}-frame chunks"
        )
        out.append(
            torch_contender(
                "optimized", precision, device, module, notes, setup_s=time.perf_counter() - start
            )
        )
    return out


# -- exported artifacts: TorchScript, ONNX Runtime and OpenVINO -------------------------------------


@functools.cache  # several rows run one export
def export_dir(
    model: Any, work_dir: Path, dtype: str, optimize: bool = True
) -> tuple[Path | None, str | None, float]:
    """vidsynth.export's artifacts for `dtype` (ONNX graphs rewritten unless not `optimize`),
    or the reason there are none."""
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


def artifact_contender(
    backend: str,
    directory: Path,
    precision: str,
    device: str,
    threads: int,
    export_s: float,
    row: str | None = None,
) -> Contender:
    """An exported artifact run exactly as `vidsynth generate --artifacts` runs it: the
    runtime's backend, its whole-video call, its first streamed chunk. `row` names the row
    when it is not the backend's name (the -literal rows)."""
    from vidsynth.export import read_manifest
    from vidsynth.runtime.backend import open_backend
    from vidsynth.runtime.request import GenerateRequest

    runner = open_backend(
        GenerateRequest(artifacts=str(directory), backend=backend, device=device, threads=threads).validate()
    )
    notes = f"vidsynth.export artifacts ({precision}) through vidsynth.runtime's {backend} backend"
    if backend in ("onnxruntime", "openvino"):
        rewrites = read_manifest(directory, verify_hashes=False)["rewrites"]
        notes += (
            f"; ONNX rewrites: {', '.join(rewrites)}"
            if rewrites
            else "; --no-optimize: the literal ONNX graph"
        )
    return Contender(
        row or backend,
        precision,
        device,
        runner.detail,
        notes,
        prepare=lambda noise: noise,
        video=runner.generate,
        first_frame=lambda noise: runner.generate_chunk(noise, runner.initial_state(noise), 1)[0],
        setup_s=export_s,
    )


def auto_contender(source: dict[str, str], device: str, threads: int, export_s: float = 0.0) -> Contender:
    """What `vidsynth generate` runs by default (`--backend auto`) for weights or artifacts."""
    from vidsynth.runtime.backend import auto_choice, open_backend
    from vidsynth.runtime.request import GenerateRequest

    name, why = auto_choice(GenerateRequest(**source, device=device, threads=threads).validate())
    runner = open_backend(GenerateRequest(**source, backend=name, device=device, threads=threads))
    row = "auto" if "weights" in source else "auto-artifacts"
    precision = "bf16" if runner.name.endswith("bf16") else "fp32"
    return Contender(
        row,
        precision,
        runner.device,
        runner.detail,
        f"--backend auto chose {name}: {why}",
        prepare=lambda noise: noise,
        video=runner.generate,
        first_frame=lambda noise: runner.generate_chunk(noise, runner.initial_state(noise), 1)[0],
        setup_s=export_s,
    )


def pt2_contender(
    model: Any, device: str, precisions: tuple[str, ...], threads: int, work_dir: Path
) -> Contender | Skipped:
    """The .pt2 packages (AOTInductor, CPU fp32), exported here (compiling is their setup) and
    run through the runtime's pt2 backend."""
    from vidsynth.export import export_artifacts

    if device != "cpu" or "fp32" not in precisions:
        return Skipped("pt2", "fp32", device, "the pt2 packages are compiled for the CPU in fp32")
    target = work_dir / "export-pt2"
    start = time.perf_counter()
    try:
        export_artifacts(model, target, formats=("pt2",), force=True)
    except VidsynthError as exc:
        return Skipped("pt2", "fp32", device, f"vidsynth.export refused pt2: {exc}")
    return artifact_contender("pt2", target, "fp32", device, threads, time.perf_counter() - start)


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
            for backend in sorted(wants_export):
                skipped.append(Skipped(backend, precision, device, problem or "no artifacts"))
            continue
        if "torchscript" in backends and not (device == "cpu" and precision == "fp16"):
            contenders.append(
                artifact_contender("torchscript", directory, precision, device, threads, export_s)
            )
        if "onnxruntime" in backends:
            if problem is not None:
                skipped.append(Skipped("onnxruntime", precision, device, problem))
            else:
                try:
                    contenders.append(
                        artifact_contender("onnxruntime", directory, precision, device, threads, export_s)
                    )
                except VidsynthError as exc:
                    skipped.append(Skipped("onnxruntime", precision, device, str(exc)))
        if "openvino" in backends and precision == "fp32" and problem is None:
            _add_artifact_row(contenders, skipped, "openvino", directory, device, threads, export_s)
    if {"onnxruntime-literal", "openvino-literal"} & set(backends) and "fp32" in precisions:
        logger.info("exporting fp32 artifacts with --no-optimize")
        literal, problem, export_s = export_dir(model, work_dir, "fp32", optimize=False)
        for row in ("onnxruntime-literal", "openvino-literal"):
            if row not in backends:
                continue
            if literal is None or problem is not None:
                skipped.append(Skipped(row, "fp32", device, problem or "no artifacts"))
            else:
                _add_artifact_row(contenders, skipped, row, literal, device, threads, export_s)
    if "torch.compile" in backends:
        contenders += compile_contenders(model, device, precisions)
    if "optimized" in backends:
        contenders += optimized_contenders(model, device, precisions)
    if "pt2" in backends:
        logger.info("exporting the pt2 packages (AOTInductor compiles C++)")
        found = pt2_contender(model, device, precisions, threads, work_dir)
        (contenders if isinstance(found, Contender) else skipped).append(found)
    if "auto" in backends:
        contenders.append(auto_contender({"weights": weights}, device, threads))
    if "auto-artifacts" in backends:
        directory, problem, export_s = export_dir(model, work_dir, "fp32")
        if directory is None or problem is not None:
            skipped.append(Skipped("auto-artifacts", "fp32", device, problem or "no artifacts"))
        else:
            contenders.append(auto_contender({"artifacts": str(directory)}, device, threads, export_s))
    return contenders, skipped


def _add_artifact_row(
    contenders: list[Contender],
    skipped: list[Skipped],
    row: str,
    directory: Path,
    device: str,
    threads: int,
    export_s: float,
) -> None:
    """An ONNX runtime's row at fp32 (openvino: CPU only), or why it is skipped."""
    backend = row.removesuffix("-literal")
    if backend == "openvino" and device != "cpu":
        skipped.append(Skipped(row, "fp32", device, "the openvino backend runs on the CPU"))
        return
    try:
        contenders.append(artifact_contender(backend, directory, "fp32", device, threads, export_s, row=row))
    except VidsynthError as exc:  # the runtime not installed, or a graph it cannot load
        skipped.append(Skipped(row, "fp32", device, str(exc)))


# -- motion recurrence alone ---------------------------------------------------------------


def motion_contenders(model: Any, threads: int = 2) -> dict[str, Callable[[Any, int], Any]]:
    """Rollout functions (z_motion tensor, n_frames) -> codes, CPU fp32."""
    import torch

    from vidsynth.bench.reference import ReferenceGenerator
    from vidsynth.model.inference import optimize_for_inference

    reference = ReferenceGenerator.from_model(model).motion
    eager = copy.deepcopy(model.motion).eval()
    scripted = torch.jit.script(copy.deepcopy(model.motion).eval())
    optimized = optimize_for_inference(model)

    def run_reference(z_motion: Any, n_frames: int) -> Any:
        reference.initHidden(z_motion.size(0))
        return reference(z_motion, n_frames)

    def rollout(module: Any) -> Callable[[Any, int], Any]:
        def run(z_motion: Any, n_frames: int) -> Any:
            return module.rollout(optimized.initial_state(z_motion), n_frames)[0]

        return run

    contenders = {
        "reference (nn.LSTMCell loop)"
        if model.config.cell == "lstm"
        else "reference (nn.GRUCell loop)": run_reference,
        "eager (vidsynth layers loop)": rollout(eager),
        "torchscript (scripted loop)": rollout(scripted),
    }
    contenders[f"optimized ({optimized.motion_kind})"] = rollout(optimized.motion)
    contenders = {name: _no_grad(fn) for name, fn in contenders.items()}
    from vidsynth.bench.motion_onnx import motion_kind, ort_motion

    contenders[f"onnxruntime ({motion_kind(model)} as exported, motion-only graph)"] = ort_motion(
        model, threads
    )
    return contenders


def _no_grad(fn: Callable) -> Callable:
    import torch

    def run(*args: Any) -> Any:
        with torch.inference_mode():
            return fn(*args)

    return run
