"""SIGTERM (what timeout, systemd and Kubernetes send) and SIGINT, handled one of three ways:
`sigterm_as_interrupt` makes SIGTERM raise like Ctrl-C, so every `with atomic_...` block and
staging directory cleans up on the way out; `stop_requested` turns both into a request that a
long-running loop (training) honours at its next safe point; `stop_signals_raise` makes both
raise, to stop a wait inside a library (a server's deployment). Python lets only the main
thread set handlers: in any other thread each of them changes nothing."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

EXIT_STATUS = 128 + signal.SIGTERM
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """Raised by SIGTERM; a KeyboardInterrupt, so code that cleans up after Ctrl-C does here too."""


def _raise_stop(signum, frame) -> None:
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


@contextmanager
def _handled(signums: tuple[int, ...], handler: Callable) -> Iterator[None]:
    """`handler` for `signums` within the block, the previous handlers after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def sigterm_as_interrupt() -> AbstractContextManager[None]:
    """Within the block, SIGTERM raises Terminated."""
    return _handled((signal.SIGTERM,), _raise_stop)


class StopRequest(threading.Event):
    """Set by a stop signal; `signum` names the signal (the exit status is 128 + signum)."""

    signum: int | None = None

    def request(self, signum: int, frame: object = None) -> None:
        self.signum = signum
        self.set()


@contextmanager
def stop_requested() -> Iterator[StopRequest]:
    """Within the block, SIGINT and SIGTERM set the returned event instead of interrupting;
    the caller checks it (or waits on it) and stops cleanly. SIGINT is set explicitly because a
    background job of a non-interactive shell starts with it ignored."""
    stop = StopRequest()
    with _handled(STOP_SIGNALS, stop.request):
        yield stop


def stop_signals_raise() -> AbstractContextManager[None]:
    """Within the block, SIGINT raises KeyboardInterrupt and SIGTERM Terminated, whatever was
    installed before (a library's own handlers, or SIGINT ignored, as in a background job of a
    non-interactive shell)."""
    return _handled(STOP_SIGNALS, _raise_stop)
