"""Ends what a local Ray instance left when the command that started it was killed (Linux: it
reads /proc). Run beside the command (`python -m vidsynth.sweeper PID...`, the processes
ray.init started, the command holding the other end of stdin): while the command lives it
records every process under those PIDs; when stdin closes, the command has ended, even by
SIGKILL, and what it recorded and is still running is killed. Ray's node agents would
otherwise outlive a killed command by minutes, waiting on its dead GCS. It also ends by itself
once everything it recorded has ended (Ray shut down in order)."""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from contextlib import suppress

POLL_S = 0.5
KILL_FOR_S = 10.0


def running_processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) of every process; the start time tells a reused pid."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z":
                found[int(name)] = (int(fields[1]), fields[19])
    return found


def _record(seen: dict[int, str], roots: list[int]) -> list[int]:
    """Adds the processes under `roots` and under those already seen; returns those running."""
    processes = running_processes()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    running = [pid for pid, start in seen.items() if processes.get(pid, (0, ""))[1] == start]
    todo = [pid for pid in roots if pid in processes and pid not in seen] + running
    for pid in todo:
        seen.setdefault(pid, processes[pid][1])
        todo += [child for child in children.get(pid, []) if child not in seen]
    return todo


def _kill(seen: dict[int, str]) -> None:
    deadline = time.monotonic() + KILL_FOR_S
    while (running := _record(seen, [])) and time.monotonic() < deadline:
        for pid in running:
            with suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def main(roots: list[int]) -> None:
    seen: dict[int, str] = {}
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], POLL_S)
        if ready and not os.read(sys.stdin.fileno(), 4096):
            _kill(seen)
            return
        if not _record(seen, roots):
            return


if __name__ == "__main__":
    main([int(pid) for pid in sys.argv[1:]])
