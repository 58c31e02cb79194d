"""Write files and directories so that a failure never leaves half an artifact behind and
never clobbers a good one: everything is written to a temporary sibling, then renamed.

Temporary siblings carry the writer's PID (`.NAME.tmp-PID-xxxx`, `.NAME.old-PID`), so the
next run can sweep what a killed one left behind. A directory is replaced with one atomic
exchange (Linux renameat2 RENAME_EXCHANGE) where the filesystem supports it; elsewhere with
two renames, rolled back if the second fails and restored by the next run if the process died
between them. `--force` only ever replaces a directory its caller recognises as its own.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from vidsynth.errors import InputError, StorageError

Recogniser = Callable[[Path], str | None]  # None: vidsynth wrote it; else why it is not ours

_CANNOT_REPLACE = (errno.EXDEV, errno.EBUSY, errno.EACCES, errno.EPERM)


def current_umask() -> int:
    """The process umask, read without changing it (setting it to read it races other threads)."""
    with suppress(OSError):
        if found := re.search(r"^Umask:\s+([0-7]+)$", Path("/proc/self/status").read_text(), re.MULTILINE):
            return int(found[1], 8)
    umask = os.umask(0o022)  # no /proc: the racy way is the only one
    os.umask(umask)
    return umask


def default_mode(base: int) -> int:
    """`base` less the process umask: what a plain open()/mkdir() would have given."""
    return base & ~current_umask()


def is_disk_full(exc: BaseException) -> bool:
    """True for a write that failed for lack of space (OSError or a library's wrapped error)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return "No space left on device" in text or "Disk quota exceeded" in text


def check_writable_parent(target: Path) -> None:
    parent = Path(os.path.realpath(target)).parent
    if not parent.exists():
        try:
            parent.mkdir(parents=True)
        except OSError as exc:
            raise InputError(f"cannot create directory {parent}: {exc.strerror}") from None
    if not parent.is_dir():
        raise InputError(f"cannot write into {parent}: it is not a directory")
    if not os.access(parent, os.W_OK):
        raise InputError(f"output location {parent} is not writable")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def sweep_stale(parent: Path, name: str, kinds: str = "tmp|old") -> None:
    """Removes `.NAME.tmp-PID-*` and `.NAME.old-PID` entries in `parent` whose writer is no
    longer running; an `.old-PID` whose replacement never arrived is renamed back to NAME."""
    _sweep_lock(parent / f".{name}.lock")
    pattern = re.compile(rf"^\.{re.escape(name)}\.({kinds})-(\d+)(-.*)?$")
    try:
        entries = sorted(parent.iterdir())
    except OSError:
        return
    target = parent / name
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None or _pid_alive(int(match.group(2))):
            continue
        if match.group(1) == "old" and not os.path.lexists(target):
            try:
                os.rename(entry, target)  # killed between the two renames: put the old one back
                continue
            except OSError:
                pass
        _remove(entry)


def _sweep_lock(path: Path) -> None:
    """Removes an output lock file left by a killed run; one a live run holds (or none) is left."""
    with suppress(OSError):
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink()  # held while removed: a run that opened it meanwhile retries on a new file
        finally:
            os.close(fd)


def owned_directory(allowed: set[str], required: str) -> Recogniser:
    """A recogniser: a directory holding `required` and no entry outside `allowed`."""

    def recognise(directory: Path) -> str | None:
        names = {entry.name for entry in directory.iterdir()}
        if required not in names:
            return f"it has no {required}"
        extra = sorted(names - allowed)
        return f"it also holds {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}" if extra else None

    return recognise


def check_replaceable(target: str | os.PathLike, force: bool, recognise: Recogniser) -> None:
    """Refuses a `target` that atomic_directory would refuse, so a run can check before its work."""
    target = Path(os.path.realpath(target))
    if os.path.lexists(target) and not target.is_dir():
        raise InputError(f"{target} exists and is not a directory")
    if not target.is_dir() or not any(target.iterdir()):
        return
    if not force:
        raise InputError(f"{target} already exists and is not empty; pass --force to replace it")
    cwd = Path(os.path.realpath(os.getcwd()))
    if target == cwd or target in cwd.parents:
        raise InputError(f"refusing to replace {target}: it is the current directory or one of its parents")
    why = recognise(target)
    if why is not None:
        raise InputError(
            f"refusing to replace {target} even with --force: {why}. --force only replaces a directory "
            "vidsynth wrote; choose a new or empty directory"
        )


def _removable(previous: Path, force: bool, recognise: Recogniser) -> bool:
    """Whether what was at the target when the new directory went in may be deleted: nothing,
    an empty directory, or (with force) one vidsynth wrote."""
    if not previous.is_dir() or previous.is_symlink():
        return False
    if not any(previous.iterdir()):
        return True
    return force and recognise(previous) is None


_LOCKS_HELD: set[Path] = set()


@contextmanager
def output_lock(target: str | os.PathLike) -> Iterator[None]:
    """Holds the exclusive right to write `target` (a flock on `.NAME.lock` beside it, removed
    afterwards); refuses at once while another run holds it. Reentrant within a process, so a
    command can hold it for its whole run around the atomic_directory that writes `target`."""
    target = Path(os.path.realpath(target))
    if target in _LOCKS_HELD:
        yield
        return
    check_writable_parent(target)
    path = target.parent / f".{target.name}.lock"
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, default_mode(0o666))
        except OSError as exc:
            raise InputError(f"cannot lock {target} for writing ({path}: {exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(
                f"another vidsynth run is writing {target}; wait for it to finish or choose another --out"
            ) from None
        with suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        os.close(fd)  # the holder removed this lock file as we opened it: take the new one
    _LOCKS_HELD.add(target)
    try:
        yield
    finally:
        _LOCKS_HELD.discard(target)
        # Removed while still held: a run waiting on this file retries on a new one.
        path.unlink(missing_ok=True)
        os.close(fd)


def _make_modes_consistent(directory: Path) -> None:
    """Files get 0666 and directories 0777 less the umask, whoever created them (mkdtemp and
    safetensors create 0600/0700, which breaks sharing beside a 0644 config.json)."""
    file_mode, dir_mode = default_mode(0o666), default_mode(0o777)
    for root, _, files in os.walk(directory):
        os.chmod(root, dir_mode)
        for name in files:
            path = os.path.join(root, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                os.chmod(path, file_mode)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swaps two paths (renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _appeared(target: Path) -> InputError:
    return InputError(
        f"{target} was created or changed by something else while this run wrote it; it was left as it "
        "is and nothing was written: move it away or choose another --out"
    )


def _swap_in(tmp: Path, target: Path, force: bool, recognise: Recogniser) -> None:
    """Puts `tmp` at `target`; the previous `target` (if any) ends up removed, but only if it is
    still what the checks at the start allowed to replace: whatever appeared there since is put
    back and the new directory is not committed."""
    if not os.path.lexists(target):
        try:
            os.rename(tmp, target)  # an empty directory made at target since is replaced, nothing else
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise _appeared(target) from None
            raise
        return
    if _exchange(tmp, target):
        if not _removable(tmp, force, recognise):  # tmp now holds the previous contents
            _exchange(tmp, target)
            raise _appeared(target)
        _remove(tmp)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.rename(target, old)
    if not _removable(old, force, recognise):
        os.rename(old, target)
        raise _appeared(target)
    try:
        os.rename(tmp, target)
    except OSError:
        os.rename(old, target)  # roll back: the previous directory stays in place
        raise
    _remove(old)


def _swap_contents(staging: Path, target: Path) -> None:
    """For a mount point, which cannot be renamed: moves the old entries aside inside it, the
    new ones in, and rolls back if a move fails. Not atomic, but never leaves a mix."""
    old = target / f".{target.name}.old-{os.getpid()}"
    old.mkdir()
    moved_out: list[str] = []
    moved_in: list[str] = []
    try:
        for entry in sorted(target.iterdir()):
            if entry not in (old, staging):
                os.rename(entry, old / entry.name)
                moved_out.append(entry.name)
        for entry in sorted(staging.iterdir()):
            os.rename(entry, target / entry.name)
            moved_in.append(entry.name)
    except OSError:
        for name in moved_in:
            os.rename(target / name, staging / name)
        for name in moved_out:
            os.rename(old / name, target / name)
        old.rmdir()  # empty again; if a move back failed, the error keeps what it holds
        raise
    _remove(old)
    _remove(staging)


def _raise_storage_error(exc: BaseException, target: Path, cannot_replace: tuple[int, ...] = ()) -> None:
    """A StorageError for a write that failed for lack of space or with an errno in `cannot_replace`."""
    if is_disk_full(exc):
        raise StorageError(
            f"no space left on the device while writing {target}; it was left as it was"
        ) from None
    if isinstance(exc, OSError) and exc.errno in cannot_replace:
        raise StorageError(f"cannot replace {target}: {exc.strerror}; it was left as it was") from None


@contextmanager
def atomic_directory(target: str | os.PathLike, force: bool, recognise: Recogniser) -> Iterator[Path]:
    """Yields an empty temporary directory that replaces `target` when the block succeeds. A
    non-empty `target` is replaced only with `force` and if `recognise(target)` returns None
    (vidsynth wrote it). A symlinked `target` is followed: the directory it points to is
    replaced, the link stays. A full disk raises StorageError and leaves `target` as it was."""
    target = Path(os.path.realpath(target))  # ".", "out/" or a link name the real directory
    with output_lock(target):
        sweep_stale(target.parent, target.name)
        check_replaceable(target, force, recognise)
        mount_point = target.is_dir() and os.path.ismount(target)
        if mount_point:
            sweep_stale(target, target.name, kinds="tmp")  # an inner .old-PID holds user data: kept
        stage_in = target if mount_point else target.parent
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=stage_in))
        except OSError as exc:
            raise InputError(f"cannot write into {stage_in}: {exc.strerror}") from None
        try:
            yield tmp
            _make_modes_consistent(tmp)
            if mount_point:
                _swap_contents(tmp, target)
            else:
                _swap_in(tmp, target, force, recognise)
        except BaseException as exc:
            _remove(tmp)
            _raise_storage_error(exc, target, _CANNOT_REPLACE)
            raise


@contextmanager
def atomic_file(target: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path (same directory and suffix) renamed onto `target` on success."""
    target = Path(os.path.realpath(target))
    check_writable_parent(target)
    sweep_stale(target.parent, target.name)
    fd, name = tempfile.mkstemp(
        prefix=f".{target.name}.tmp-{os.getpid()}-", suffix=target.suffix, dir=target.parent
    )
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, default_mode(0o666))  # mkstemp makes 0600
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        _raise_storage_error(exc, target)
        raise
