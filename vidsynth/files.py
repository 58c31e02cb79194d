"""Reading small files that may be hostile: only regular files, never more than a cap. A FIFO
would block open() and read() forever, a link to /dev/zero would read without end."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from vidsynth.errors import VidsynthError


def read_small_file(path: str | os.PathLike, max_bytes: int, error: type[VidsynthError], what: str) -> bytes:
    """The bytes of `path`, which must be a regular file of at most `max_bytes`; otherwise
    `error` naming `what` the file was supposed to be. A missing file raises FileNotFoundError."""
    path = Path(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # O_NONBLOCK: opening a FIFO does not wait for a writer
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path} is not a regular file; expected {what}")
        if info.st_size > max_bytes:
            raise error(f"{path} is {info.st_size} bytes; {what} is at most {max_bytes}")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise error(f"{path} grew past {max_bytes} bytes while being read; expected {what}")
    return data
