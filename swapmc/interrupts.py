"""Ctrl-C that did not arrive as an exception.

A SIGINT that lands while Numba compiles a kernel for the first time can be swallowed by
the compiler (or surface as an unrelated error), so the run would go on as if nothing had
been pressed. The command layer (:func:`swapmc.cli.run_command`) installs a SIGINT handler
that calls :func:`note` before raising KeyboardInterrupt; long loops call
:func:`raise_if_received` between compiled calls, so the interrupt takes effect at the next
block boundary at the latest.
"""

from __future__ import annotations

_received = False


def note() -> None:
    """Record that Ctrl-C arrived."""
    global _received
    _received = True


def clear() -> None:
    """Forget earlier interrupts (a new command starts)."""
    global _received
    _received = False


def received() -> bool:
    """True once Ctrl-C arrived since the last :func:`clear`."""
    return _received


def raise_if_received() -> None:
    """Raise KeyboardInterrupt when Ctrl-C arrived but did not stop the program.

    Raises
    ------
    KeyboardInterrupt
    """
    if _received:
        raise KeyboardInterrupt
