"""What `vidsynth serve` deploys and what it accepts: per-request size limits, queue bounds,
timeouts and the live streams' bounds. Torch- and Ray-free, so options are checked before Ray
starts. The defaults keep a request to about a minute of CPU time at 64x64 and the queue short
enough that a client sees 503 (retry later) instead of waiting without bound."""

from __future__ import annotations

from dataclasses import dataclass, field

from vidsynth.errors import InputError
from vidsynth.runtime.chunks import FIRST_FRAMES
from vidsynth.runtime.request import GenerateRequest


class LimitError(InputError):
    """A valid request that asks for more than this server makes per request (HTTP 413)."""


def _check_positive(limits: object, what: str) -> None:
    bad = [name for name, value in vars(limits).items() if value is not None and not value > 0]
    if bad:
        raise InputError(f"{what} limits must be positive: {', '.join(bad)}", fields=bad)


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
        _check_positive(self, "server")
        return self

    def check(self, request: GenerateRequest) -> None:
        """Raises LimitError (naming the fields) when `request` is over the limits."""
        problems = {}
        if request.num_videos > self.max_videos:
            problems["num_videos"] = (
                f"num_videos is {request.num_videos}; this server makes at most {self.max_videos} per request"
            )
        total = request.frames * request.num_videos
        if total > self.max_total_frames:
            problems["frames"] = (
                f"frames x num_videos is {request.frames} x {request.num_videos} = {total}; "
                f"this server makes at most {self.max_total_frames} frames per request"
            )
        if problems:
            raise LimitError("; ".join(problems.values()), fields=list(problems))


@dataclass(frozen=True)
class LiveLimits:
    """The bounds of live streams (`POST /v1/streams`, serve/live.py)."""

    max_streams: int = 8  # streams at once; past this: 503 with Retry-After
    max_frames: int | None = None  # frames per stream (an endless request ends there); None: no cap
    lead_s: float = 2.0  # seconds of video a stream may run ahead of the wall clock, beyond one chunk
    first_frames: int = FIRST_FRAMES  # frames of the first call: how soon the first frame leaves
    retry_after_s: int = 5  # what a 503 tells the client to wait
    call_timeout_s: float = 30.0  # a model call not answered by then counts as failed (made again once)

    def validate(self) -> LiveLimits:
        _check_positive(self, "stream")
        return self


@dataclass(frozen=True)
class ServeOptions:
    """What `vidsynth serve` deploys: the model (weights or artifacts, backend, device) as a
    GenerateRequest, how many replicas (None: as many as fit the CPUs, decided by run_server)
    with how many CPUs each, and the limits."""

    model: GenerateRequest = field(default_factory=GenerateRequest)
    replicas: int | None = 1
    cpus_per_replica: float = 1.0
    limits: ServeLimits = field(default_factory=ServeLimits)
    live: LiveLimits = field(default_factory=LiveLimits)

    def validate(self) -> ServeOptions:
        self.model.validate()
        self.limits.validate()
        self.live.validate()
        if self.replicas is not None and (
            isinstance(self.replicas, bool) or not isinstance(self.replicas, int) or self.replicas < 1
        ):
            raise InputError(
                f"replicas must be a positive integer, got {self.replicas!r}", fields=["replicas"]
            )
        if not self.cpus_per_replica > 0:
            raise InputError(
                f"cpus-per-replica must be > 0, got {self.cpus_per_replica!r}", fields=["cpus_per_replica"]
            )
        return self
