"""`python -m vidsynth.runtime.ort ARGS` is `vidsynth generate ARGS`, kept as a name for the
torch-free path: `vidsynth generate --artifacts DIR` with the onnxruntime backend imports no torch."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from vidsynth.cli import cli


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(["generate", *(sys.argv[1:] if argv is None else argv)], prog_name="vidsynth")


if __name__ == "__main__":
    main()
