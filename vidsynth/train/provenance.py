"""What a run's weights record about where they came from: names, never this machine's paths.

Weights travel (the default weights ship in the package), so their provenance keeps the data
folder's and run directory's names and drops the directories above them.
"""

from __future__ import annotations

import shlex
from dataclasses import fields
from pathlib import PurePath
from typing import Any

from vidsynth.train.config import TrainConfig, option_flag

RUN_DIR_FLAG = "--out"


def _path_flags() -> set[str]:
    flags = {RUN_DIR_FLAG}
    for f in fields(TrainConfig):
        if f.metadata.get("directory"):
            flags.add(option_flag(f.name))
    return flags


def path_name(path: str) -> str:
    """The last component of `path` ("actions" for "/data/clips/actions/")."""
    return PurePath(path).name or path


def public_command(command: str) -> str:
    """`command` with each directory option's value cut to its name:
    `vidsynth train --data /a/actions --out=/tmp/run` -> `vidsynth train --data actions --out=run`."""
    try:
        words = shlex.split(command)
    except ValueError:  # not shell-quoted as vidsynth writes it: nothing to cut safely
        return command
    flags = _path_flags()
    public = []
    for i, word in enumerate(words):
        flag, equals, value = word.partition("=")
        if equals and flag in flags:
            word = f"{flag}={path_name(value)}"
        elif i > 0 and words[i - 1] in flags:
            word = path_name(word)
        public.append(word)
    return shlex.join(public)


def public_train_config(config: dict[str, Any]) -> dict[str, Any]:
    """A stored TrainConfig dict with its directory settings cut to their names."""
    public = dict(config)
    for f in fields(TrainConfig):
        if f.metadata.get("directory") and isinstance(public.get(f.name), str):
            public[f.name] = path_name(public[f.name])
    return public
