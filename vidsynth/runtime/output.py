"""The output directory: files are written to a hidden staging directory inside it and
renamed into place only when every one of them is complete, so a failure leaves nothing
half-written (and leaves files from earlier runs untouched). Torch-free."""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vidsynth.errors import InputError


def check_output_dir(directory: Path) -> None:
    """Fails early, before any work, when `directory` cannot hold the output."""
    directory = Path(directory)
    if directory.exists():
        if not directory.is_dir():
            raise InputError(f"output {directory} exists and is not a directory")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise InputError(f"output directory {directory} is not writable")
        return
    ancestor = directory.resolve().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"cannot create output directory {directory}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"cannot create output directory {directory}: {ancestor} is not writable")


def _missing_dirs(directory: Path) -> list[Path]:
    """The directories that must be made for `directory` to exist, deepest first."""
    missing = []
    path = directory.resolve()
    while not path.exists():
        missing.append(path)
        path = path.parent
    return missing


@contextmanager
def staged_output(directory: Path) -> Iterator[tuple[Path, list[str]]]:
    """Yields (staging directory, names list). On success the files named in the list are
    renamed from staging into `directory`; on failure staging is removed, and so is
    `directory` if this call created it."""
    directory = Path(directory)
    check_output_dir(directory)
    created = _missing_dirs(directory)
    if created:
        try:
            directory.mkdir(parents=True)
        except OSError as exc:
            raise InputError(f"cannot create output directory {directory}: {exc.strerror}") from None
    staging = Path(tempfile.mkdtemp(prefix=".vidsynth-tmp-", dir=directory))
    names: list[str] = []
    try:
        yield staging, names
        for name in names:
            os.replace(staging / name, directory / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for made in created:  # deepest first; only while still empty
            try:
                made.rmdir()
            except OSError:
                break
        raise
    shutil.rmtree(staging, ignore_errors=True)
