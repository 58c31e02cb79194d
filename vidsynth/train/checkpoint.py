"""Training checkpoints: safetensors for every tensor (networks, Adam moments, RNG states)
and JSON for the rest. Written atomically, so a run killed mid-save keeps the previous one.

RUN_DIR/checkpoint/
  networks.safetensors   generator.*, image_critic.*, video_critic.*
  optimizers.safetensors <name>.<param index>.<state key> (Adam's step, exp_avg, exp_avg_sq)
  rng.safetensors        the run's torch.Generator states (<name>.<device type>)
  state.json             step, wall time, TrainConfig, ModelConfig, optimizer param groups

The per-step losses are appended to RUN_DIR/losses.jsonl instead, one JSON object per step, so
checkpoints stay the same size however long the run is; a resumed run first cuts the log back
to its checkpoint's step, so the steps it redoes are not logged twice.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, TextIO

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vidsynth.atomic import atomic_directory, atomic_file, is_disk_full, owned_directory
from vidsynth.checksums import SUMS_FILE, verify_sums, write_sums
from vidsynth.errors import InputError, StorageError
from vidsynth.files import read_small_file

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
TENSOR_FILES = ("networks.safetensors", "optimizers.safetensors", "rng.safetensors")
MAX_STATE_BYTES = 256 << 20
LOSS_LOG = "losses.jsonl"
DECIMALS = 6  # what the log keeps of each loss
RECORD_KEYS = ("step", "elapsed_s", "train_config", "model_config", "optimizers")
recognise_checkpoint = owned_directory({*TENSOR_FILES, STATE_FILE, SUMS_FILE}, STATE_FILE)


def _named(tensors: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """The tensors save_checkpoint wrote as `name.KEY`, by KEY."""
    prefix = name + "."
    return {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}


def _optimizer_state(name: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in _named(tensors, name).items():
        index, slot = key.split(".", 1)  # <param index>.<state key>
        state.setdefault(int(index), {})[slot] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    run_dir: Path,
    networks: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    generators: dict[str, torch.Generator],
    record: dict[str, Any],
) -> None:
    net_tensors = {
        f"{name}.{key}": value.detach().cpu().contiguous()
        for name, module in networks.items()
        for key, value in module.state_dict().items()
    }
    opt_states = {name: optimizer.state_dict() for name, optimizer in optimizers.items()}
    opt_tensors = {
        f"{name}.{index}.{key}": torch.as_tensor(value).detach().cpu().contiguous()
        for name, state in opt_states.items()
        for index, slots in state["state"].items()
        for key, value in slots.items()
    }
    opt_meta = {name: {"param_groups": state["param_groups"]} for name, state in opt_states.items()}
    rng = {_rng_key(name, g): g.get_state() for name, g in generators.items()}
    with atomic_directory(run_dir / CHECKPOINT_DIR, force=True, recognise=recognise_checkpoint) as tmp:
        for name, tensors in zip(TENSOR_FILES, (net_tensors, opt_tensors, rng)):
            save_file(tensors, str(tmp / name))
        (tmp / STATE_FILE).write_text(json.dumps({**record, "optimizers": opt_meta}, indent=1) + "\n")
        write_sums(tmp, (*TENSOR_FILES, STATE_FILE))


def read_checkpoint_record(run_dir: Path) -> dict[str, Any]:
    path = run_dir / CHECKPOINT_DIR / STATE_FILE
    if not path.is_file():
        raise InputError(f"no checkpoint to resume in {run_dir} (expected {path})")
    verify_sums(path.parent, InputError)
    try:
        record = json.loads(read_small_file(path, MAX_STATE_BYTES, InputError, "a checkpoint state.json"))
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputError(
            f"{path} is damaged (not valid JSON: {exc}); the checkpoint cannot be resumed"
        ) from None
    missing = [key for key in RECORD_KEYS if not isinstance(record, dict) or key not in record]
    if missing:
        raise InputError(f"{path} is damaged or not a vidsynth checkpoint: it lacks {missing}")
    if not isinstance(record["step"], int) or isinstance(record["step"], bool) or record["step"] < 0:
        raise InputError(f"{path} is damaged: step is {str(record['step'])[:40]}, expected a count of steps")
    return record


def load_checkpoint(
    run_dir: Path,
    networks: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    generators: dict[str, torch.Generator],
) -> tuple[dict[str, Any], list[str]]:
    """Restores everything in place; returns the JSON record and the names of the generators
    it holds no state for (a generator's state belongs to its device type, so moving a run to
    another device leaves those to be seeded afresh)."""
    record = read_checkpoint_record(run_dir)
    folder = run_dir / CHECKPOINT_DIR
    try:
        net_tensors, opt_tensors, rng = (load_file(str(folder / name)) for name in TENSOR_FILES)
    except (SafetensorError, OSError) as exc:
        raise InputError(f"checkpoint in {folder} is damaged: {exc}") from None
    try:
        for name, module in networks.items():
            module.load_state_dict(_named(net_tensors, name))
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(_optimizer_state(name, opt_tensors, record["optimizers"][name]))
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"the checkpoint in {folder} does not fit the run its state.json describes (files from another "
            f"run or damaged): {first}"
        ) from None
    for name, g in generators.items():
        try:
            if _rng_key(name, g) in rng:
                g.set_state(rng[_rng_key(name, g)])
        except (RuntimeError, TypeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(
                f"{folder / 'rng.safetensors'} holds no valid state for the {name} random generator "
                f"({first}); the checkpoint is damaged or from another torch"
            ) from None
    return record, [name for name, g in generators.items() if _rng_key(name, g) not in rng]


def _rng_key(name: str, generator: torch.Generator) -> str:
    return f"{name}.{generator.device.type}"


def read_losses(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every logged step, oldest first: [{"step": 1, "d_image": ..., ...}, ...]. A last line
    without its newline that does not parse (a crash cut it while it was written) is left out."""
    path = Path(run_dir) / LOSS_LOG
    if not path.is_file():
        return []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    *complete, last = text.split("\n")  # `last` is "" when the file ends with its newline
    rows = [_row(line, number, path) for number, line in enumerate(complete, 1)]
    if last:
        with contextlib.suppress(InputError):  # a line the crash cut short
            rows.append(_row(last, len(complete) + 1, path))
    return rows


def _row(line: str, number: int, path: Path) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise InputError(f"{path} line {number} is not valid JSON: {exc}") from None
    step = row.get("step") if isinstance(row, dict) else None
    if not isinstance(step, int) or isinstance(step, bool):
        raise InputError(f"{path} line {number} is not a step's losses (no integer step)")
    return row


class LossLog:
    """Appends one line per step, flushed at once: the log never lags the checkpoint."""

    def __init__(self, run_dir: str | Path, resume_step: int | None = None) -> None:
        """A new log, or with `resume_step` the run's log cut back to that step."""
        self.path = Path(run_dir) / LOSS_LOG
        rows = (
            [] if resume_step is None else [row for row in read_losses(run_dir) if row["step"] <= resume_step]
        )
        with atomic_file(self.path) as tmp:
            tmp.write_text("".join(json.dumps(row) + "\n" for row in rows))
        self._file: TextIO = self.path.open("a")
        self._failed = False

    def append(self, step: int, losses: dict[str, float]) -> None:
        row = {"step": step, **{name: round(value, DECIMALS) for name, value in losses.items()}}
        try:
            self._file.write(json.dumps(row) + "\n")
            self._file.flush()
        except OSError as exc:
            self._failed = True
            what = "the disk is full" if is_disk_full(exc) else exc.strerror
            raise StorageError(
                f"cannot append step {step} to {self.path} ({what}); the last checkpoint is kept: "
                "free space and resume with --resume"
            ) from None

    def close(self) -> None:
        try:
            self._file.close()
        except OSError:
            if not self._failed:  # the failed append reported it already
                raise
