"""Training checkpoints: safetensors for every tensor (networks, Adam moments, RNG states)
and JSON for the rest. Written atomically, so a run killed mid-save keeps the previous one.

RUN_DIR/checkpoint/
  networks.safetensors   generator.*, image_critic.*, video_critic.*
  optimizers.safetensors <name>.<param index>.<state key> (Adam's step, exp_avg, exp_avg_sq)
  rng.safetensors        the run's torch.Generator states (<name>.<device type>)
  state.json             step, wall time, TrainConfig, ModelConfig, optimizer param groups
(The per-step losses are appended to RUN_DIR/losses.jsonl instead: see loss_log.py.)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vidsynth.atomic import atomic_directory
from vidsynth.errors import InputError

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"


def flatten_optimizer(name: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors = {}
    for index, slots in state["state"].items():
        for key, value in slots.items():
            tensors[f"{name}.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    return tensors, {"param_groups": state["param_groups"]}


def unflatten_optimizer(name: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    prefix = name + "."
    for key, value in tensors.items():
        if key.startswith(prefix):
            index, slot = key[len(prefix):].split(".", 1)
            state.setdefault(int(index), {})[slot] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(run_dir: Path, networks: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                    generators: dict[str, torch.Generator], record: dict[str, Any]) -> Path:
    net_tensors = {
        f"{name}.{key}": value.detach().cpu().contiguous()
        for name, module in networks.items() for key, value in module.state_dict().items()
    }
    opt_tensors, opt_meta = {}, {}
    for name, optimizer in optimizers.items():
        tensors, meta = flatten_optimizer(name, optimizer)
        opt_tensors.update(tensors)
        opt_meta[name] = meta
    rng = {_rng_key(name, g): g.get_state() for name, g in generators.items()}
    target = run_dir / CHECKPOINT_DIR
    with atomic_directory(target, force=True) as tmp:
        save_file(net_tensors, str(tmp / "networks.safetensors"))
        save_file(opt_tensors, str(tmp / "optimizers.safetensors"))
        save_file(rng, str(tmp / "rng.safetensors"))
        (tmp / STATE_FILE).write_text(json.dumps({**record, "optimizers": opt_meta}, indent=1) + "\n")
    return target


def read_checkpoint_record(run_dir: Path) -> dict[str, Any]:
    path = run_dir / CHECKPOINT_DIR / STATE_FILE
    if not path.is_file():
        raise InputError(f"no checkpoint to resume in {run_dir} (expected {path})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None


def load_checkpoint(run_dir: Path, networks: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                    generators: dict[str, torch.Generator]) -> tuple[dict[str, Any], list[str]]:
    """Restores everything in place; returns the JSON record and the names of the generators
    it holds no state for (a generator's state belongs to its device type, so moving a run to
    another device leaves those to be seeded afresh)."""
    record = read_checkpoint_record(run_dir)
    folder = run_dir / CHECKPOINT_DIR
    try:
        net_tensors = load_file(str(folder / "networks.safetensors"))
        opt_tensors = load_file(str(folder / "optimizers.safetensors"))
        rng = load_file(str(folder / "rng.safetensors"))
    except (SafetensorError, OSError) as exc:
        raise InputError(f"checkpoint in {folder} is damaged: {exc}") from None
    for name, module in networks.items():
        prefix = name + "."
        module.load_state_dict({k[len(prefix):]: v for k, v in net_tensors.items() if k.startswith(prefix)})
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(unflatten_optimizer(name, opt_tensors, record["optimizers"][name]))
    missing = []
    for name, g in generators.items():
        state = rng.get(_rng_key(name, g))
        if state is None:
            missing.append(name)
        else:
            g.set_state(state)
    return record, missing


def _rng_key(name: str, generator: torch.Generator) -> str:
    return f"{name}.{generator.device.type}"
