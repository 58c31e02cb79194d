"""What `vidsynth serve` deploys. Torch- and Ray-free, so options are checked before Ray starts."""

from __future__ import annotations

from dataclasses import dataclass, field

from vidsynth.errors import InputError
from vidsynth.runtime.request import GenerateRequest
from vidsynth.serve.limits import ServeLimits
from vidsynth.serve.live import LiveLimits


@dataclass(frozen=True)
class ServeOptions:
    """What `vidsynth serve` deploys: the model (weights or artifacts, backend, device) as a
    GenerateRequest, how many replicas (None: as many as fit the CPUs, decided by run_server)
    with how many CPUs each, and the limits."""

    model: GenerateRequest = field(default_factory=GenerateRequest)
    replicas: int | None = 1
    cpus_per_replica: float = 1.0
    limits: ServeLimits = field(default_factory=ServeLimits)
    live: LiveLimits = field(default_factory=LiveLimits)  # POST /v1/streams

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
