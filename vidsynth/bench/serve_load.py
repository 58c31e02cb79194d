"""A bounded load test of `vidsynth serve` on loopback, against offline throughput.

    unshare -n sh -c 'ip link set lo up && python -m vidsynth.bench.serve_load'

(Ray 2.60 rewrites 127.0.0.1 to the host's address; a private network namespace keeps every
connection on loopback. Run as root.) Each scenario runs in its own process, and every server
is started as a user starts it, with the `vidsynth serve` command (Ray sized by the command):
- offline: the runtime's generate pipeline (model + mp4 encoding, backend already open)
  making N videos in one run, and the bare model at batch 8, on the same CPUs;
- 1 replica with every CPU (`--replicas 1 --cpus-per-replica CPUS`), 2 replicas with one CPU
  each (`--replicas 2`), and 2 replicas joining a simulated 2-node cluster (`--address`, half
  the CPUs per node): N requests (16-frame mp4, distinct seeds) at C concurrent, after a warm-up.
Writes serve.json and serve.md into --out (requests/s, p50/p99 latency, CPU use, load average).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from vidsynth.bench.measure import status_mib, timed, with_cpu_use
from vidsynth.runtime.hardware import probe_hardware, usable_cpus
from vidsynth.sweeper import running_processes

PORT = 8351
SCENARIOS = ("offline", "1-replica", "2-replicas", "2-nodes")
RUN_ORDER = SCENARIOS + ("offline",)  # offline again at the end: a drift in machine load shows
CPUS = usable_cpus()  # what `vidsynth serve` gives Ray
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")  # pick kernels


def offline(args) -> dict:
    """The same backend on the same CPUs without a server: the bare model at batch 8, and
    the runtime's pipeline (noise, model calls, mp4 encoding: what `generate` runs once its
    backend is open) making all N videos in one run."""
    from vidsynth.export import export_weights
    from vidsynth.model.noise import sample_noise
    from vidsynth.runtime.backend import open_backend
    from vidsynth.runtime.request import GenerateRequest
    from vidsynth.serve.render import render_requests

    request = GenerateRequest(
        weights=args.weights,
        backend=args.backend,
        device="cpu",
        threads=CPUS,
        frames=args.frames,
        num_videos=args.requests,
    )
    backend = open_backend(request, exporter=export_weights)
    noise = sample_noise(backend.config, 8, seed=0)
    backend.generate(noise, args.frames)
    times = [timed(lambda: backend.generate(noise, args.frames))[0] for _ in range(5)]
    render_requests(backend, [replace(request, num_videos=8)], share_calls=False)  # warm-up
    _, wall, cpu_use = with_cpu_use(lambda: render_requests(backend, [request], share_calls=False))
    return {
        "scenario": "offline",
        "backend": backend.name,
        "detail": backend.detail,
        "model_videos_per_s_batch8": round(8 / statistics.median(times), 2),
        "generate_videos_per_s": round(args.requests / wall, 2),
        "cpu_use": round(cpu_use, 2),
    }


def load(args, url: str) -> dict:
    def one(seed: int) -> tuple[int, float, str]:
        body = json.dumps({"seed": seed, "frames": args.frames}).encode()
        started = time.perf_counter()
        request = urllib.request.Request(f"{url}/v1/videos", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=300) as response:
            response.read()
            return response.status, time.perf_counter() - started, response.headers["X-Vidsynth-Batch"]

    with ThreadPoolExecutor(args.concurrency) as pool:
        list(pool.map(one, range(10_000, 10_000 + args.concurrency)))  # warm-up
        answers, wall, cpu_use = with_cpu_use(lambda: list(pool.map(one, range(args.requests))))
    p50, p99 = np.percentile([latency for _, latency, _ in answers], (50, 99), method="nearest")
    return {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "frames": args.frames,
        "ok": sum(status == 200 for status, _, _ in answers),
        "requests_per_s": round(args.requests / wall, 2),
        "p50_s": round(float(p50), 3),
        "p99_s": round(float(p99), 3),
        "mean_batch": round(statistics.mean(int(b) for _, _, b in answers), 2),
        "cpu_use": round(cpu_use, 2),
    }


class Server:
    """`vidsynth serve OPTIONS` started as a user starts it, its output in `log`, in a session of
    its own: stopping it is Ctrl-C to its process group."""

    def __init__(self, options: list[str], log: Path) -> None:
        self.command = " ".join(["vidsynth", "serve", *options])
        self.port = int(options[options.index("--port") + 1])
        self.url = f"http://127.0.0.1:{self.port}"
        with open(log, "w") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "vidsynth", "serve", *options],
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 600
        while True:
            try:
                if self.get("/healthz")["status"] == "ready":
                    return
            except (OSError, ValueError):  # not listening yet, or not ready (not JSON)
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                if self.process.poll() is None:
                    self.stop()
                raise SystemExit(f"{self.command} did not become ready:\n{log.read_text()[-3000:]}")
            time.sleep(1)

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def rss_bytes(self) -> dict[str, int]:
        """RSS of every process under the server (Ray's included), by command."""
        parents = {pid: parent for pid, (parent, _) in running_processes().items()}
        tree, frontier = set(), {self.process.pid}
        while frontier:
            tree |= frontier
            frontier = {pid for pid, parent in parents.items() if parent in frontier} - tree
        sizes = {}
        for pid in tree:
            try:
                name = open(f"/proc/{pid}/cmdline").read().split("\0")[0][:60]
            except OSError:
                continue
            sizes[f"{name} [{pid}]"] = round((status_mib("VmRSS", pid) or 0) * 2**20)
        return sizes

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def served(args, scenario: str) -> dict:
    """Starts `vidsynth serve` as a user would (Ray sized by the command itself; for 2-nodes,
    joining a simulated cluster of two nodes with half the CPUs each), loads it, stops it."""
    options = ["--weights", args.weights, "--backend", args.backend, "--port", str(PORT)]
    one = scenario == "1-replica"
    options += ["--replicas", "1", "--cpus-per-replica", str(CPUS)] if one else ["--replicas", "2"]
    with contextlib.ExitStack() as cleanup:
        if scenario == "2-nodes":
            from ray.cluster_utils import Cluster

            half = max(1, CPUS // 2)
            cluster = Cluster(
                initialize_head=True, head_node_args={"num_cpus": half, "include_dashboard": False}
            )
            cleanup.callback(cluster.shutdown)
            cluster.add_node(num_cpus=half)
            cluster.wait_for_nodes()
            options += ["--address", cluster.address]
        server = Server(options, Path(cleanup.enter_context(tempfile.TemporaryDirectory())) / "serve.log")
        cleanup.callback(server.stop)
        return {
            "scenario": scenario,
            "command": server.command,
            "replicas": 1 if one else 2,
            "cpus_per_replica": CPUS if one else 1,
            **load(args, server.url),
        }


def write_report(results: list[dict], out: Path, args) -> None:
    out.mkdir(parents=True, exist_ok=True)
    hardware = probe_hardware()
    flags = [flag for flag in CPU_FLAGS if flag in hardware.cpu_flags]
    record = {
        "command": shlex.join(["python", "-m", "vidsynth.bench.serve_load", *sys.argv[1:]]),
        "cpus": CPUS,
        "cpu": {"model": hardware.cpu_model, "flags": flags},
        "note": args.note,
        "load_average_before": args.load_before,
        "load_average_after": list(os.getloadavg()),
        "results": results,
    }
    (out / "serve.json").write_text(json.dumps(record, indent=2) + "\n")
    offline_runs = [r for r in results if r["scenario"] == "offline"]
    offline_rate = statistics.mean(r["generate_videos_per_s"] for r in offline_runs) if offline_runs else None
    lines = [
        "# vidsynth serve: load test",
        "",
        f"`{record['command']}` on {record['cpus']} CPUs; load average before {args.load_before}, "
        f"after {[round(x, 2) for x in record['load_average_after']]}. {args.requests} requests of "
        f"{args.frames}-frame mp4 at {args.concurrency} concurrent, weights {args.weights}, backend "
        f"{args.backend}. CPU: {hardware.cpu_model} ({', '.join(flags) or 'no AVX2'}).",
        "",
    ]
    if args.note:
        lines += [args.note, ""]
    lines += [f"Servers started as `{r['command']}`." for r in results if "command" in r] + [""]
    if max(args.load_before[0], record["load_average_after"][0]) > (record["cpus"] or 1):
        lines += [
            "The load average was above the CPU count: other work competed for the CPUs during this run, "
            "so the figures (offline ones included) measure that contention as much as vidsynth.",
            "",
        ]
    for index, run in enumerate(offline_runs):
        lines += [
            f"Offline{' (again, after the served runs)' if index else ''}: "
            f"{run['generate_videos_per_s']} videos/s through the generate pipeline (model + mp4, "
            "backend open), "
            f"{run['model_videos_per_s_batch8']} videos/s for the bare model at batch 8 ({run['detail']}).",
            "",
        ]
    lines += [
        "| scenario | replicas x CPUs | ok | requests/s | vs offline (mean of runs) | p50 s | p99 s | "
        "p99/p50 | mean batch | CPU use |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r["scenario"] == "offline":
            continue
        share = f"{r['requests_per_s'] / offline_rate:.0%}" if offline_rate else "-"
        lines.append(
            f"| {r['scenario']} | {r['replicas']} x {r['cpus_per_replica']:g} | "
            f"{r['ok']}/{r['requests']} | {r['requests_per_s']} | {share} "
            f"| {r['p50_s']} | {r['p99_s']} | {r['p99_s'] / r['p50_s']:.2f} | {r['mean_batch']} | "
            f"{r['cpu_use']:.0%} |"
        )
    (out / "serve.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default="default")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument(
        "--scenario", choices=SCENARIOS, help="run one scenario and print its JSON (used internally)"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated scenarios to run (offline also runs again at the end)",
    )
    parser.add_argument(
        "--note", default="", help="a sentence for the report (say if the machine was shared)"
    )
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    if args.scenario:
        result = offline(args) if args.scenario == "offline" else served(args, args.scenario)
        print("RESULT " + json.dumps(result))
        return
    args.load_before = [round(x, 2) for x in os.getloadavg()]
    results = []
    chosen = set(args.scenarios.split(","))
    for scenario in [s for s in RUN_ORDER if s in chosen]:
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        if scenario == "2-nodes":
            env["RAY_AUTH_MODE"] = "token"
        command = [sys.executable, "-m", "vidsynth.bench.serve_load", "--scenario", scenario]
        for option in ("weights", "backend", "requests", "concurrency", "frames"):
            command += [f"--{option}", str(getattr(args, option))]
        run = subprocess.run(command, env=env, capture_output=True, text=True)
        line = next((out for out in run.stdout.splitlines() if out.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"{scenario} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
        results.append(json.loads(line[len("RESULT ") :]))
        print(json.dumps(results[-1]), flush=True)
    write_report(results, Path(args.out), args)


if __name__ == "__main__":
    main()
