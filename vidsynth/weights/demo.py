"""The `demo` weights: seeded random, untrained. Batch-norm statistics are calibrated on
seeded noise so demo videos show contrast instead of flat grey."""

from __future__ import annotations

import torch

from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import VideoGenerator, build_model

DEMO_SEED = 0
_CALIBRATION_BATCH = 16
_CALIBRATION_FRAMES = 8


def demo_model(config: ModelConfig | None = None) -> VideoGenerator:
    """Untrained generator with the same weights on every machine (eval mode)."""
    config = config or ModelConfig()
    model = build_model(config, seed=DEMO_SEED)
    generator = torch.Generator().manual_seed(DEMO_SEED)
    z_content = torch.randn(_CALIBRATION_BATCH, config.d_content, generator=generator)
    z_motion = torch.randn(_CALIBRATION_BATCH, config.d_motion, generator=generator)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.momentum = None  # cumulative average over the calibration pass
    model.train()
    with torch.no_grad():
        model(z_content, z_motion, _CALIBRATION_FRAMES)
    for norm in norms:
        norm.momentum = 0.1
    model.provenance = {"source": "demo", "note": "seeded random weights, untrained"}
    return model.eval()
