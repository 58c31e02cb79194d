"""Which ONNX graph rewrites make runtimes faster: the same weights exported with each set of
rewrites (vidsynth.export.rewrites), timed on onnxruntime and OpenVINO side by side.

    python -m vidsynth.bench.graphs [--weights demo] [--batch 8] [--frames 64] [--threads 0] [--repeats 5]

Prints one row per (rewrites, runtime): best and median seconds per call, the contenders
timed in turn (round robin) so that load from elsewhere hits all of them alike, with progress
bars on stderr meanwhile. vidsynth.export.rewrites keeps only what won here; the candidates
that did not stay live in EXPERIMENTS.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vidsynth.bench.measure import round_robin

VARIANTS = ("literal (--no-optimize)", "default", "default + latent-matmul", "default + sub-pixel-upsampling")


def latent_matmul(image: Any) -> Any:
    """The first ConvTranspose2d (on a 1x1 latent) as one matrix product."""
    from vidsynth.model.inference import rewrite_for_cpu

    return rewrite_for_cpu(image, latent_matmul=True, sub_pixel_last=False)


def sub_pixel_upsampling(image: Any) -> Any:
    """Every stride-2 ConvTranspose2d as a 2x2 convolution and depth-to-space."""
    from torch import nn

    from vidsynth.model.inference import SubPixelConvTranspose

    def rewritten(layer: nn.Module) -> nn.Module:
        upsampling = isinstance(layer, nn.ConvTranspose2d) and layer.stride == (2, 2)
        return SubPixelConvTranspose(layer) if upsampling else layer

    return nn.Sequential(*(rewritten(layer) for layer in image))


# Candidates measured here and left out of the export (see bench/results/graphs.md).
EXPERIMENTS = {"latent-matmul": latent_matmul, "sub-pixel-upsampling": sub_pixel_upsampling}


def variant_model(model: Any, variant: str) -> tuple[Any, tuple[str, ...]]:
    """The model a variant exports and the names of its rewrites."""
    from vidsynth.export.rewrites import rewrite_for_export

    if variant.startswith("literal"):
        return model, ()
    rewritten, applied = rewrite_for_export(model)
    experiment = variant.removeprefix("default + ")
    if experiment in EXPERIMENTS:
        rewritten.image = EXPERIMENTS[experiment](rewritten.image)
        applied += (experiment,)
    return rewritten, applied


def runners(path: Path, threads: int) -> dict:
    from vidsynth.optional import onnxruntime_session
    from vidsynth.runtime.openvino_backend import compile_graph

    session = onnxruntime_session(path, threads=threads)
    compiled = compile_graph(path, threads)
    return {
        "onnxruntime": lambda feed: session.run(["video"], feed)[0],
        "openvino": lambda feed: compiled(feed)["video"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="demo")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="0: each runtime's default")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from vidsynth.artifacts.contract import DEFAULT_OPSET, generator_contract, graph_inputs
    from vidsynth.export.onnx_export import export_graph
    from vidsynth.model.noise import sample_noise
    from vidsynth.weights import load_model

    model = load_model(args.weights)
    noise = sample_noise(model.config, args.batch, seed=0)
    feed = graph_inputs(generator_contract(model.config), noise, args.frames)
    print(
        f"{args.weights} {model.config.image_size}x{model.config.image_size} ngf={model.config.ngf}, "
        f"B={args.batch} x T={args.frames}, threads={args.threads or 'default'}, load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        contenders, errors, reference = {}, {}, None
        for index, label in enumerate(tqdm(VARIANTS, desc="export and warm up", unit="graph")):
            path = Path(tmp) / str(index) / "generator.onnx"
            path.parent.mkdir()
            rewritten, applied = variant_model(model, label)
            export_graph(rewritten, path, DEFAULT_OPSET, rewrites=applied)
            for runtime, run in runners(path, args.threads).items():
                video = run(feed)  # warm-up
                reference = video if reference is None else reference
                contenders[(label, runtime)] = run
                errors[(label, runtime)] = float(np.abs(video - reference).max())
        calls = {key: functools.partial(run, feed) for key, run in contenders.items()}
        with tqdm(total=args.repeats * len(calls), desc="timed calls", unit="call") as bar:
            times = round_robin(calls, args.repeats, bar.update)
    for (label, runtime), measured in times.items():
        print(
            f"{label:44s} {runtime:12s} best {min(measured):.3f} s  median "
            f"{statistics.median(measured):.3f} s  "
            f"max abs vs the first {errors[(label, runtime)]:.1e}"
        )


if __name__ == "__main__":
    main()
