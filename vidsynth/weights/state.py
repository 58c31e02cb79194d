"""Loading a state dict into a model with errors that name the offending key. Shapes are
compared against a model built on the meta device first, so a config or checkpoint that
declares huge sizes is refused before anything that size is allocated; values are checked
before they are copied in (a NaN or a negative variance would "generate" black videos)."""

from __future__ import annotations

import torch
from torch import nn

from vidsynth.errors import WeightsError
from vidsynth.model.config import ModelConfig

_BATCH_COUNTER = "num_batches_tracked"


def expected_shapes(config: ModelConfig, source: str) -> dict[str, tuple[int, ...]]:
    """The state dict shapes of VideoGenerator(config), computed without allocating it."""
    from vidsynth.model.generator import VideoGenerator

    try:
        with torch.device("meta"):
            model = VideoGenerator(config)
    except (RuntimeError, ValueError, OverflowError, MemoryError) as exc:
        raise WeightsError(f"{source}: the model its config declares cannot be built ({exc})") from None
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def shape_problems(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]) -> list[str]:
    problems = []
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    for key in sorted(set(expected) & set(found)):
        if tuple(found[key]) != tuple(expected[key]):
            problems.append(
                f"shape mismatch at {key}: expected {tuple(expected[key])}, found {tuple(found[key])}"
            )
    return problems


def check_shapes(config: ModelConfig, found: dict[str, tuple[int, ...]], source: str) -> None:
    """Refuses tensors whose names or shapes do not fit `config`, before the model is built."""
    problems = shape_problems(expected_shapes(config, source), found)
    if problems:
        raise WeightsError(f"{source}: " + "; ".join(problems))


def value_problems(state: dict[str, torch.Tensor]) -> list[str]:
    """Non-float parameters, NaN/inf values and negative batch-norm variances."""
    problems = []
    for key, value in sorted(state.items()):
        if key.endswith(_BATCH_COUNTER):
            continue
        if not value.dtype.is_floating_point:
            problems.append(f"{key} has dtype {value.dtype}; expected a floating-point type")
        elif not bool(torch.isfinite(value).all()):
            problems.append(f"{key} holds NaN or infinite values")
        elif key.endswith("running_var") and bool((value < 0).any()):
            problems.append(f"{key} holds negative variances")
    return problems


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copies `state` into `model`, refusing missing or unexpected keys, shape mismatches,
    non-float dtypes, NaN/inf values and negative batch-norm variances."""
    expected = model.state_dict()
    problems = shape_problems(
        {k: tuple(v.shape) for k, v in expected.items()}, {k: tuple(v.shape) for k, v in state.items()}
    )
    problems += value_problems({k: v for k, v in state.items() if k in expected})
    if problems:
        raise WeightsError(f"{source}: " + "; ".join(problems[:8]) + (" ..." if len(problems) > 8 else ""))
    cast = {k: v.to(expected[k].dtype) for k, v in state.items()}
    model.load_state_dict(cast, strict=True)
