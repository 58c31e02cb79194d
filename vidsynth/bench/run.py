"""`vidsynth bench`: time every backend x precision x batch x frame count, side by side with
the reference code and the machine's matmul peak, and write JSON + markdown + PNG.

Protocol: one process, torch and onnxruntime both on `threads` intra-op threads; each
contender is warmed up at every shape it is cheap to warm up at; repeats are interleaved
(contender A, B, C, A, B, C, ...) so that a change in machine load hits all of them alike;
medians are reported. Large shapes get fewer repeats (a time budget per shape and contender).
"""

from __future__ import annotations

import functools
import logging
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from vidsynth.bench.contenders import BENCH_BACKENDS, BENCH_PRECISIONS, Contender, build_contenders
from vidsynth.bench.flops import generator_flops_per_frame, interleaved_peaks, matmul_peak
from vidsynth.bench.levers import measure_levers
from vidsynth.bench.measure import (
    load_average,
    machine_description,
    percentiles,
    round_robin,
    timed,
    timed_with_memory,
)
from vidsynth.bench.motion import measure_motion
from vidsynth.bench.report import FOCUS_SHAPE, write_results
from vidsynth.errors import InputError, choice_error
from vidsynth.export.precision import psnr_db
from vidsynth.model.noise import sample_noise
from vidsynth.runtime.hardware import threads_problem
from vidsynth.runtime.plan import available_memory

logger = logging.getLogger(__name__)

SEED = 0
FOCUS_REPEATS = 7  # timed calls at least, at FOCUS_SHAPE (the shape the speed targets are stated at)
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Schedule:
    batches: tuple[int, ...]
    frames: tuple[int, ...]
    max_repeats: int  # timed calls per contender and shape, at most
    shape_budget_s: float  # ... and about this many seconds of calls per contender and shape
    warmup_below_s: float  # warm a shape up first when one call is expected to take less
    ttff_repeats: int
    motion_frames: int
    motion_repeats: int
    peak_sizes: tuple[int, ...]
    peak_repeats: int
    accuracy_shape: tuple[int, int]
    lever_frames: int  # image-generator frames per call in the one-lever-at-a-time comparison
    lever_repeats: int


FULL = Schedule((1, 8, 32), (16, 64, 256), 5, 3.0, 1.5, 5, 256, 7, (1024, 2048, 3072), 5, (2, 16), 512, 3)
QUICK = Schedule((1, 2), (4, 8), 2, 0.5, 1.5, 2, 32, 3, (512, 1024), 3, (1, 4), 8, 1)
QUICK_BACKENDS = ("reference", "eager", "torchscript", "onnxruntime", "openvino", "optimized")
QUICK_PRECISIONS = ("fp32", "bf16")


def _check(values: Sequence[str], valid: Sequence[str], what: str) -> tuple[str, ...]:
    for value in values:
        if value not in valid:
            raise choice_error(InputError, what, value, valid)
    return tuple(values)


def run_benchmark(
    weights: str | None = "demo",
    out: str | Path = "bench-results",
    quick: bool = False,
    backends: Sequence[str] | None = None,
    precisions: Sequence[str] | None = None,
    device: str = "cpu",
    threads: int = 2,
    batches: Sequence[int] | None = None,
    frames: Sequence[int] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Runs the benchmark and writes results.json, results.md and latency.png into `out`
    (refusing to replace earlier results there unless `force`). Returns the results dictionary.
    torch's thread count is set to `threads` while measuring and restored afterwards."""
    import torch

    backends = _check(backends or (QUICK_BACKENDS if quick else BENCH_BACKENDS), BENCH_BACKENDS, "backend")
    precisions = _check(
        precisions or (QUICK_PRECISIONS if quick else BENCH_PRECISIONS), BENCH_PRECISIONS, "precision"
    )
    _check([device], DEVICES, "device")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: torch sees no CUDA GPU")
    if threads < 1:
        raise InputError(f"threads must be >= 1, got {threads}")
    if threads_problem(threads):
        raise InputError(threads_problem(threads))
    plan = QUICK if quick else FULL
    plan = replace(plan, batches=tuple(batches or plan.batches), frames=tuple(frames or plan.frames))
    if min(plan.batches) < 1 or min(plan.frames) < 1:
        raise InputError("batch sizes and frame counts must be >= 1")
    if device == "cuda":  # a GPU reaches its matmul peak only at larger sizes
        plan = replace(plan, peak_sizes=(4096, 8192), peak_repeats=10)
    out = Path(out)
    if (out / "results.json").exists() and not force:
        raise InputError(
            f"{out} already holds benchmark results; pass --force to replace them, or another --out"
        )
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        results = _run(weights, quick, backends, precisions, device, threads, plan)
    finally:
        torch.set_num_threads(threads_before)
    write_results(results, out)
    logger.info(f"wrote {out}/results.json, results.md, latency.png in {results['seconds']}s")
    return results


def _run(weights, quick, backends, precisions, device, threads, plan) -> dict[str, Any]:
    from vidsynth.weights import load_model

    model = load_model(weights)
    config = model.config
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="vidsynth-bench-") as work:
        machine = machine_description(threads)
        logger.info(
            f"machine: {machine.get('model_name')} x{machine.get('cpu_count')}, load "
            f"{machine['load_average_at_start']}"
        )
        contenders, skipped = build_contenders(
            model, weights, device, backends, precisions, threads, Path(work)
        )
        limit = measure_limit(plan, precisions, device)
        accuracy = measure_accuracy(contenders, config, plan)
        rows, cell_skips, focus_limit = measure_grid(contenders, config, plan)
        ttff = measure_ttff(contenders, config, plan)
        motion, levers = {}, {}
        if device == "cpu":
            motion = measure_motion(model, plan.motion_frames, plan.motion_repeats, SEED, threads)
            levers = measure_levers(model, plan.lever_frames, plan.lever_repeats, SEED, limit)
        limit_after = measure_limit(plan, precisions, device, only_fp32=True)
        machine["load_average_at_end"] = load_average()
    flops = generator_flops_per_frame(config)
    finish_rows(rows, flops, limit, ttff, accuracy, focus_limit)
    return {
        "what": "vidsynth bench: latency of one whole-video call per backend x precision x batch x frames",
        "protocol": {
            "seed": SEED,
            "noise": "vidsynth.model.noise.sample_noise(config, batch, seed=0)",
            "threads": threads,
            "warm_up": (
                f"one untimed call per shape when a call is expected to take < {plan.warmup_below_s}s; "
                "every contender is warmed up at the first shape"
            ),
            "repeats": (
                f"interleaved across contenders, up to {plan.max_repeats} per shape, "
                f"~{plan.shape_budget_s}s per contender and shape "
                f"(at least 1; at least {FOCUS_REPEATS} at batch x frames {FOCUS_SHAPE})"
            ),
            "latency": "p50/p90/p99 of the timed calls (with n < 100, p99 is close to the slowest call)",
            "peak_rss": (
                "the kernel's peak RSS mark (VmHWM), reset before each call; "
                "delta = peak minus RSS before the call"
            ),
            "ttff": (
                "time to first frame when streaming: initial_state + generate_chunk(n_frames=1) "
                "(reference: a 1-frame call)"
            ),
            "flops": (
                "ConvTranspose2d multiply-adds x 2 per frame, counted from the config; "
                "achieved = flops x B x T / p50"
            ),
            "psnr": f"against eager fp32 at batch/frames {plan.accuracy_shape}, over the [-1, 1] range",
            "first_call": (
                f"seconds of each contender's very first call, at batch/frames {plan.accuracy_shape}, "
                "lazy setup included (torch.compile compiles there)"
            ),
            "quick": quick,
        },
        "machine": machine,
        "weights": weights,
        "config": config.to_dict(),
        "generator_gflop_per_frame": flops / 1e9,
        "limit": {
            "matmul": limit,
            "fp32_after_run": limit_after.get("fp32"),
            "interleaved_at_focus": {
                "batch": FOCUS_SHAPE[0],
                "frames": FOCUS_SHAPE[1],
                "n": max(plan.peak_sizes),
                **focus_limit,
            },
        },
        "contenders": [
            {
                "label": c.label,
                "backend": c.backend,
                "precision": c.precision,
                "device": c.device,
                "provider": c.provider,
                "notes": c.notes,
                "setup_s": round(c.setup_s, 2),
                "first_call_s": c.first_call_s,
                **accuracy.get(c.label, {}),
            }
            for c in contenders
        ],
        "skipped": [asdict(s) | {"label": s.label} for s in skipped] + cell_skips,
        "rows": rows,
        "motion": motion,
        "levers": levers,
        "seconds": round(time.time() - started, 1),
        # The `vidsynth bench ...` invocation as given, when run from the command line.
        "command": " ".join(["vidsynth"] + sys.argv[1:]) if sys.argv and "vidsynth" in sys.argv[0] else None,
    }


def measure_limit(plan: Schedule, precisions: Sequence[str], device: str, only_fp32: bool = False) -> dict:
    limit = {}
    for name in ("fp32",) + (() if only_fp32 else tuple(p for p in ("bf16", "fp16") if p in precisions)):
        limit[name] = matmul_peak(name, plan.peak_sizes, plan.peak_repeats, device)
        logger.info(f"matmul peak {name}: {limit[name]['flops_per_s'] / 1e9:.0f} GFLOP/s")
    return limit


def measure_accuracy(contenders: list[Contender], config: Any, plan: Schedule) -> dict[str, dict]:
    batch, n_frames = plan.accuracy_shape
    noise = sample_noise(config, batch, seed=SEED + 1)
    outputs = {}
    for c in contenders:  # the very first call of each: it includes lazy setup (torch.compile compiles here)
        inputs = c.prepare(noise)
        seconds, outputs[c.label] = timed(lambda: c.video(inputs, n_frames))
        c.first_call_s = round(seconds, 3)
    # backend -> label (off the CPU a label also names the device)
    fp32 = {c.backend: c.label for c in contenders if c.precision == "fp32"}
    base = fp32.get("eager", fp32.get("reference"))
    if base is None:
        return {}
    return {
        label: {
            "max_abs_err_vs_" + base.replace(" ", "_"): float(np.abs(video - outputs[base]).max()),
            "psnr_db": psnr_db(outputs[base], video),
        }
        for label, video in outputs.items()
    }


def measure_grid(
    contenders: list[Contender], config: Any, plan: Schedule
) -> tuple[list[dict], list[dict], dict]:
    """Every contender at every shape, smallest first: the rows, the cells skipped for lack of
    memory, and the matmul peak timed between the repeats at FOCUS_SHAPE."""
    shapes = sorted(((b, t) for b in plan.batches for t in plan.frames), key=lambda s: (s[0] * s[1], s[0]))
    seconds_per_frame: dict[str, float] = {}
    mib_per_frame: dict[str, float] = {}
    rows: list[dict] = []
    skips: list[dict] = []
    focus_limit: dict = {}
    for index, (batch, n_frames) in enumerate(shapes):
        noise = sample_noise(config, batch, seed=SEED)
        total = batch * n_frames
        focus = (batch, n_frames) == FOCUS_SHAPE
        active, repeats = [], {}
        for c in contenders:
            # Whole-video calls at one precision need about the same memory per frame, and an
            # onnxruntime arena hides its growth after the first call: take the largest seen.
            # onnxruntime runs fp16 convolutions through float32 casts: for it, any precision's peers.
            peers = [
                v
                for label, v in mib_per_frame.items()
                if c.backend != "optimized"
                and not label.startswith("optimized")
                and (c.backend == "onnxruntime" or label.split(" ")[1:] == c.label.split(" ")[1:])
            ]
            need = max([mib_per_frame.get(c.label, 0.0)] + peers) * total
            free = available_memory() / 2**20
            if need > 0.7 * free:
                reason = (
                    f"one call needs ~{need:.0f} MiB (peak RSS per frame at the previous shapes x frames), "
                    f"{free:.0f} MiB available"
                )
                skips.append({"label": c.label, "batch": batch, "frames": n_frames, "reason": reason})
                logger.info(f"  skip {c.label} at B={batch} T={n_frames}: {reason}")
                continue
            inputs = c.prepare(noise)
            estimate = seconds_per_frame.get(c.label, 0.0) * total
            if index == 0 or estimate < plan.warmup_below_s:
                c.video(inputs, n_frames)  # warm-up
                if c.label not in seconds_per_frame:
                    estimate, _ = timed(lambda: c.video(inputs, n_frames))
            active.append((c, inputs))
            budgeted = min(plan.max_repeats, int(plan.shape_budget_s / max(estimate, 1e-6)))
            repeats[c.label] = max(FOCUS_REPEATS if focus else 1, budgeted)
        # At the focus shape the limit is measured again, interleaved with the contenders, so
        # that rows and limit see the same machine state (shared cores vary from minute to minute):
        # the largest matmul of the peak, timed between the repeats.
        peaks = {}
        if focus:
            precisions = tuple(sorted({c.precision for c, _ in active}))
            peaks = interleaved_peaks(
                precisions, active[0][0].device if active else "cpu", max(plan.peak_sizes)
            )
        samples, memory = defaultdict(list), defaultdict(list)
        peak_samples: dict[str, list[float]] = {name: [] for name in peaks}
        for r in range(max(repeats.values(), default=0)):
            for c, inputs in active:
                if r < repeats[c.label]:
                    seconds, mem = timed_with_memory(lambda: c.video(inputs, n_frames), c.device == "cuda")
                    samples[c.label].append(seconds)
                    memory[c.label].append(mem)
            for name, (run, flop) in peaks.items():
                peak_samples[name].append(flop / timed(run)[0])
        for name, values in peak_samples.items():
            focus_limit[name] = {"flops_per_s": float(np.median(values)), "repeats": len(values)}
            logger.info(
                f"matmul peak {name} interleaved at batch x frames {FOCUS_SHAPE}: "
                f"{focus_limit[name]['flops_per_s'] / 1e9:.0f} GFLOP/s"
            )
        for c, _ in active:
            stats = percentiles(samples[c.label])
            seconds_per_frame[c.label] = stats["p50_ms"] / 1e3 / total
            # The call that grew the RSS most (where the kernel reports no peak, all are None).
            peak = max(memory[c.label], key=lambda m: m["peak_rss_delta_mib"] or 0.0)
            if peak["peak_rss_delta_mib"] is not None:
                mib_per_frame[c.label] = max(peak["peak_rss_delta_mib"], 0.0) / total
            cuda = max(m["peak_cuda_mib"] for m in memory[c.label]) if c.device == "cuda" else None
            rows.append(
                {
                    "label": c.label,
                    "backend": c.backend,
                    "precision": c.precision,
                    "device": c.device,
                    "batch": batch,
                    "frames": n_frames,
                    **stats,
                    "peak_rss_mib": peak["peak_rss_mib"],
                    "peak_rss_delta_mib": peak["peak_rss_delta_mib"],
                    "peak_cuda_mib": cuda,
                }
            )
            logger.info(
                f"  B={batch:<3} T={n_frames:<4} {c.label:<22} p50 {stats['p50_ms']:9.1f} ms  n={stats['n']}"
            )
    return rows, skips, focus_limit


def measure_ttff(contenders: list[Contender], config: Any, plan: Schedule) -> dict[str, dict[int, float]]:
    ttff: dict[str, dict[int, float]] = {c.label: {} for c in contenders}
    for batch in plan.batches:
        noise = sample_noise(config, batch, seed=SEED)
        calls = {c.label: functools.partial(c.first_frame, c.prepare(noise)) for c in contenders}
        for call in calls.values():
            call()  # warm-up
        for label, samples in round_robin(calls, plan.ttff_repeats).items():
            ttff[label][batch] = float(np.median(samples) * 1e3)
        logger.info(
            f"  time to first frame at B={batch}: "
            + ", ".join(f"{k} {v[batch]:.1f} ms" for k, v in ttff.items())
        )
    return ttff


def finish_rows(
    rows: list[dict], flops: int, limit: dict, ttff: dict, accuracy: dict, focus_limit: dict
) -> None:
    """Adds what follows from each row's p50: throughput, share of the matmul peak, speed-up over
    the reference at the same shape, and the contender's first-frame time and PSNR."""
    reference = {(r["batch"], r["frames"]): r["p50_ms"] for r in rows if r["backend"] == "reference"}
    for row in rows:
        total = row["batch"] * row["frames"]
        seconds = row["p50_ms"] / 1e3
        row["frames_per_s"] = total / seconds
        row["gflop_per_s"] = flops * total / seconds / 1e9
        peak = limit.get(row["precision"], limit.get("fp32"))
        row["peak_fraction"] = row["gflop_per_s"] * 1e9 / peak["flops_per_s"] if peak else None
        if (row["batch"], row["frames"]) == FOCUS_SHAPE and focus_limit:
            same = focus_limit.get(row["precision"], focus_limit.get("fp32"))
            row["peak_fraction_interleaved"] = row["gflop_per_s"] * 1e9 / same["flops_per_s"]
        ref = reference.get((row["batch"], row["frames"]))
        row["speedup_vs_reference"] = ref / row["p50_ms"] if ref else None
        row["ttff_ms"] = ttff.get(row["label"], {}).get(row["batch"])
        row["psnr_db"] = accuracy.get(row["label"], {}).get("psnr_db")
