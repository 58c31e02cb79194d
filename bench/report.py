"""results.json, results.md (tables) and latency.png (latency vs frames, a line per backend)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from vidsynth.atomic import atomic_file

SUMMARY_SHAPE = (8, 64)  # the shape the targets are stated at


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_results(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with atomic_file(out / "results.json") as tmp:
        tmp.write_text(json.dumps(_clean(results), indent=1) + "\n")
    with atomic_file(out / "results.md") as tmp:
        tmp.write_text(markdown(results, plot="latency.png"))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return  # the plot needs the `bench` extra: pip install -e '.[bench]'
    with atomic_file(out / "latency.png") as tmp:
        plot(results, tmp)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    return f"{value:,.{digits}f}"


def _summary_shape(results: dict) -> tuple[int, int]:
    shapes = {(r["batch"], r["frames"]) for r in results["rows"]}
    if SUMMARY_SHAPE in shapes:
        return SUMMARY_SHAPE
    return max(shapes, key=lambda s: s[0] * s[1]) if shapes else SUMMARY_SHAPE


def markdown(results: dict, plot: str | None = None) -> str:
    machine = results["machine"]
    limit = results["limit"]["matmul"]
    lines = []
    cpu = machine.get("model_name", "?")
    lines.append(
        f"Machine: {cpu}, {machine.get('cpu_count')} CPUs ({', '.join(machine.get('isa', []))}), "
        f"torch {machine['torch']}, onnxruntime {machine.get('onnxruntime')}; "
        f"{machine['threads']['torch_intra_op']} threads for torch and onnxruntime (intra-op); "
        f"load average {machine.get('load_average_at_start')} at start, {machine.get('load_average_at_end')} at end"
        + (f"; other processes used {machine['other_cpu_cores_during_run']} cores on average during the run"
           if machine.get("other_cpu_cores_during_run") is not None else "")
        + ("; the training process was paused while measuring" if machine.get("paused_pid") else "")
        + "."
    )
    peaks = ", ".join(f"{name} {v['flops_per_s'] / 1e9:,.0f} GFLOP/s" for name, v in limit.items())
    after = results["limit"].get("fp32_after_run")
    lines.append(
        f"Limit (measured square matmul, best median): {peaks}"
        + (f" (fp32 again after the run: {after['flops_per_s'] / 1e9:,.0f})" if after else "")
        + f". Generator: {results['generator_gflop_per_frame']:.3f} GFLOP per frame (ConvTranspose2d only)."
    )
    lines.append("")
    batch, frames = _summary_shape(results)
    rows = [r for r in results["rows"] if (r["batch"], r["frames"]) == (batch, frames)]
    lines.append(f"At batch {batch} x {frames} frames (p50 of interleaved repeats):")
    lines.append("")
    lines.append("| backend | precision | p50 ms | p90 ms | p99 ms | n | frames/s | GFLOP/s | % of matmul peak | vs reference | first frame ms (streamed) | peak RSS MiB (+call) | PSNR dB vs fp32 |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    others = {r.get("other_cpu_cores") for r in rows}
    for r in sorted(rows, key=lambda r: r["p50_ms"], reverse=True):
        pct = None if r["peak_fraction"] is None else 100 * r["peak_fraction"]
        speed = None if r["speedup_vs_reference"] is None else f"{r['speedup_vs_reference']:.2f}x"
        rss = None if r["peak_rss_mib"] is None else f"{r['peak_rss_mib']:,.0f} (+{r['peak_rss_delta_mib']:,.0f})"
        lines.append(
            f"| {r['backend']} | {r['precision']} | {_fmt(r['p50_ms'])} | {_fmt(r['p90_ms'])} | {_fmt(r['p99_ms'])} | {r['n']} | "
            f"{_fmt(r['frames_per_s'])} | {_fmt(r['gflop_per_s'])} | {_fmt(pct)} | {_fmt(speed)} | {_fmt(r['ttff_ms'])} | {_fmt(rss)} | {_fmt(r['psnr_db'])} |"
        )
    if others and None not in others:
        lines.append("")
        lines.append(f"Other processes used {max(others):.2f} cores on average while this shape was timed.")
    lines.append("")
    shapes = sorted({(r["batch"], r["frames"]) for r in results["rows"]})
    labels = sorted({r["label"] for r in results["rows"]}, key=lambda l: [r["label"] for r in results["rows"]].index(l))
    lines.append("p50 latency in ms of one call (B x T), every shape:")
    lines.append("")
    lines.append("| backend | " + " | ".join(f"{b}x{t}" for b, t in shapes) + " |")
    lines.append("|---|" + "---:|" * len(shapes))
    by = {(r["label"], r["batch"], r["frames"]): r for r in results["rows"]}
    for label in labels:
        cells = []
        for b, t in shapes:
            r = by.get((label, b, t))
            cells.append("skipped" if r is None else f"{r['p50_ms']:,.0f}" + ("" if r["n"] > 1 else "¹"))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("¹ one timed call (large shapes get fewer repeats to fit the run's time budget).")
    motion = results.get("motion") or {}
    if motion:
        lines.append("")
        lines.append(f"Motion recurrence alone, batch {motion['batch']}, {motion['frames']} steps, median of {motion['repeats']}:")
        lines.append("")
        lines.append("| motion backend | µs per step |")
        lines.append("|---|---:|")
        for name, us in motion["us_per_step"].items():
            lines.append(f"| {name} | {us:.2f} |")
    levers = results.get("levers") or {}
    if levers:
        lines.append("")
        lines.append(f"Image generator alone, {levers['frames']} frames per call, one lever at a time (median of {levers['repeats']}):")
        lines.append("")
        lines.append("| lever | ms | GFLOP/s | % of matmul peak | max abs diff vs eager |")
        lines.append("|---|---:|---:|---:|---:|")
        for r in levers["rows"]:
            lines.append(f"| {r['lever']} | {r['p50_ms']:,.0f} | {r['gflop_per_s']:,.0f} | {100 * r['peak_fraction']:.0f} | {r['max_abs_err_vs_eager']:.1e} |")
    if results.get("skipped"):
        lines.append("")
        lines.append("Not measured:")
        for s in results["skipped"]:
            where = f" at {s['batch']}x{s['frames']}" if "batch" in s else ""
            lines.append(f"- {s['label']}{where}: {s['reason']}")
    lines.append("")
    lines.append("Contenders:")
    for c in results["contenders"]:
        lines.append(f"- **{c['label']}** ({c['provider']}): {c['notes']}; setup {c['setup_s']} s")
    if plot:
        lines.append("")
        lines.append(f"![latency vs frames]({plot})")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = sorted({r["batch"] for r in results["rows"]})
    labels = list(dict.fromkeys(r["label"] for r in results["rows"]))
    fig, axes = plt.subplots(1, len(batches), figsize=(5 * len(batches), 4.2), squeeze=False)
    for ax, batch in zip(axes[0], batches):
        for label in labels:
            points = sorted((r["frames"], r["p50_ms"]) for r in results["rows"] if r["label"] == label and r["batch"] == batch)
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
    fig.suptitle(f"vidsynth {results['config']['image_size']}px ngf={results['config']['ngf']} on {machine.get('model_name', '?')}, "
                 f"{machine['threads']['torch_intra_op']} threads", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
