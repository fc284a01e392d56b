"""Progress of long jobs on standard error, on MPI rank 0 only (drawn by tqdm).

On a terminal the line is a tqdm bar redrawn in place, as wide as the terminal (it follows
resizes). Anywhere else (a Slurm log, a pipe) it is a plain line of at most 80 columns,
written when the job starts, then at most every ``min_interval`` seconds (30 s by default)
and at the end, so a log file gets a readable history instead of carriage returns.

The rate and the remaining time are measured from the first update that reports progress:
the first block of a job is where Numba compiles (tens of seconds on a first run), and
counting it would make the estimate of a short job wildly pessimistic. The elapsed time shown
is the whole wall time since the bar was made.
"""

from __future__ import annotations

import os
import sys
import time

# Launchers' rank variables (MPICH/Hydra, PMIx, Open MPI, MVAPICH, Slurm's srun), read
# when no rank is given, so that even a caller that forgot to pass the rank never draws one
# bar per process into the same log.
_RANK_VARIABLES = ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK",
                   "SLURM_PROCID")

# Width of plain (non-terminal) lines: what an 80-column terminal shows of a log file
# without wrapping.
LOG_COLUMNS = 80

# The bar keeps at least this many cells on a terminal; the stage text gives way first.
_MIN_BAR = 8

# The unit is named once, in the rate, to leave room for the stage text.
_FORMAT = "{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {speed}]"
_FORMAT_PLAIN = "{percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {speed}]"
_FORMAT_COUNTER = "{n_fmt} {unit} [{elapsed}, {speed}]"


def launcher_rank() -> int:
    """This process's rank as told by the MPI launcher's environment (0 without one)."""
    for name in _RANK_VARIABLES:
        value = os.environ.get(name, "")
        if value.strip().isdigit():
            return int(value)
    return 0


def _speed(rate: float | None, unit: str) -> str:
    """A rate for people: "185 sweeps/s", "0.52 sweeps/s", or "3.1 s/sweep" below 1/(3 s)."""
    if not rate:
        return f"? {unit}/s"
    if rate >= 100:
        return f"{rate:.0f} {unit}/s"
    if rate >= 1 / 3:
        return f"{rate:.3g} {unit}/s"
    singular = unit[:-1] if unit.endswith("s") else unit
    return f"{1 / rate:.3g} s/{singular}"


def _clip(text: str, width: int) -> str:
    if width <= 0:
        return ""
    return text if len(text) <= width else text[:max(width - 3, 0)] + "..."


class Progress:
    """Progress of a job in sweeps (or MD steps, FIRE iterations), drawn with tqdm.

    Parameters
    ----------
    total : int or None
        Units of work in the whole job; None when unknown (a counter without percentage or
        remaining time, e.g. FIRE iterations to convergence).
    enabled : bool
        False when the user turns progress off; ranks other than 0 never draw.
    stream : file, optional
        Where to draw; standard error by default, so that it never mixes with results on
        standard output.
    min_interval : float, optional
        Least seconds between two lines: 0.2 on a terminal, 30 otherwise.
    unit : str
        Name of the unit of work, plural ("sweeps", "MD steps", "FIRE steps").
    rank : int, optional
        MPI rank of this process; by default from the launcher's environment variables.
    columns : int, optional
        Width of the line; default the terminal's width (followed as it changes), or
        :data:`LOG_COLUMNS` when the stream is not a terminal.
    """

    def __init__(self, total: int | None, enabled: bool = True, stream=None,
                 min_interval: float | None = None, *, unit: str = "sweeps",
                 rank: int | None = None, columns: int | None = None):
        self.total = None if total is None else max(int(total), 1)
        self.unit = unit
        rank = launcher_rank() if rank is None else int(rank)
        self.enabled = bool(enabled) and rank == 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.min_interval = (min_interval if min_interval is not None
                             else (0.2 if self.tty else 30.0))
        self.columns = columns
        self.wall0 = time.perf_counter()
        self._t0 = None  # when the first progress was reported (after the JIT compile)
        self._n0 = 0
        self.done = 0
        self.text = ""
        self._last = None  # time of the last line drawn
        self._bar = None
        self.closed = False

    # ------------------------------------------------------------------ measurements
    def rate(self, now: float | None = None) -> float | None:
        """Units of work per second since the first progress was reported (None before
        there is a second measurement)."""
        if self._t0 is None:
            return None
        now = time.perf_counter() if now is None else now
        if now <= self._t0 or self.done <= self._n0:
            return None
        return (self.done - self._n0) / (now - self._t0)

    def _fields(self, now: float) -> dict:
        """Arguments of :meth:`tqdm.tqdm.format_meter` for the current state."""
        rate = self.rate(now)
        total = self.total
        # rate 0, not None, when unknown: tqdm would otherwise fall back to its own average
        # over the elapsed time, compilation included.
        return {"n": self.done, "total": total, "elapsed": now - self.wall0,
                "unit": self.unit, "rate": rate or 0.0, "speed": _speed(rate, self.unit),
                "prefix": ""}

    def format(self, columns: int | None = None, bar: bool = False, now=None) -> str:
        """The progress line (without a newline), at most ``columns`` wide.

        The stage text follows the numbers, so that a narrow line loses the text before
        the remaining time and the rate.
        """
        from tqdm import tqdm

        now = time.perf_counter() if now is None else now
        fields = self._fields(now)
        if self.total is None:
            fmt = _FORMAT_COUNTER
        else:
            fmt = _FORMAT if bar else _FORMAT_PLAIN
        numbers = tqdm.format_meter(**fields, bar_format=fmt.replace("{bar}", ""))
        if not self.text:
            line_fmt = fmt
        else:
            room = (columns - len(numbers) - 2 - (_MIN_BAR if bar and self.total else 0)
                    if columns else len(self.text))
            text = _clip(self.text, room)
            # Braces in the stage text must not be read as format fields.
            line_fmt = fmt + ("  " + text.replace("{", "{{").replace("}", "}}") if text else "")
        return tqdm.format_meter(**fields, bar_format=line_fmt, ncols=columns)

    # ------------------------------------------------------------------ drawing
    def update(self, done: int, text: str = "", force: bool = False) -> None:
        """Record that ``done`` units of the total are finished; draw if it is time.

        Parameters
        ----------
        done : int
            Units finished so far (absolute, not an increment).
        text : str
            What the job is doing now (phase, temperature, ...).
        force : bool
            Draw now, however recent the last line is (e.g. at the end).
        """
        if not self.enabled or self.closed:
            return
        now = time.perf_counter()
        done = int(done)
        if self._t0 is None and done > self._n0:
            # First progress: the compiled code has run once. The rate counts from here.
            self._t0, self._n0 = now, done
        self.done, self.text = done, text
        if not force and self._last is not None and now - self._last < self.min_interval:
            return
        self._last = now
        if self.tty:
            self._draw_bar()
        else:
            self.stream.write(self.format(self.columns or LOG_COLUMNS, bar=False, now=now)
                              + "\n")
            self.stream.flush()

    def set_total(self, total: int | None) -> None:
        """Change the total (when a job learns its size only after it has started)."""
        self.total = None if total is None else max(int(total), 1)
        if self._bar is not None:
            self._bar.total = self.total

    def _draw_bar(self) -> None:
        if self._bar is None:
            self._bar = _make_bar(self)
        self._bar.n = self.done
        self._bar.refresh()

    def write(self, line: str, file=None) -> None:
        """Print a line (e.g. a result row on standard output) without tearing the bar: on a
        terminal the bar is cleared, the line printed and the bar drawn again below it."""
        out = sys.stdout if file is None else file
        if self._bar is not None and not self.closed:
            self._bar.clear()
            out.write(line + "\n")
            out.flush()
            self._bar.refresh()
        else:
            out.write(line + "\n")
            out.flush()

    def close(self) -> None:
        """End the line (a terminal bar keeps its last state on its own line)."""
        if self.closed:
            return
        self.closed = True
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _make_bar(progress: Progress):
    """A tqdm bar drawn from ``progress``'s numbers (its own timing is not used: it would
    include the compilation)."""
    from tqdm import tqdm

    class _Bar(tqdm):
        # No monitor thread: the bar is redrawn only when the job reports.
        monitor_interval = 0

        def __str__(self):
            cols = self.ncols if self.ncols else None
            if self.dynamic_ncols:
                cols = self.dynamic_ncols(self.fp)[0] or cols
            return progress.format(progress.columns or cols, bar=True)

    return _Bar(total=progress.total, file=progress.stream, dynamic_ncols=True, leave=True,
                unit=progress.unit, mininterval=0, miniters=0)
