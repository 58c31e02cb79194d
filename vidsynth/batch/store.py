"""What a batch job keeps in its --out directory: job.json, the parameters every video of the
job is made with, and index.jsonl, one line per finished video.

A rerun into the same directory resumes the job only when it asks for the same videos; its
parameters are compared with job.json first. Every index line is checked against the job
(the file name its id gives, its seed, its frame count) before anything is trusted, so a
line that names another path, another id or another job's video is refused, not followed.
Torch-free."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vidsynth.errors import InputError
from vidsynth.files import read_small_file

JOB_NAME = "job.json"
INDEX_NAME = "index.jsonl"
BATCH_FORMATS = ("mp4", "npy")
STAGING_PREFIX = ".vidsynth-batch-"  # not generate's: each command sweeps only its own
JOB_MARK = "vidsynth_batch"  # the key that marks job.json as written by vidsynth batch
MAX_JOB_BYTES = 64 << 10
# Compared on resume, in this order: what decides the bytes of each video. Not the count (a
# rerun with a larger --count extends the dataset) nor how the work is spread.
JOB_KEYS = ("model", "backend", "device", "seed", "frames", "fps", "format", "category")
_FILE = re.compile(r"^video_(\d{6,})\.(" + "|".join(BATCH_FORMATS) + r")$")


def file_name(index: int, fmt: str) -> str:
    return f"video_{index:06d}.{fmt}"


def _refuse(path: Path, why: str) -> InputError:
    return InputError(
        f"{path}: {why}; it was not written by vidsynth batch for this job: "
        "fix or remove it, choose another --out, or pass --force to start the job over"
    )


def read_job(out: Path) -> dict[str, Any] | None:
    """The parameters stored in out/job.json, or None if the directory holds no job."""
    path = out / JOB_NAME
    if not os.path.lexists(path):
        return None
    try:
        record = json.loads(read_small_file(path, MAX_JOB_BYTES, InputError, "a batch job.json"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise _refuse(path, f"not valid JSON ({exc})") from None
    if not isinstance(record, dict) or record.get(JOB_MARK) != 1 or set(JOB_KEYS) - set(record):
        raise _refuse(path, "not a batch job description")
    return record


def write_job(out: Path, parameters: dict[str, Any]) -> None:
    _write_atomically(out, JOB_NAME, json.dumps({JOB_MARK: 1, **parameters}, indent=2) + "\n")


def job_differences(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """'--seed 0 (this run: 5)' for every parameter that differs."""
    differ = []
    if not _same_model(stored.get("model"), wanted["model"]):
        differ.append(
            f"the model {_describe_model(stored['model'])} (this run: {_describe_model(wanted['model'])})"
        )
    for key in JOB_KEYS[1:]:
        if stored.get(key) != wanted[key]:
            differ.append(f"--{key} {_show(stored.get(key))} (this run: {_show(wanted[key])})")
    return differ


def _same_model(stored: Any, wanted: dict[str, Any]) -> bool:
    """Same content, wherever it lies now; a model without a digest (demo) by name."""
    if not isinstance(stored, dict):
        return False
    if stored.get("sha256") or wanted["sha256"]:
        return stored.get("sha256") == wanted["sha256"]
    return stored.get("name") == wanted["name"]


def _describe_model(model: Any) -> str:
    if not isinstance(model, dict):
        return repr(model)
    digest = model.get("sha256")
    return f"{model.get('name')!s}" + (f" (sha256 {str(digest)[:12]}...)" if digest else "")


def _show(value: Any) -> str:
    return "none" if value is None else value if isinstance(value, str) else json.dumps(value)


def _check_record(record: Any, wanted: dict[str, Any] | None) -> str | None:
    """Why `record` is not a line this job wrote, or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    index = record.get("id")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        return f"id must be a non-negative integer, got {index!r}"
    name = record.get("file")
    if not isinstance(name, str):
        return f"file must be a file name, got {name!r}"
    if wanted is None:  # --force: any batch output name that matches its id
        match = _FILE.match(name)
        if match is None or int(match.group(1)) != index:
            return f"file {name!r} is not video {index}'s"
        return None
    if name != file_name(index, wanted["format"]):
        return f"file {name!r} is not {file_name(index, wanted['format'])!r}, the file of video {index}"
    for key, expected in (("seed", wanted["seed"] + index), ("frames", wanted["frames"])):
        if record.get(key) != expected or isinstance(record.get(key), bool):
            return f"{key} {record.get(key)!r} is not {expected} (video {index} of this job)"
    category = record.get("category")
    if category is not None and (isinstance(category, bool) or not isinstance(category, int)):
        return f"category must be an integer or null, got {category!r}"
    if wanted["category"] is not None and category != wanted["category"]:
        return f"category {category!r} is not {wanted['category']} (this job's --category)"
    return None


def _no_constants(value: str) -> float:
    raise ValueError(f"{value} is not a number JSON allows")


def _index_lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, whether it ended with a newline), streamed from a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _refuse(path, "not a regular file")
        with os.fdopen(fd, "r", encoding="utf-8", errors="replace", closefd=False) as handle:
            for number, line in enumerate(handle, start=1):
                yield number, line.rstrip("\n"), line.endswith("\n")
    finally:
        os.close(fd)


def read_index(out: Path, wanted: dict[str, Any] | None) -> tuple[dict[int, dict], bool]:
    """The finished videos, {id: record}, of the lines whose file is in place, and whether the
    last line was cut off (a crash while it was written: it is ignored). Every other line must
    be one this job wrote (`wanted`: its parameters) or the whole index is refused; with
    wanted None (--force), lines that are not are skipped."""
    path = out / INDEX_NAME
    done: dict[int, dict] = {}
    if not os.path.lexists(path):
        return done, False
    if os.path.islink(path):
        raise _refuse(path, "a symbolic link")
    cut = False
    for number, text, complete in _index_lines(path):
        if not text.strip():
            continue
        try:
            record = json.loads(text, parse_constant=_no_constants)
            why = _check_record(record, wanted)
        except (ValueError, RecursionError) as exc:
            if not complete:
                cut = True
                break
            why = f"not valid JSON ({exc})"
        if why is not None:
            if wanted is None:
                continue
            raise _refuse(path, f"line {number}: {why}")
        target = out / record["file"]
        if target.is_file() and not target.is_symlink():
            done[record["id"]] = record
    return done, cut


def check_targets(out: Path) -> None:
    """Entries named like a batch output that a finished video could not replace."""
    blocked = sorted(
        e.name for e in os.scandir(out) if _FILE.match(e.name) and e.is_dir(follow_symlinks=False)
    )
    if blocked:
        raise InputError(
            f"{out} holds directories named like the job's videos ({', '.join(blocked[:3])}); "
            "nothing was made: move them or choose another --out"
        )


def write_index(out: Path, done: dict[int, dict]) -> None:
    """The index in id order, written to a temporary file and renamed over the old one."""
    _write_atomically(
        out, INDEX_NAME, "".join(json.dumps(done[i], sort_keys=True) + "\n" for i in sorted(done))
    )


def _write_atomically(out: Path, name: str, text: str) -> None:
    from vidsynth.atomic import default_mode

    handle, temporary = tempfile.mkstemp(prefix=f".{name}.tmp-", dir=out)
    try:
        os.fchmod(handle, default_mode(0o666))  # mkstemp makes 0600
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.replace(temporary, out / name)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def sweep_staging(out: Path) -> None:
    """Staging directories of batch runs that were killed (call with the output lock held)."""
    for entry in out.iterdir():
        if entry.name.startswith(STAGING_PREFIX) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.startswith((f".{JOB_NAME}.tmp-", f".{INDEX_NAME}.tmp-")) and entry.is_file():
            entry.unlink(missing_ok=True)


def remove_job(out: Path) -> int:
    """--force: removes what an earlier batch job wrote into `out` (the videos its index
    lists, the index, job.json) and nothing else; returns how many videos went."""
    try:
        read_job(out)
    except InputError:
        raise InputError(
            f"{out / JOB_NAME} was not written by vidsynth batch, and --force removes only what vidsynth "
            "wrote: move it or choose another --out"
        ) from None
    done, _ = read_index(out, None)
    for record in done.values():
        (out / record["file"]).unlink(missing_ok=True)
    for name in (INDEX_NAME, JOB_NAME):
        path = out / name
        if path.is_file() and not path.is_symlink():
            path.unlink()
    return len(done)
