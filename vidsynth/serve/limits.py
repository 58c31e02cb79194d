"""What one server accepts: per-request size limits, queue bounds and the request timeout.

The defaults keep a request to about a minute of CPU time at 64x64 and the queue short
enough that a client sees 503 (retry later) instead of waiting without bound."""

from __future__ import annotations

from dataclasses import dataclass

from vidsynth.errors import InputError
from vidsynth.runtime.request import GenerateRequest


class LimitError(InputError):
    """A valid request that asks for more than this server makes per request (HTTP 413)."""


@dataclass(frozen=True)
class ServeLimits:
    max_videos: int = 16  # num_videos per request
    max_total_frames: int = 4096  # frames x num_videos per request
    max_batch: int = 8  # requests one replica groups into a model call
    batch_wait_s: float = 0.01  # how long a replica waits for more requests to group
    max_ongoing: int = 8  # requests a replica holds at once (`vidsynth serve`: max_batch)
    max_queued: int = 32  # requests waiting for a replica; beyond this: 503
    timeout_s: float = 120.0  # a request still unanswered after this gets 504
    max_body_bytes: int = 64 << 10  # a request body is a small JSON object; beyond this: 413
    body_timeout_s: float = 10.0  # a body still arriving after this gets 408
    max_reading: int = 64  # bodies arriving at once; beyond this: 503, so slow senders cannot hold every slot

    def validate(self) -> ServeLimits:
        bad = [name for name, value in vars(self).items() if not value > 0]
        if bad:
            raise InputError(f"server limits must be positive: {', '.join(bad)}", fields=bad)
        return self

    def check(self, request: GenerateRequest) -> None:
        """Raises LimitError (naming the fields) when `request` is over the limits."""
        problems: list[tuple[str, str]] = []
        if request.num_videos > self.max_videos:
            problems.append(
                (
                    "num_videos",
                    f"num_videos is {request.num_videos}; this server makes at most {self.max_videos} "
                    "per request",
                )
            )
        total = request.frames * request.num_videos
        if total > self.max_total_frames:
            problems.append(
                (
                    "frames",
                    f"frames x num_videos is {request.frames} x {request.num_videos} = {total}; "
                    f"this server makes at most {self.max_total_frames} frames per request",
                )
            )
        if problems:
            raise LimitError("; ".join(m for _, m in problems), fields=[f for f, _ in problems])
