"""The per-step loss log, RUN_DIR/losses.jsonl: one JSON object per step, appended as the run
goes. Checkpoints stay the same size however long the run is; a resumed run first cuts the
log back to its checkpoint's step, so the steps it redoes are not logged twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from vidsynth.atomic import atomic_file, is_disk_full
from vidsynth.errors import InputError, StorageError

LOSS_LOG = "losses.jsonl"
DECIMALS = 6  # what the log keeps of each loss


def read_losses(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every logged step, oldest first: [{"step": 1, "d_image": ..., ...}, ...]. A last line
    without its newline, cut by a crash while it was written, is left out."""
    path = Path(run_dir) / LOSS_LOG
    if not path.is_file():
        return []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    lines = text.split("\n")
    complete, last = lines[:-1], lines[-1]  # `last` is "" when the file ends with its newline
    rows = [_row(line, number, path) for number, line in enumerate(complete, 1)]
    if last:
        try:
            rows.append(_row(last, len(lines), path))
        except InputError:
            pass  # a line the crash cut short
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

    def __enter__(self) -> LossLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
