"""A simulated 2-node Ray cluster (ray.cluster_utils.Cluster): serving replicas land on both
nodes, and a `batch` job uses both. Run by tests/test_serve_ray.py inside `unshare -n`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from serve_support import REPO, Serve, post_json, require_netns, small_weights, vidsynth

require_netns()

from vidsynth.export import export_weights  # noqa: E402
from vidsynth.runtime.generate import generate_videos  # noqa: E402
from vidsynth.runtime.request import GenerateRequest  # noqa: E402

PORT = 8331


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    return small_weights(tmp_path_factory.mktemp("cluster") / "weights")


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    from vidsynth.cluster import WORKER_ENV

    assert os.environ.get("RAY_AUTH_MODE") == "token"
    # 3 CPUs a node, 2 a replica or worker: no node holds two, so placement shows both nodes
    # (Ray's spread is a preference: two 1-CPU actors may share a node).
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 3, "include_dashboard": False})
    try:
        nodes.add_node(num_cpus=3)
        nodes.wait_for_nodes()
        ray.init(address=nodes.address, runtime_env={"env_vars": dict(WORKER_ENV)}, log_to_driver=False)
        yield nodes
    finally:
        ray.shutdown()
        nodes.shutdown()


def test_two_nodes_serve_requests(cluster, weights):
    """`vidsynth serve --address` as users run it: it sizes itself from the cluster, node by
    node (6 CPUs in all, but one 2-CPU replica per 3-CPU node), and both nodes answer."""
    import ray

    nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    assert len(nodes) == 2
    args = ["--address", cluster.address, "--weights", weights, "--backend", "onnxruntime"]
    server = Serve(*args, "--cpus-per-replica", "2", "--port", str(PORT))
    try:
        url = server.wait_for("vidsynth serving ").split()[2]
        assert "starting 2 replica(s) x 2 CPU" in server.output(), server.output()
        # The ingress learns of the second replica a moment after the first: ask until both
        # nodes have answered.
        served_by: set[str] = set()
        deadline = time.monotonic() + 120
        while served_by != nodes and time.monotonic() < deadline:
            with ThreadPoolExecutor(8) as pool:
                answers = list(
                    pool.map(lambda s: post_json(f"{url}/v1/videos", {"seed": s, "frames": 8}), range(8))
                )
            assert [status for status, _, _ in answers] == [200] * 8
            served_by |= {headers["x-vidsynth-replica"].split("/")[0] for _, headers, _ in answers}
        assert served_by == nodes
        assert server.stop(signal.SIGTERM, group=False) == 0, server.output()
    finally:
        server.kill()


def test_a_batch_job_uses_both_nodes_and_resumes(cluster, weights, tmp_path):
    """`vidsynth batch --address` as users run it: it sizes its workers from the cluster, node
    by node (one 2-CPU worker per 3-CPU node), both nodes make videos, and a rerun resumes."""
    import ray

    from vidsynth.batch.job import INDEX_NAME

    nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    out = tmp_path / "data"
    args = ["--out", str(out), "--count", "12", "--weights", weights, "--backend", "onnxruntime"]
    args += ["--seed", "100", "--frames", "8", "--videos-per-call", "2", "--cpus-per-worker", "2"]
    args += ["--address", cluster.address]
    made = subprocess.run(vidsynth("batch", *args), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-3000:]
    assert "2 worker(s) x 2 CPU" in made.stderr, made.stderr
    lines = [json.loads(line) for line in (out / INDEX_NAME).read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == list(range(12))
    assert {line["node"] for line in lines} == nodes
    assert all(
        line["file"] == f"video_{line['id']:06d}.mp4"
        and line["frames"] == 8
        and line["category"] in (0, 1)
        and line["seed"] == 100 + line["id"]
        for line in lines
    )

    # Video 5 is `vidsynth generate --seed 105 --num-videos 1` (category drawn from the seed).
    generated = generate_videos(
        GenerateRequest(
            weights=weights,
            backend="onnxruntime",
            device="cpu",
            seed=105,
            num_videos=1,
            frames=8,
            out=str(tmp_path / "generate"),
        ),
        exporter=export_weights,
    )
    assert generated.paths[0].read_bytes() == (out / "video_000005.mp4").read_bytes()

    # Resumable: a lost video is made again, the others are skipped.
    (out / "video_000003.mp4").unlink()
    again = subprocess.run(vidsynth("batch", *args), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "11 of 12 videos already" in again.stderr and "making 1" in again.stderr, again.stderr
    assert (out / "video_000003.mp4").is_file()


def test_npy_frames(cluster, weights, tmp_path):
    from vidsynth.batch.job import BatchJob, run_batch

    model = GenerateRequest(weights=weights, backend="onnxruntime", device="cpu")
    job = BatchJob(
        out=str(tmp_path / "npy"), count=3, model=model, frames=70, format="npy", category=1, workers=1
    )
    records = run_batch(job)
    frames = np.load(tmp_path / "npy" / records[2]["file"])
    assert frames.shape == (70, 64, 64, 3) and frames.dtype == np.uint8 and frames.std() > 0
    assert {record["category"] for record in records.values()} == {1}
