"""Loading a state dict into a model with errors that name the offending key."""
from __future__ import annotations

import torch
from torch import nn

from vidsynth.errors import WeightsError


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copies `state` into `model`, refusing missing or unexpected keys and shape mismatches."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    for key in sorted(set(expected) & set(state)):
        if tuple(state[key].shape) != tuple(expected[key].shape):
            problems.append(
                f"shape mismatch at {key}: expected {tuple(expected[key].shape)}, found {tuple(state[key].shape)}"
            )
    if problems:
        raise WeightsError(f"{source}: " + "; ".join(problems))
    cast = {k: v.to(expected[k].dtype) for k, v in state.items()}
    model.load_state_dict(cast, strict=True)
