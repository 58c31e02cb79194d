"""When serve and batch may stack videos into one model call. Torch-free."""

from __future__ import annotations

import numpy as np

from vidsynth.model.noise import Noise, noise_rows, sample_noise
from vidsynth.runtime.backend import Backend

PROBE_SIZES = (2, 3, 8, 16)  # batch sizes checked against videos made one by one


def shares_model_calls(backend: Backend) -> bool:
    """Whether stacking videos into one model call leaves every video's values exactly as
    they are when it is made alone, for whole videos and for streamed chunks. Only then may
    requests share calls and still get the bytes `vidsynth generate` writes (ONNX Runtime's
    CPU kernels pass here; torch's batched CPU convolutions round differently). Checked at a
    few batch sizes, not all: a kernel whose rounding changed only at other sizes would pass."""
    noise = sample_noise(backend.config, max(PROBE_SIZES), seed=0)

    def both(rows: Noise) -> tuple[np.ndarray, np.ndarray]:
        return backend.generate(rows, 2), backend.generate_chunk(rows, backend.initial_state(rows), 2)[0]

    alone = [both(noise_rows(noise, i, i + 1)) for i in range(max(PROBE_SIZES))]
    for size in PROBE_SIZES:
        together = both(noise_rows(noise, 0, size))
        for i in range(size):
            if not all(np.array_equal(made[i : i + 1], single) for made, single in zip(together, alone[i])):
                return False
    return True
