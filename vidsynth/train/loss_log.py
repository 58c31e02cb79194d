"""The per-step loss log, RUN_DIR/losses.jsonl: one JSON object per step, appended as the run
goes. Checkpoints stay the same size however long the run is; a resumed run first cuts the
log back to its checkpoint's step, so the steps it redoes are not logged twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from vidsynth.atomic import atomic_file
from vidsynth.errors import InputError

LOSS_LOG = "losses.jsonl"
DECIMALS = 6  # what the log keeps of each loss


def read_losses(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every logged step, oldest first: [{"step": 1, "d_image": ..., ...}, ...]."""
    path = Path(run_dir) / LOSS_LOG
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} line {number} is not valid JSON: {exc}") from None
    return rows


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

    def append(self, step: int, losses: dict[str, float]) -> None:
        row = {"step": step, **{name: round(value, DECIMALS) for name, value in losses.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> LossLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
