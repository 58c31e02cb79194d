"""Which ONNX graph rewrites make runtimes faster: the same weights exported with each set of
rewrites (vidsynth.export.rewrites), timed on onnxruntime and OpenVINO side by side.

    python -m bench.graphs [--weights demo] [--batch 8] [--frames 64] [--threads 0] [--repeats 5]

Prints one row per (rewrites, runtime): median and best seconds per call. The defaults in
vidsynth.export.rewrites.DEFAULT_REWRITES keep only what won here.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

VARIANTS = {
    "literal (--no-optimize)": None,
    "default": "default",
    "default + latent-matmul": ("latent-matmul",),
    "default + sub-pixel-last": ("sub-pixel-last",),
    "default + latent-matmul + sub-pixel-last": ("latent-matmul", "sub-pixel-last"),
}


def export_variant(model, directory: Path, extra) -> Path:
    from vidsynth.export.contract import DEFAULT_OPSET
    from vidsynth.export.onnx import export_graph
    from vidsynth.export.rewrites import DEFAULT_REWRITES, rewrite_for_export

    path = directory / "generator.onnx"
    if extra is None:
        export_graph(model, path, DEFAULT_OPSET)
        return path
    rewritten, applied = rewrite_for_export(model, DEFAULT_REWRITES + (() if extra == "default" else extra))
    export_graph(rewritten, path, DEFAULT_OPSET, rewrites=applied)
    return path


def runners(path: Path, threads: int) -> dict:
    from vidsynth.export.onnx import ort_session
    from vidsynth.runtime.backends.openvino_backend import compile_graph

    session = ort_session(path, threads=threads)
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

    from vidsynth.noise import sample_noise
    from vidsynth.weights import load_model

    model = load_model(args.weights)
    noise = sample_noise(model.config, args.batch, seed=0)
    feed = {"z_content": noise.z_content, "z_motion": noise.z_motion, "n_frames": np.array(args.frames, np.int64)}
    reference = None
    print(f"{args.weights} {model.config.image_size}x{model.config.image_size} ngf={model.config.ngf}, "
          f"B={args.batch} x T={args.frames}, threads={args.threads or 'default'}")
    for label, extra in VARIANTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            path = export_variant(model, Path(tmp), extra)
            for runtime, run in runners(path, args.threads).items():
                video = run(feed)  # warm-up
                if reference is None:
                    reference = video
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    run(feed)
                    times.append(time.perf_counter() - start)
                diff = float(np.abs(video - reference).max())
                print(f"{label:44s} {runtime:12s} median {statistics.median(times):.3f} s  best {min(times):.3f} s  "
                      f"max abs vs first {diff:.1e}", flush=True)


if __name__ == "__main__":
    main()
