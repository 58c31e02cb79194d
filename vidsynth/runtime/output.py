"""The output directory: a run stages its files in a hidden directory inside it and commits them
all or nothing, under an exclusive flock on the directory itself (no lock file left behind) from
before it stages anything until its files are in place, so a second run into it is refused
instead of mixing files. Every target is checked before the first rename, and a failed rename
undoes the ones before it. Torch-free."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vidsynth.atomic import is_disk_full
from vidsynth.errors import InputError, StorageError

STAGING_PREFIX = ".vidsynth-tmp-"


@contextmanager
def locked_directory(directory: Path) -> Iterator[None]:
    """Holds an exclusive lock on `directory`; refuses at once if another run holds it."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"another vidsynth run is writing into {directory}; wait for it to finish or choose "
                "another --out"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def sweep_staging(directory: Path) -> None:
    """Removes staging directories left by killed runs (call with the lock held: no live run
    has one then)."""
    for entry in directory.iterdir():
        if entry.name.startswith(STAGING_PREFIX) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)


def commit_files(staging: Path, directory: Path, names: list[str]) -> None:
    """Moves staging/NAME to directory/NAME for every name, or none of them."""
    blocked = [name for name in names if (directory / name).is_dir() and not (directory / name).is_symlink()]
    if blocked:
        raise InputError(
            f"{directory} holds directories named like the output ({', '.join(blocked[:3])}); "
            "nothing was written: move them or choose another --out"
        )
    previous = staging / ".previous"
    previous.mkdir()
    done: list[tuple[Path, Path]] = []
    try:
        for name in names:
            target = directory / name
            if os.path.lexists(target):
                os.rename(target, previous / name)
                done.append((target, previous / name))
            os.rename(staging / name, target)
            done.append((staging / name, target))
    except OSError as exc:
        for source, destination in reversed(done):
            os.rename(destination, source)
        raise StorageError(
            f"could not move the output into {directory} ({exc.strerror}); nothing was changed"
        ) from None


def check_output_dir(directory: Path) -> None:
    """Fails early, before any work, when `directory` cannot hold the output."""
    if directory.exists():
        if not directory.is_dir():
            raise InputError(f"output {directory} exists and is not a directory")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise InputError(f"output directory {directory} is not writable")
        return
    ancestor = _missing_dirs(directory)[-1].parent
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
    """Yields (staging directory, names list): on success the named files are committed into
    `directory`; on failure staging is removed, and so is `directory` if this call created it."""
    check_output_dir(directory)
    created = _missing_dirs(directory)
    if created:
        try:
            directory.mkdir(parents=True)
        except OSError as exc:
            raise InputError(f"cannot create output directory {directory}: {exc.strerror}") from None
    staging = None
    try:
        with locked_directory(directory):
            sweep_staging(directory)
            staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=directory))
            names: list[str] = []
            yield staging, names
            commit_files(staging, directory, names)
    except BaseException as exc:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for made in created:  # deepest first; only while still empty
            try:
                made.rmdir()
            except OSError:
                break
        if is_disk_full(exc) and not isinstance(exc, StorageError):
            raise StorageError(
                f"no space left on the device while writing into {directory}; nothing was written"
            ) from None
        raise
    shutil.rmtree(staging, ignore_errors=True)
