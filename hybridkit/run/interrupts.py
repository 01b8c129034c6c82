"""Ctrl-C and SIGTERM stop a run before its output is committed, even when the first
``KeyboardInterrupt`` was lost.

A signal handler's exception is raised wherever the main thread happens to be. When that is a
finaliser (a ``__del__``, a weakref callback run by the garbage collector), Python prints
"Exception ignored" and carries on: the run would then finish and commit its output although the
user stopped it. So the handler also records the signal, and :func:`raise_if_interrupted` (called
just before the staging folder becomes the output) raises it again.
"""
from __future__ import annotations

import signal
from collections.abc import Callable

#: signals received since :func:`install` (the first one raised KeyboardInterrupt)
_received: list[int] = []


def _handler(signum, frame) -> None:
    first = not _received
    _received.append(signum)
    # the first signal stops the run; a later SIGTERM must not cut its cleanup short, while a
    # later Ctrl-C interrupts as Python's own handler does (a user's way out of a stuck cleanup)
    if first or signum == signal.SIGINT:
        raise KeyboardInterrupt


def install() -> Callable[[], None]:
    """Route SIGTERM, and SIGINT where it is not ignored, through one recording handler.

    Returns a function restoring the previous handlers. Outside the main thread (``main()``
    called from a library's worker thread) nothing is installed: Python allows handlers only
    there, and the caller's own handling applies.
    """
    _received.clear()
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            current = signal.getsignal(sig)
            if current is signal.SIG_IGN:  # started without job control, or the user's choice
                continue
            previous[sig] = signal.signal(sig, _handler)
        except ValueError:  # not the main thread
            break

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if a signal arrived since :func:`install`, even if the one
    its handler raised was swallowed."""
    if _received:
        raise KeyboardInterrupt
