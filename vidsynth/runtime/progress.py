"""A progress bar for long work: tqdm when it is installed (it is a vidsynth dependency,
but the torch-free serving script does not require it), otherwise nothing."""
from __future__ import annotations

from typing import Any


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, enabled: bool, desc: str = "frames") -> Any:
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, unit="frame", desc=desc, dynamic_ncols=True)
