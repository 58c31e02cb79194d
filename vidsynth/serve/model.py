"""The Ray Serve deployment that holds a backend: one per replica, batching concurrent
requests into shared model calls (`@serve.batch`)."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections import Counter
from dataclasses import replace
from typing import Any

from vidsynth.cluster import import_serve

serve = import_serve()

from vidsynth.runtime.request import GenerateRequest  # noqa: E402
from vidsynth.serve.body import Rendered  # noqa: E402
from vidsynth.serve.live import ChunkCall, ChunkResult  # noqa: E402
from vidsynth.serve.options import ServeLimits  # noqa: E402


class VideoModel:
    """Opens the server's backend once; `generate` takes one validated GenerateRequest and
    returns its Rendered file, or raises the request's VidsynthError."""

    def __init__(self, server: GenerateRequest, limits: ServeLimits, threads: int) -> None:
        import ray

        from vidsynth.export import export_weights
        from vidsynth.runtime.backend import open_backend
        from vidsynth.runtime.sharing import shares_model_calls
        from vidsynth.serve.card import model_card

        self.backend = open_backend(server, exporter=export_weights)
        limit_torch_threads(threads)
        self.share_calls = shares_model_calls(self.backend)
        self.card = {
            **model_card(server, self.backend),
            "threads": threads,
            "shares_model_calls": self.share_calls,
        }
        self.replica = f"{ray.get_runtime_context().get_node_id()}/{os.getpid()}"  # X-Vidsynth-Replica
        for batched in (self._batch, self.stream_chunk):
            batched.set_max_batch_size(limits.max_batch)
            batched.set_batch_wait_timeout_s(limits.batch_wait_s)

    def info(self) -> dict[str, Any]:
        return self.card

    async def generate(self, request: GenerateRequest) -> Rendered:
        gone = threading.Event()
        try:
            outcome = await self._batch((request, gone))
        except asyncio.CancelledError:  # the caller gave up (the ingress's timeout)
            gone.set()
            raise
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def _batch(self, calls: list[tuple[GenerateRequest, threading.Event]]) -> list:
        from vidsynth.serve.render import render_requests

        requests, gone = zip(*calls)
        # In a worker thread, so that the replica keeps answering (health, info) meanwhile; the
        # thread cannot be interrupted, so a render stops itself once all its callers are gone.
        outcomes = await asyncio.to_thread(
            render_requests, self.backend, list(requests), self.share_calls, list(gone)
        )
        return [replace(o, replica=self.replica) if isinstance(o, Rendered) else o for o in outcomes]

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def stream_chunk(self, calls: list[ChunkCall]) -> list[ChunkResult]:
        """Live streams' next chunks (serve/live.py), batched: each state comes in and goes out."""
        from vidsynth.runtime.chunks import next_chunks

        made = await asyncio.to_thread(
            next_chunks, self.backend, [(c.noise, c.state, c.n_frames) for c in calls], self.share_calls
        )
        lengths = Counter(c.n_frames for c in calls)
        return [
            ChunkResult(frames, state, self.replica, lengths[c.n_frames] if self.share_calls else 1)
            for (frames, state), c in zip(made, calls)
        ]


def limit_torch_threads(threads: int) -> None:
    """One intra-op thread per CPU the replica was given. onnxruntime and openvino take it
    from GenerateRequest.threads; torch, when a backend loaded it, is process-wide."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
