"""The installed `vidsynth` command, run in a subprocess as a user runs it: the CLI's own
defaults, no settings that only tests use. PYTHONPATH is passed on, so a checkout's code is the one run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# A sitecustomize.py for a CPU without native bf16: this machine's facts less those flags.
NO_NATIVE_BF16 = """
from dataclasses import replace

import vidsynth.runtime.hardware as hardware

_found = hardware.probe_hardware()
_flags = frozenset(flag for flag in _found.cpu_flags if flag not in hardware.NATIVE_BF16_FLAGS)
hardware.probe_hardware = lambda: replace(_found, cpu_flags=_flags)
"""


def entry_point() -> list[str]:
    script = Path(sys.executable).with_name("vidsynth")
    return [str(script)] if script.exists() else [sys.executable, "-m", "vidsynth"]


def run_vidsynth(
    *args: str,
    site: str | None = None,
    scratch: Path | None = None,
    timeout: float = 300,
    **popen: object,
) -> subprocess.CompletedProcess:
    """`vidsynth ARGS`; `site`: the text of a sitecustomize.py (written under `scratch`) that
    the command imports first, to stand in for what this machine lacks or has."""
    env = dict(os.environ, **popen.pop("env", {}))  # type: ignore[arg-type]
    if site is not None:
        assert scratch is not None, "a sitecustomize needs a scratch directory"
        folder = scratch / "sitecustomize"
        folder.mkdir(exist_ok=True)
        (folder / "sitecustomize.py").write_text(site)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), env.get("PYTHONPATH")]))
    return subprocess.run(
        [*entry_point(), *args], env=env, capture_output=True, text=True, timeout=timeout, **popen
    )
