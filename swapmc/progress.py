"""A dependency-free progress line for long runs (shown on MPI rank 0 only)."""

from __future__ import annotations

import sys
import time


class Progress:
    """Progress of a run in sweeps, redrawn in place on a terminal and printed as plain
    lines (at most every ``min_interval`` seconds) when output goes to a file.

    Parameters
    ----------
    total : int
        Total number of sweeps of the run.
    enabled : bool
        False on ranks other than 0, or when the user turns it off.
    stream : file, optional
        Where to draw (standard error by default, so it never mixes with results).
    """

    def __init__(self, total: int, enabled: bool = True, stream=None, min_interval=None):
        self.total = max(int(total), 1)
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.min_interval = min_interval if min_interval is not None else (
            0.2 if self.tty else 30.0)
        self.start = time.perf_counter()
        self.last = -1e300

    def update(self, done: int, text: str = "", force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self.last < self.min_interval:
            return
        self.last = now
        frac = min(max(done / self.total, 0.0), 1.0)
        elapsed = now - self.start
        eta = elapsed * (1 - frac) / frac if frac > 0 else float("nan")
        width = 24
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        line = f"[{bar}] {done}/{self.total} sweeps {100 * frac:5.1f}%  {text}  eta {eta:6.0f} s"
        if self.tty:
            self.stream.write("\r" + line[:150].ljust(150))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
