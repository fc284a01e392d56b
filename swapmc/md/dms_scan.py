"""DMS scans: isochronal temperature scans and isothermal frequency scans as independent,
resumable points farmed over MPI ranks.

A scan is the grid samples x temperatures x periods. Every point (sample, T, period) is
measured on its own: the sample is equilibrated at T (NPT at the pressure first when one is
given, then NVT at the mean volume's cell) and oscillated by
:func:`~swapmc.md.protocols.oscillatory_strain`, with a random stream seeded from the run
seed and the point's own values (sample index, T, period), so a point's result does not
depend on which rank runs it, in which order, or whether the scan was interrupted.

Cycles and transient (:func:`scan_cycles`)
------------------------------------------
With ``P_max`` the slowest period of the scan and ``n_min`` the least number of analysed
cycles (``--cycles`` minus the discarded one: 6 by default), a point of period P analyses ::

    n_analysed(P) = min(max_analysed, max(n_min, ceil(n_min * P_max / P)))

cycles, i.e. every point gets about the MD time of the slowest one (``n_min P_max``): fast
periods are measured over more cycles at no more cost than the slowest point, which keeps
the error bars comparable along a spectrum; ``max_analysed`` (default 100) caps the cycle
count of very fast periods, whose per-cycle error is already small. Before them ::

    n_discard(P) = max(1, ceil(P_max / (2 pi P)))

cycles are simulated and dropped as the start-up transient: at least one cycle (as
:func:`~swapmc.md.protocols.oscillatory_strain` does), and at least the time 1/omega_min
for fast periods, since a relaxation slow enough to be seen at the slowest frequency of the
scan takes about that long to reach its periodic state after the strain is switched on.

Files and resume
----------------
Each point is one JSON file ``points/T=<T>_period=<P>_sample=<i>.json`` written atomically
(:func:`~swapmc.io.atomic_write`), carrying the settings that define it; a rerun skips the
points whose file exists (and refuses a file made with other settings), so a kill loses at
most the points in flight. A worker claims a point by an exclusive non-blocking ``flock`` on
``points/<name>.claim`` before running it and checks again that no result exists; the kernel
releases the lock when the holder exits for any reason, so the claim of a killed process
never blocks a rerun. Under ``mpiexec`` every rank walks the same ordered list and takes the
next point that is neither finished nor claimed (dynamic farming without messages); after a
barrier, rank 0 reads all point files and combines them (:func:`collect`).
"""

from __future__ import annotations

import errno
import json
import math
import os
import struct
from dataclasses import dataclass, field

import numpy as np

from ..analysis.mechanics import DMSResult
from ..analysis.spectroscopy import fit_peak_arrhenius, locate_peak, spectrum_peak
from ..io import atomic_write
from .protocols import (
    DEFAULT_CYCLES,
    STRESS_UNIT,
    TIME_UNIT,
    DMSRow,
    dms_row_values,
    oscillatory_strain,
)

try:  # POSIX only; elsewhere points are not claimed (one process per directory)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["MAX_ANALYSED_CYCLES", "ScanPoint", "collect", "period_grid", "run_points",
           "scan_cycles", "scan_peaks", "scan_points", "temperature_grid"]

#: Default cap of analysed cycles per point (see the module docstring).
MAX_ANALYSED_CYCLES = 100
POINTS_DIR = "points"
# Version of the point-file layout; a file of another version is refused, not misread.
_FORMAT = 1


# ----------------------------------------------------------------------------- grids
def _finite(value, option: str) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{option} must be a finite number, got {value}")
    return v


def temperature_grid(temperatures=None, t_range=None, t_step=None) -> list[float]:
    """Temperatures of a scan: a list, or ``t_range = (TMIN, TMAX)`` in steps of ``t_step``
    (TMAX included when it lies on the grid within 1e-9 of a step).

    Raises
    ------
    ValueError
        Non-finite or non-positive values, TMIN > TMAX, a range without a step, duplicates.
    """
    if temperatures is not None:
        temps = [_finite(t, "--temperatures") for t in temperatures]
    else:
        if t_range is None:
            raise ValueError("give -T/--temperatures or --t-range")
        lo, hi = (_finite(t, "--t-range") for t in t_range)
        if t_step is None:
            raise ValueError("--t-range needs --t-step")
        step = _finite(t_step, "--t-step")
        if step <= 0:
            raise ValueError(f"--t-step must be > 0, got {step:g}")
        if lo > hi:
            raise ValueError(f"--t-range needs TMIN <= TMAX, got {lo:g} {hi:g}")
        n = int(math.floor((hi - lo) / step + 1e-9))
        # Rounded to 12 significant digits: lo + k * step carries binary noise (0.3 + 3 * 0.1
        # = 0.6000000000000001) that would otherwise appear in the point file names.
        temps = [float(f"{lo + k * step:.12g}") for k in range(n + 1)]
    for t in temps:
        if t <= 0:
            raise ValueError(f"temperatures must be > 0, got {t:g}")
    if len(set(temps)) != len(temps):
        raise ValueError("the temperatures of a scan must differ")
    return temps


def period_grid(periods=None, omegas=None, period_range=None, per_decade=None) -> list[float]:
    """Periods of a scan: a list of periods or angular frequencies, or ``period_range =
    (PMIN, PMAX)`` with ``per_decade`` points per decade, log-spaced, both ends included.

    Raises
    ------
    ValueError
        Non-finite or non-positive values, PMIN > PMAX, a range without ``per_decade``,
        duplicates.
    """
    if periods is not None:
        out = [_finite(p, "--periods") for p in periods]
        bad = [p for p in out if p <= 0]
        if bad:
            raise ValueError(f"--periods must be > 0, got {bad[0]:g}")
    elif omegas is not None:
        ws = [_finite(w, "--omegas") for w in omegas]
        bad = [w for w in ws if w <= 0]
        if bad:
            raise ValueError(f"--omegas must be > 0, got {bad[0]:g}")
        out = [2.0 * math.pi / w for w in ws]
    elif period_range is not None:
        lo, hi = (_finite(p, "--period-range") for p in period_range)
        if lo <= 0 or hi <= 0:
            raise ValueError(f"--period-range must be > 0, got {lo:g} {hi:g}")
        if lo > hi:
            raise ValueError(f"--period-range needs PMIN <= PMAX, got {lo:g} {hi:g}")
        if per_decade is None or int(per_decade) < 1:
            raise ValueError(f"--per-decade must be an integer >= 1, got {per_decade}")
        n = max(1, int(round(math.log10(hi / lo) * int(per_decade))))
        out = [lo] if hi == lo else [float(v) for v in np.geomspace(lo, hi, n + 1)]
    else:
        raise ValueError("give --periods, --omegas or --period-range")
    if len(set(out)) != len(out):
        raise ValueError("the periods of a scan must differ")
    return out


def scan_cycles(period: float, slowest: float, *, min_cycles: int = DEFAULT_CYCLES,
                max_analysed: int = MAX_ANALYSED_CYCLES) -> tuple[int, int]:
    """(cycles simulated, cycles discarded) of a point (rule in the module docstring).

    Parameters
    ----------
    period, slowest : float
        The point's period and the slowest period of the scan.
    min_cycles : int
        Least cycles simulated, the discarded one included (``--cycles``), >= 3.
    max_analysed : int
        Cap on the analysed cycles, >= ``min_cycles - 1``.
    """
    if min_cycles < 3:
        raise ValueError(f"--cycles must be >= 3 (one discarded, two analysed), got "
                         f"{min_cycles}")
    n_min = int(min_cycles) - 1
    if max_analysed < n_min:
        raise ValueError(f"--max-cycles must be >= --cycles - 1 = {n_min}, got {max_analysed}")
    ratio = slowest / period
    # The 1e-9 keeps ratios that are whole numbers up to rounding from gaining a cycle.
    analysed = min(int(max_analysed), max(n_min, math.ceil(n_min * ratio - 1e-9)))
    discard = max(1, math.ceil(ratio / (2.0 * math.pi) - 1e-9))
    return analysed + discard, discard


# ----------------------------------------------------------------------------- points
@dataclass(frozen=True)
class ScanPoint:
    """One (sample, T, period) of a scan with its cycle counts."""

    sample: int
    temperature: float
    period: float
    n_cycles: int
    discard_cycles: int

    @property
    def name(self) -> str:
        """File stem; repr keeps every digit of the floats."""
        return f"T={self.temperature!r}_period={self.period!r}_sample={self.sample}"

    @property
    def omega(self) -> float:
        return 2.0 * math.pi / self.period


def scan_points(n_samples: int, temperatures, periods, *, min_cycles=DEFAULT_CYCLES,
                max_analysed=MAX_ANALYSED_CYCLES) -> list[ScanPoint]:
    """Every point of a scan, ordered slowest period first (so long points start early and
    the last points to finish are short ones), then temperature, then sample."""
    slowest = max(periods)
    cycles = {p: scan_cycles(p, slowest, min_cycles=min_cycles, max_analysed=max_analysed)
              for p in periods}
    return [ScanPoint(i, float(t), float(p), *cycles[p])
            for p in sorted(periods, reverse=True) for t in temperatures
            for i in range(n_samples)]


def point_seed(seed: int, point: ScanPoint) -> np.random.SeedSequence:
    """The point's random stream from the run seed and its values (not its position in
    the grid, so adding points to a scan leaves the others unchanged)."""
    words = [int(seed), int(point.sample)]
    for v in (point.temperature, point.period):
        lo, hi = struct.unpack("<II", struct.pack("<d", v))
        words += [lo, hi]
    return np.random.SeedSequence(words)


def _claim(path: str):
    """An fd holding an exclusive flock on ``path``, or None when a live process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is None:
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def _read_point(path: str, settings: dict) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: unreadable point file ({err}); delete it to redo the "
                         "point") from None
    if data.get("format") != _FORMAT or data.get("settings") != settings:
        raise ValueError(f"{path}: made with other scan settings; use another output "
                         "directory or delete the points directory")
    return data


def _settings_json(settings: dict) -> dict:
    # As it will read back from the file (tuples become lists, floats stay exact).
    return json.loads(json.dumps(settings))


def run_points(points, systems, ff, *, directory: str, settings: dict, seed: int,
               oscillation: dict, on_done=None, step_progress=None) -> int:
    """Measure the points not yet in ``directory/points`` (this rank's share: claimed one
    at a time, see the module docstring).

    Parameters
    ----------
    points : sequence of ScanPoint
    systems : sequence of System
        The samples (``point.sample`` indexes them).
    ff : ForceField or Engine
    directory : str
        Output directory.
    settings : dict
        JSON-ready settings that define a point's result besides its own values (model,
        mode, amplitude, time step, ...); stored in each file and compared on resume.
    seed : int
    oscillation : dict
        Keyword arguments of :func:`~swapmc.md.protocols.oscillatory_strain` other than
        the point's (temperature, period, cycles, rng).
    on_done : callable, optional
        ``on_done(point, record)`` after each point this process measured.
    step_progress : callable, optional
        ``step_progress(done, total, stage)`` within the current point.

    Returns
    -------
    int
        Points measured by this process.
    """
    settings = _settings_json(settings)
    folder = os.path.join(directory, POINTS_DIR)
    os.makedirs(folder, exist_ok=True)
    done = 0
    for point in points:
        path = os.path.join(folder, point.name + ".json")
        if os.path.exists(path):
            _read_point(path, settings)  # refuse a stale point before doing any work
            continue
        claim = os.path.join(folder, point.name + ".claim")
        fd = _claim(claim)
        if fd is None:
            continue  # a live worker has it
        try:
            if os.path.exists(path):  # finished between the check and the claim
                continue
            record = measure_point(point, systems[point.sample], ff, seed=seed,
                                   oscillation=oscillation, step_progress=step_progress)
            record.update(format=_FORMAT, settings=settings)
            with atomic_write(path) as fh:
                json.dump(record, fh, allow_nan=True)
            # Removed only after the result exists: a worker that opens the claim path
            # afterwards finds the result on its second check.
            try:
                os.unlink(claim)
            except OSError:
                pass
        finally:
            os.close(fd)
        done += 1
        if on_done is not None:
            on_done(point, record)
    return done


def measure_point(point: ScanPoint, system, ff, *, seed: int, oscillation: dict,
                  step_progress=None) -> dict:
    """One oscillation of one sample at (T, period), as a JSON-ready record (with the
    strain and stress series for sample 0)."""
    rng = np.random.default_rng(point_seed(seed, point))
    run = oscillatory_strain(system, ff, temperature=point.temperature, period=point.period,
                             n_cycles=point.n_cycles, discard_cycles=point.discard_cycles,
                             rng=rng, redraw_velocities=True, step_progress=step_progress,
                             **oscillation)
    cell = run.system.box
    record = {"sample": point.sample, "temperature": point.temperature,
              "period": point.period, "omega": point.omega, "n_cycles": point.n_cycles,
              "discard_cycles": point.discard_cycles, "n": int(run.system.n),
              "density": float(run.system.n / cell.volume),
              "kinetic_temperature": run.temperature,
              "result": run.result.as_dict(),
              "npt": run.npt.as_dict() if run.npt is not None else None}
    if point.sample == 0:
        record["series"] = {"t": run.t.tolist(), "strain": run.strain.tolist(),
                            "stress": run.stress.tolist()}
    return record


# ----------------------------------------------------------------------------- collect
@dataclass
class ScanTable:
    """The combined scan: one :class:`~swapmc.md.protocols.DMSRow` per (T, omega) and the
    raw point records (``records[(sample, T, period)]``)."""

    rows: list
    records: dict = field(repr=False)


def collect(points, directory: str, settings: dict, *, mode: str, units: str) -> ScanTable:
    """Read every point file and combine the samples of each (T, period) (errors over
    glasses by :func:`~swapmc.analysis.mechanics.combine_dms`; with one sample, over its
    cycles). Rows are ordered by temperature, then period as in the grid.

    Raises
    ------
    ValueError
        A point file missing, unreadable or made with other settings.
    """
    settings = _settings_json(settings)
    folder = os.path.join(directory, POINTS_DIR)
    records = {}
    for point in points:
        path = os.path.join(folder, point.name + ".json")
        if not os.path.exists(path):
            raise ValueError(f"{path}: point missing after the scan; rerun to measure it")
        records[(point.sample, point.temperature, point.period)] = _read_point(path, settings)
    temps = sorted({p.temperature for p in points})
    periods = list(dict.fromkeys(p.period for p in sorted(points, key=lambda q: -q.period)))
    periods.sort()
    samples = sorted({p.sample for p in points})
    rows = [combine_records([records[(i, temp, period)] for i in samples], temp, period,
                            mode=mode, units=units)
            for temp in temps for period in periods]
    return ScanTable(rows, records)


def combine_records(recs, temperature: float, period: float, *, mode: str,
                    units: str) -> DMSRow:
    """One (T, period) row from its point records: errors over glasses
    (:func:`~swapmc.analysis.mechanics.combine_dms`) with two or more, over the cycles of
    the one run otherwise."""
    results = [DMSResult(**r["result"]) for r in recs]
    vals, err_dof, method = dms_row_values(results)
    return DMSRow(float(temperature), 2.0 * math.pi / period, float(period),
                  *map(float, vals), len(results), mode, STRESS_UNIT[units], TIME_UNIT[units],
                  density=float(np.mean([r["density"] for r in recs])),
                  error_dof=float(err_dof), error_method=method)


# ----------------------------------------------------------------------------- peaks
#: Least grid points along a scan for a peak search (the asymmetric shape's 4 parameters + 2).
MIN_PEAK_POINTS = 6


def scan_peaks(rows, *, quantity: str = "m_loss", units: str = "lj", tg=None,
               tg_err: float = 0.0) -> dict:
    """Loss peaks of a scan and, with two or more located, their Arrhenius law.

    Isothermal peaks (omega_p at each T, :func:`~swapmc.analysis.spectroscopy.spectrum_peak`)
    are searched when the scan has at least :data:`MIN_PEAK_POINTS` frequencies; isochronal
    peaks (T_p at each omega, ``locate_peak(..., variable="temperature")``) when it has at
    least that many temperatures. Errors come from the rows' errors (over glasses with two
    or more samples).

    Parameters
    ----------
    rows : sequence of DMSRow
    quantity : {"m_loss", "tan_delta"}
    units : {"lj", "metal"}
    tg, tg_err : float, optional
        T_g for the ratio E / (R T_g).

    Returns
    -------
    dict
        ``{"isothermal": [LossPeak], "isochronal": [LossPeak], "arrhenius": ActivationFit
        or None, "arrhenius_error": str or None, "failed": [str]}`` (``failed``: scans
        whose peak search refused its input, e.g. a non-finite value).
    """
    import warnings

    temps = sorted({r.temperature for r in rows})
    omegas = sorted({r.omega for r in rows})
    iso_t, iso_w, failed = [], [], []
    if len(omegas) >= MIN_PEAK_POINTS:
        for temp in temps:
            sel = sorted((r for r in rows if r.temperature == temp), key=lambda r: r.omega)
            try:
                if _errors(sel, quantity) is None:
                    iso_t.append(locate_peak(np.log([r.omega for r in sel]),
                                             [getattr(r, quantity) for r in sel],
                                             variable="ln_omega", fixed=temp))
                else:
                    iso_t.append(spectrum_peak(sel, quantity, temperature=temp))
            except ValueError as err:  # e.g. a NaN modulus: report, keep the other scans
                failed.append(f"T = {temp:g}: {err}")
    if len(temps) >= MIN_PEAK_POINTS:
        for w in omegas:
            sel = sorted((r for r in rows if r.omega == w), key=lambda r: r.temperature)
            try:
                iso_w.append(locate_peak([r.temperature for r in sel],
                                         [getattr(r, quantity) for r in sel],
                                         _errors(sel, quantity), variable="temperature",
                                         fixed=w))
            except ValueError as err:
                failed.append(f"omega = {w:g}: {err}")
    found = [p for p in iso_t + iso_w if p.found]
    fit, error = None, None
    if len(found) >= 2:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                fit = fit_peak_arrhenius(found, units=units, tg=tg, tg_err=tg_err)
        except ValueError as err:
            error = str(err)
    else:
        error = f"{len(found)} peak(s) located; an Arrhenius fit needs 2"
    return {"isothermal": iso_t, "isochronal": iso_w, "arrhenius": fit,
            "arrhenius_error": error, "failed": failed}


def _errors(rows, quantity):
    """The rows' errors of ``quantity``, or None (unweighted fit) when any is not positive
    and finite (e.g. one sample with an exact fit)."""
    e = [getattr(r, quantity + "_err") for r in rows]
    return e if all(math.isfinite(v) and v > 0 for v in e) else None
