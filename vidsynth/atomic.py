"""Write files and directories so that a failure never leaves half an artifact behind and
never clobbers a good one: everything is written to a temporary sibling, then renamed."""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vidsynth.errors import InputError


def _default_mode(base: int) -> int:
    """`base` less the process umask: what a plain open()/mkdir() would have given."""
    umask = os.umask(0)
    os.umask(umask)
    return base & ~umask


def check_writable_parent(target: Path) -> None:
    parent = target.resolve().parent
    if not parent.exists():
        try:
            parent.mkdir(parents=True)
        except OSError as exc:
            raise InputError(f"cannot create directory {parent}: {exc.strerror}") from None
    if not os.access(parent, os.W_OK):
        raise InputError(f"output location {parent} is not writable")


@contextmanager
def atomic_directory(target: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yields an empty temporary directory that replaces `target` when the block succeeds.

    An existing non-empty `target` is refused unless `force`; with `force` it is swapped out
    only after the new contents are complete.
    """
    target = Path(os.path.abspath(target))  # "." or "out/" still name the directory itself
    if target.exists() and not target.is_dir():
        raise InputError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise InputError(f"{target} already exists and is not empty; pass --force to replace it")
    check_writable_parent(target)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.resolve().parent))
    except OSError as exc:
        raise InputError(f"cannot write into {target.resolve().parent}: {exc.strerror}") from None
    os.chmod(tmp, _default_mode(0o777))  # mkdtemp makes 0700; artifacts are meant to be shared
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, old)
    os.rename(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_file(target: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path (same directory and suffix) renamed onto `target` on success."""
    target = Path(target)
    check_writable_parent(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.tmp-", suffix=target.suffix, dir=target.resolve().parent)
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, _default_mode(0o666))  # mkstemp makes 0600
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
