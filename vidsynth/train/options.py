"""`vidsynth train`'s options, derived from TrainConfig's field declarations, plus the
options of one invocation (where the run lives, how long this call may take, ...), and the
command line as a run's weights record it.

Weights travel (the default weights ship in the package), so their provenance keeps the data
folder's and run directory's names and drops the directories above them.

Torch-free: the CLI imports it to build its commands.
"""

from __future__ import annotations

import shlex
from dataclasses import Field, fields
from pathlib import PurePath
from typing import Any

import click
from click.core import ParameterSource

from vidsynth.model.config import field_kinds
from vidsynth.train.config import TrainConfig

DRY_RUN_STEPS = 3  # --steps when --dry-run is given without it
_ARGV = "vidsynth.train.argv"
RUN_DIR_FLAG = "--out"

# Options of one invocation, not settings of the run (a resumed run keeps its settings).
RUN_OPTIONS = (
    click.Option(
        [RUN_DIR_FLAG, "run_dir"],
        required=True,
        type=click.Path(file_okay=False),
        help="Run directory: checkpoint/, weights/, samples/, losses.jsonl.",
    ),
    click.Option(["--max-minutes"], type=float, help="Checkpoint and stop after this much wall time."),
    click.Option(
        ["--resume"],
        is_flag=True,
        help="Continue the run in --out from its checkpoint (its stored settings).",
    ),
    click.Option(["--quiet"], is_flag=True, help="No progress bar."),
)


class TrainCommand(click.Command):
    """`vidsynth train`: its parameters are TrainConfig's options and RUN_OPTIONS, and it keeps
    its arguments as given (see `command_line`) for the run's provenance."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = [_option(f) for f in fields(TrainConfig) if f.metadata["help"] is not None]
        self.params = [*settings, *RUN_OPTIONS, *self.params]

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_ARGV] = list(args)
        return super().parse_args(ctx, args)


def option_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def command_line(ctx: click.Context) -> str:
    """The invocation exactly as typed (shell-quoted), e.g. `vidsynth train --dry-run --out r`."""
    return shlex.join(["vidsynth", ctx.info_name or "train", *ctx.meta[_ARGV]])


def _option(f: Field) -> click.Option:
    decls, help_text = [option_flag(f.name), f.name], f.metadata["help"]
    kind = field_kinds(TrainConfig)[f.name][0]
    if kind is bool:  # a flag turns the setting on (bool settings default to False)
        return click.Option(decls, is_flag=True, help=help_text)
    if f.name == "steps":
        help_text += f" [default: {f.default}; {DRY_RUN_STEPS} with --dry-run]"
        return click.Option(decls, type=int, help=help_text)
    kind = click.Path(file_okay=False) if f.metadata["directory"] else kind
    return click.Option(
        decls, type=kind, default=f.default, show_default=f.default is not None, help=help_text
    )


def typed_settings(ctx: click.Context, values: dict[str, Any]) -> dict[str, Any]:
    """The TrainConfig settings the user typed on the command line (not click's defaults): what
    changes a resumed run's stored settings."""
    return {
        f.name: values[f.name]
        for f in fields(TrainConfig)
        if f.name in values and ctx.get_parameter_source(f.name) is ParameterSource.COMMANDLINE
    }


def config_from_options(values: dict[str, Any]) -> TrainConfig:
    """A new run's TrainConfig from the values click parsed for its options."""
    settings = {f.name: values[f.name] for f in fields(TrainConfig) if f.name in values}
    if settings.get("steps") is None:
        settings["steps"] = DRY_RUN_STEPS if settings.get("dry_run") else TrainConfig.steps
    return TrainConfig(**settings)


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
    flags = {RUN_DIR_FLAG} | {option_flag(f.name) for f in fields(TrainConfig) if f.metadata["directory"]}
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
    directories = {f.name for f in fields(TrainConfig) if f.metadata["directory"]}
    return {k: path_name(v) if k in directories and isinstance(v, str) else v for k, v in config.items()}
