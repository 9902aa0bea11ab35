"""SIGTERM and SIGHUP handled like Ctrl-C: each raises :class:`Interrupted` (a ``KeyboardInterrupt``)
in the main thread, so every clean-up that runs on Ctrl-C (staged outputs removed, a training run
checkpointed) runs on ``kill`` too. Signals the process was started to ignore (``nohup``, a
background job's SIGINT) stay ignored. Within :func:`deferred` a signal is only noted, so a short
final step (moving finished outputs into place) is never cut in half: the run then ends as done.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

HANDLED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
_state = {"deferring": 0}


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; ``signum`` says which."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by this signal: 128 + its number."""
        return 128 + self.signum


def _raise(signum, _frame) -> None:
    if not _state["deferring"]:
        raise Interrupted(signum)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for signum in HANDLED:
        current = signal.getsignal(signum)
        if current is not signal.SIG_IGN:
            previous[signum] = current
            signal.signal(signum, _raise)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP are ignored (the block is short and finishes)."""
    _state["deferring"] += 1
    try:
        yield
    finally:
        _state["deferring"] -= 1
