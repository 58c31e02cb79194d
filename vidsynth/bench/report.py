"""results.json, results.md (tables) and latency.png (latency vs frames, a line per backend)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

from vidsynth.atomic import atomic_file

FOCUS_SHAPE = (8, 64)  # the shape the speed targets are stated at
TARGETS = {
    "fp32_peak_fraction": 0.70,  # best fp32 path, at FOCUS_SHAPE, of the measured fp32 matmul peak
    "bf16_speedup": 4.0,  # best bf16 path vs the reference, at FOCUS_SHAPE
    "bf16_psnr_db": 35.0,  # ... with at least this PSNR against fp32
    "motion_us_per_step": 5.0,  # best motion backend, batch 1
    "artifact_speedup": 3.0,  # best exported artifact at fp32 vs the reference, at FOCUS_SHAPE
    "auto_slowdown": 1.10,  # --backend auto at most this much slower than the best explicit backend
}
ARTIFACT_BACKENDS = ("torchscript", "onnxruntime", "openvino", "pt2")  # rows that run exported files
EXPLICIT_BACKENDS = ("eager", "optimized", *ARTIFACT_BACKENDS)  # what --backend can name


def _clean(value: Any) -> Any:
    """`value` for JSON: inf and nan as strings, keys as strings."""
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    return value if isinstance(value, str) else f"{value:,.{digits}f}"


def _met(target: dict) -> str:
    return "met" if target["met"] else "NOT met"


def _summary_shape(results: dict) -> tuple[int, int]:
    shapes = {(r["batch"], r["frames"]) for r in results["rows"]}
    if FOCUS_SHAPE in shapes:
        return FOCUS_SHAPE
    return max(shapes, key=lambda s: s[0] * s[1]) if shapes else FOCUS_SHAPE


def targets(results: dict) -> tuple[dict, list[str]]:
    """The speed targets, each with the measured value and whether it is met, and a line of
    results.md for each."""
    b, f = shape = _summary_shape(results)
    rows = [r for r in results["rows"] if (r["batch"], r["frames"]) == shape and r["backend"] != "reference"]
    out: dict = {"shape": list(shape)}
    lines = []
    fp32 = [r for r in rows if r["precision"] == "fp32" and r["peak_fraction"] is not None]
    if fp32:
        # The limit timed between the contenders' repeats at this very shape, when there is one.
        interleaved = all("peak_fraction_interleaved" in r for r in fp32)
        key = "peak_fraction_interleaved" if interleaved else "peak_fraction"
        best = max(fp32, key=lambda r: r[key])
        x = out["fp32_peak_fraction"] = {
            "label": best["label"],
            "value": best[key],
            "target": TARGETS["fp32_peak_fraction"],
            "against": "matmul peak timed interleaved at this shape"
            if interleaved
            else "matmul peak at the start of the run",
            "value_vs_start_peak": best["peak_fraction"],
            "speedup_vs_reference": best["speedup_vs_reference"],
            "met": best[key] >= TARGETS["fp32_peak_fraction"],
        }
        speedup = best["speedup_vs_reference"]
        speedup = "no reference measured" if speedup is None else f"{speedup:.2f}x the reference"
        lines.append(
            f"- best fp32 at {b}x{f}: **{x['label']}** at {100 * x['value']:.0f}% of the fp32 {x['against']} "
            f"({100 * x['value_vs_start_peak']:.0f}% of the one at the start; {speedup}); "
            f"target >= {100 * x['target']:.0f}%: {_met(x)}"
        )
    bf16 = [r for r in rows if r["precision"] in ("bf16", "fp16") and r["speedup_vs_reference"] is not None]
    if bf16:
        best = max(bf16, key=lambda r: r["speedup_vs_reference"])
        psnr = -math.inf if best["psnr_db"] is None else best["psnr_db"]  # None: not measured
        x = out["bf16_speedup"] = {
            "label": best["label"],
            "value": best["speedup_vs_reference"],
            "psnr_db": psnr,
            "target": TARGETS["bf16_speedup"],
            "psnr_target_db": TARGETS["bf16_psnr_db"],
            "peak_fraction": best["peak_fraction"],
            "met": best["speedup_vs_reference"] >= TARGETS["bf16_speedup"]
            and psnr >= TARGETS["bf16_psnr_db"],
        }
        lines.append(
            f"- best bf16 at {b}x{f}: **{x['label']}** {x['value']:.2f}x the reference, "
            f"PSNR {x['psnr_db']:.1f} dB ({_fmt(_percent(x['peak_fraction']), 0)}% of the bf16 matmul peak); "
            f"target >= {x['target']:.0f}x at >= {x['psnr_target_db']:.0f} dB: {_met(x)}"
        )
    artifacts = [
        r for r in fp32 if r["backend"] in ARTIFACT_BACKENDS and r["speedup_vs_reference"] is not None
    ]
    if artifacts:
        best = max(artifacts, key=lambda r: r["speedup_vs_reference"])
        literal = [r for r in rows if r["backend"] == "openvino-literal"]
        x = out["artifact_speedup"] = {
            "label": best["label"],
            "value": best["speedup_vs_reference"],
            "target": TARGETS["artifact_speedup"],
            "peak_fraction": best.get("peak_fraction_interleaved", best["peak_fraction"]),
            "vs_openvino_literal": literal[0]["p50_ms"] / best["p50_ms"] if literal else None,
            "met": best["speedup_vs_reference"] >= TARGETS["artifact_speedup"]
            and (not literal or best["p50_ms"] < literal[0]["p50_ms"]),
        }
        versus = f", {x['vs_openvino_literal']:.2f}x OpenVINO on the --no-optimize export" if literal else ""
        lines.append(
            f"- best exported artifact (fp32) at {b}x{f}: **{x['label']}** {x['value']:.2f}x the reference "
            f"({_fmt(_percent(x['peak_fraction']), 0)}% of the fp32 matmul peak{versus}); "
            f"target >= {x['target']:.0f}x and faster than OpenVINO on the literal graph: {_met(x)}"
        )
    best = min(
        (r for r in rows if r["backend"] in EXPLICIT_BACKENDS), key=lambda r: r["p50_ms"], default=None
    )
    for row in (r for r in rows if r["backend"] in ("auto", "auto-artifacts") and best is not None):
        ratio = row["p50_ms"] / best["p50_ms"]
        chose = next((c["notes"] for c in results.get("contenders", []) if c["label"] == row["label"]), "")
        x = out[row["backend"]] = {
            "label": row["label"],
            "chose": chose,
            "best": best["label"],
            "value": ratio,
            "target": TARGETS["auto_slowdown"],
            "met": ratio <= TARGETS["auto_slowdown"],
        }
        lines.append(
            f"- `--backend auto` with {'weights' if row['backend'] == 'auto' else 'artifacts'} at {b}x{f}: "
            f"**{x['label']}** takes {ratio:.2f}x the time of the best explicit backend "
            f"({x['best']}); target <= {x['target']:.2f}x: {_met(x)}"
        )
    motion = (results.get("motion") or {}).get("us_per_step")
    if motion:
        name = min(motion, key=motion.get)
        x = out["motion_us_per_step"] = {
            "label": name,
            "value": motion[name],
            "target": TARGETS["motion_us_per_step"],
            "met": motion[name] <= TARGETS["motion_us_per_step"],
        }
        lines.append(
            f"- motion recurrence at batch 1: **{x['label']}** {x['value']:.2f} µs per step; "
            f"target <= {x['target']:.0f} µs: {_met(x)}"
        )
    return out, lines


def _percent(fraction: float | None) -> float | None:
    return None if fraction is None else 100 * fraction


def write_results(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if results["rows"]:
        results["targets"] = targets(results)[0]
    with atomic_file(out / "results.json") as tmp:
        tmp.write_text(json.dumps(_clean(results), indent=1) + "\n")
    with atomic_file(out / "results.md") as tmp:
        tmp.write_text(markdown(results))
    if importlib.util.find_spec("matplotlib") is None:
        return  # the plot needs the `bench` extra: pip install matplotlib
    with atomic_file(out / "latency.png") as tmp:
        plot(results, tmp)


def _table(title: str, header: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """A markdown table after a blank line and its title; the first `left` columns left-aligned."""
    rule = "|" + "---|" * left + "---:|" * (len(header) - left)
    return [
        "",
        title,
        "",
        "| " + " | ".join(header) + " |",
        rule,
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _gflops(peaks: dict) -> str:
    return ", ".join(f"{name} {v['flops_per_s'] / 1e9:,.0f} GFLOP/s" for name, v in peaks.items())


def markdown(results: dict) -> str:
    machine = results["machine"]
    limit = results["limit"]
    peaks = _gflops(limit["matmul"])
    focus = limit.get("interleaved_at_focus") or {}
    measured = {k: v for k, v in focus.items() if isinstance(v, dict)}
    if measured:
        where = f"{focus['batch']}x{focus['frames']}"
        peaks += f"; timed between the contenders' repeats at {where}: {_gflops(measured)}"
    after = limit.get("fp32_after_run")
    lines = [
        f"Machine: {machine.get('model_name', '?')}, {machine.get('cpu_count')} CPUs "
        f"({', '.join(machine.get('isa', []))}), torch {machine['torch']}, "
        f"onnxruntime {machine.get('onnxruntime')}; "
        f"{machine['threads']['torch_intra_op']} threads for torch and onnxruntime (intra-op); "
        f"load average {machine.get('load_average_at_start')} at start, "
        f"{machine.get('load_average_at_end')} at end.",
        f"Limit (measured square matmul, best median): {peaks}"
        + (f" (fp32 again after the run: {after['flops_per_s'] / 1e9:,.0f})" if after else "")
        + f". Generator: {results['generator_gflop_per_frame']:.3f} GFLOP per frame (ConvTranspose2d only).",
    ]
    if results.get("rows"):
        lines += ["", "Targets:", "", *targets(results)[1]]
    batch, frames = _summary_shape(results)
    rows = [r for r in results["rows"] if (r["batch"], r["frames"]) == (batch, frames)]
    interleaved = bool(rows) and all("peak_fraction_interleaved" in r for r in rows)
    cells = []
    for r in sorted(rows, key=lambda r: r["p50_ms"], reverse=True):
        speed, rss = r["speedup_vs_reference"], r["peak_rss_mib"]
        numbers = (
            r["p50_ms"],
            r["p90_ms"],
            r["p99_ms"],
            str(r["n"]),
            r["frames_per_s"],
            r["gflop_per_s"],
            _percent(r.get("peak_fraction_interleaved") if interleaved else r["peak_fraction"]),
            None if speed is None else f"{speed:.2f}x",
            r["ttff_ms"],
            None if rss is None else f"{rss:,.0f} (+{r['peak_rss_delta_mib']:,.0f})",
            r["psnr_db"],
        )
        cells.append([r["backend"], r["precision"], *map(_fmt, numbers)])
    header = ["backend", "precision", "p50 ms", "p90 ms", "p99 ms", "n", "frames/s", "GFLOP/s"]
    header += ["% of matmul peak" + (" (interleaved)" if interleaved else ""), "vs reference"]
    header += ["first frame ms (streamed)", "peak RSS MiB (+call)", "PSNR dB vs fp32"]
    lines += _table(
        f"At batch {batch} x {frames} frames (p50 of interleaved repeats):", header, cells, left=2
    )
    shapes = sorted({(r["batch"], r["frames"]) for r in results["rows"]})
    by = {(r["label"], r["batch"], r["frames"]): r for r in results["rows"]}
    latencies = [
        [label]
        + [
            "skipped" if r is None else f"{r['p50_ms']:,.0f}" + ("" if r["n"] > 1 else "¹")
            for r in (by.get((label, b, t)) for b, t in shapes)
        ]
        for label in dict.fromkeys(r["label"] for r in results["rows"])
    ]
    header = ["backend", *(f"{b}x{t}" for b, t in shapes)]
    lines += _table("p50 latency in ms of one call (B x T), every shape:", header, latencies)
    lines += ["", "¹ one timed call (large shapes get fewer repeats to fit the run's time budget)."]
    motion = results.get("motion") or {}
    if motion:
        lines += _table(
            f"Motion recurrence alone, batch {motion['batch']}, {motion['frames']} steps, median of "
            f"{motion['repeats']}:",
            ["motion backend", "µs per step", "max abs diff vs eager"],
            [
                [name, f"{us:.2f}", f"{motion['max_abs_err_vs_eager'][name]:.1e}"]
                for name, us in motion["us_per_step"].items()
            ],
        )
    levers = results.get("levers") or {}
    if levers:
        lines += _table(
            f"Image generator alone, {levers['frames']} frames per call, one lever at a time (median of "
            f"{levers['repeats']}):",
            ["lever", "ms", "GFLOP/s", "% of matmul peak", "max abs diff vs eager"],
            [
                [r["lever"], f"{r['p50_ms']:,.0f}", f"{r['gflop_per_s']:,.0f}"]
                + [f"{100 * r['peak_fraction']:.0f}", f"{r['max_abs_err_vs_eager']:.1e}"]
                for r in levers["rows"]
            ],
        )
    if results.get("skipped"):
        lines += ["", "Not measured:"]
        for s in results["skipped"]:
            where = f" at {s['batch']}x{s['frames']}" if "batch" in s else ""
            lines.append(f"- {s['label']}{where}: {s['reason']}")
    lines += ["", f"Contenders (first call: {results['protocol']['first_call']}):"]
    for c in results["contenders"]:
        first = f"first call {c['first_call_s']} s"
        lines.append(f"- **{c['label']}** ({c['provider']}): {c['notes']}; setup {c['setup_s']} s, {first}")
    lines += ["", "![latency vs frames](latency.png)"]
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = sorted({r["batch"] for r in results["rows"]})
    labels = dict.fromkeys(r["label"] for r in results["rows"])
    fig, axes = plt.subplots(1, len(batches), figsize=(5 * len(batches), 4.2), squeeze=False)
    for ax, batch in zip(axes[0], batches):
        for label in labels:
            points = sorted(
                (r["frames"], r["p50_ms"])
                for r in results["rows"]
                if r["label"] == label and r["batch"] == batch
            )
            if points:
                style = "k--" if label.startswith("reference") else "-"
                ax.plot([p[0] for p in points], [p[1] for p in points], style, marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("frames per video")
        ax.set_ylabel("p50 latency of one call (ms)")
        ax.set_title(f"batch {batch}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    machine = results["machine"]
    fig.suptitle(
        f"vidsynth {results['config']['image_size']}px ngf={results['config']['ngf']} on "
        f"{machine.get('model_name', '?')}, "
        f"{machine['threads']['torch_intra_op']} threads",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
