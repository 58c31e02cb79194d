"""Ray for serving and batch jobs: its optional packages, imported on first use with an error
naming the extra, and the Ray instance a command starts or joins."""

from __future__ import annotations

import importlib
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType

from vidsynth.errors import MissingDependencyError, VidsynthError
from vidsynth.signals import Terminated
from vidsynth.sweeper import running_processes

SERVE_HINT = "pip install 'ray[serve]>=2.60' 'fastapi>=0.110'"
BATCH_HINT = "pip install 'ray[data]>=2.60'"

# Set in every Ray process we start: usage statistics stay off.
WORKER_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}
# Defaults, unless set otherwise: Ray's native logging at fatal (it logs an error for every Ray
# Data actor pool), Ray Data's at ERROR, and Ray's native failure handler off: it catches
# SIGTERM during ray.init, prints a stack and kills the process before the command can remove
# what it started.
QUIET_ENV = {
    "RAY_BACKEND_LOG_LEVEL": "fatal",
    "RAY_DATA_LOG_LEVEL": "ERROR",
    "RAY_DISABLE_FAILURE_SIGNAL_HANDLER": "1",
}


def node_cpus() -> list[float]:
    """The CPUs of each live node of the Ray instance this process is connected to."""
    return [node["Resources"].get("CPU", 0.0) for node in import_ray().nodes() if node.get("Alive")]


def fitting(nodes: Sequence[float], cpus_each: float) -> int:
    """How many actors of `cpus_each` CPUs nodes of these CPUs hold: an actor runs on one node."""
    return sum(math.floor(n / cpus_each + 1e-9) for n in nodes)


def _import(name: str, hint: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingDependencyError(f"{name.split('.')[0]} is not installed: {hint}") from None


def import_ray() -> ModuleType:
    for key, value in {**WORKER_ENV, **QUIET_ENV}.items():
        os.environ.setdefault(key, value)
    return _import("ray", SERVE_HINT)


def import_serve() -> ModuleType:
    import_ray()
    _import("fastapi", SERVE_HINT)
    return _import("ray.serve", SERVE_HINT)


def quiet_ray_logging() -> None:
    """Ray's own Python logging (start-up notes, deprecations) stays in its log files
    (/tmp/ray/session_latest/logs); only its errors reach the terminal."""
    for name in ("ray", "ray.serve", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


def import_ray_data() -> ModuleType:
    import_ray()
    return _import("ray.data", BATCH_HINT)


@contextmanager
def _start_up_output() -> Iterator[None]:
    """Holds back what Ray's native code writes to stderr while it starts (its node address
    lookup, its log level), and shows it only if the start fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


# One per local Ray instance, for as long as this process lives: its stdin closes when this
# process ends, however it ends (see vidsynth/sweeper.py).
_sweepers: list[subprocess.Popen] = []


def _children() -> set[int]:
    return {pid for pid, (parent, _) in running_processes().items() if parent == os.getpid()}


def start_ray(address: str | None, num_cpus: float | None = None) -> None:
    """A local Ray instance (address None) or the cluster at `address`; every worker gets
    WORKER_ENV."""
    ray = import_ray()
    kwargs = {"runtime_env": {"env_vars": dict(WORKER_ENV)}, "log_to_driver": False, "address": address}
    if address is None:  # "local": a new instance, even where another is running on this machine
        kwargs.update(address="local", include_dashboard=False, num_cpus=num_cpus)
    quiet_ray_logging()
    # Ray's processes start with SIGINT ignored, so a Ctrl-C at the terminal (sent to the whole
    # process group) reaches only this process, which takes them down in order.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    previous_term = signal.getsignal(signal.SIGTERM) if main else None
    before = _children() if address is None and sys.platform == "linux" else None
    try:
        with _start_up_output():
            ray.init(**kwargs, logging_level=logging.ERROR)
    except ConnectionError as exc:
        raise VidsynthError(f"cannot join the Ray cluster at {address}: {exc}") from None
    except SystemExit as exc:
        # ray.init installs a SIGTERM handler that exits with status 15; a SIGTERM during
        # start-up is ours to handle like any other (cleanup, then 143).
        if exc.code == signal.SIGTERM:
            raise Terminated() from None
        raise
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
            if previous_term is not None:
                signal.signal(signal.SIGTERM, previous_term)
    if before is not None and (started := _children() - before):
        sweeper = subprocess.Popen(
            [sys.executable, "-m", "vidsynth.sweeper", *map(str, sorted(started))],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C at the terminal is the command's to handle
        )
        _sweepers.append(sweeper)
    quiet_ray_logging()
