"""SHA256SUMS beside weights and checkpoints (the format `sha256sum -c` reads), so a flipped
byte in a file is caught on load instead of being loaded and re-saved as if good."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

from vidsynth.errors import VidsynthError
from vidsynth.files import read_small_file

SUMS_FILE = "SHA256SUMS"
_LINE = re.compile(r"^([0-9a-f]{64})  ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$")


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_sums(directory: Path, names: Iterable[str]) -> None:
    """Records the sha256 of each of `names` (files in `directory`) in directory/SHA256SUMS."""
    lines = [f"{sha256_file(directory / name)}  {name}\n" for name in sorted(names)]
    (directory / SUMS_FILE).write_text("".join(lines))


def verify_sums(directory: Path, error: type[VidsynthError]) -> None:
    """Checks every file SHA256SUMS lists; `error` names a missing SHA256SUMS or the first
    file that does not match."""
    path = directory / SUMS_FILE
    if not os.path.lexists(path):
        raise error(
            f"{directory} has no {SUMS_FILE}, so its files cannot be verified; it was not written by vidsynth"
        )
    text = read_small_file(path, 64 << 10, error, "a SHA256SUMS list").decode("utf-8", "replace")
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            raise error(f"{path} is damaged: {line[:80]!r} is not '<sha256>  <file name>'")
        digest, name = match.groups()
        target = directory / name
        if not target.is_file():
            raise error(f"{target} is listed in {SUMS_FILE} but missing")
        if sha256_file(target) != digest:
            raise error(
                f"{target} does not match its sha256 in {SUMS_FILE}: the file is corrupted or was changed"
            )
