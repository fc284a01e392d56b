"""Analysis of a finished or partial DMS scan directory (``swapmc dms-analyze``): master
curve and shift factors, Havriliak-Negami and KWW fits of the loss spectra, loss peaks and
their Arrhenius law, and the beta-relaxation test, all from the per-point files of
:mod:`swapmc.md.dms_scan`.

The point files (``<dir>/points/*.json``) are the record: :func:`read_scan` reads every one
(all must carry the same scan settings), groups the samples of each (T, period) and
combines them as the scan does (:func:`~swapmc.md.dms_scan.combine_records`: errors over
glasses with two or more samples, over the cycles of one run otherwise). A partial scan
(killed, or still running) is analysed as far as it goes: (T, period) pairs with fewer
samples than ``min_samples`` are left out and listed.

:func:`analyze` runs the sections (pure functions of :mod:`swapmc.analysis`):

* ``peaks``: :func:`~swapmc.md.dms_scan.scan_peaks` (>= 6 points along a scan);
* ``master``: :func:`~swapmc.analysis.superpose` of the isothermal spectra (>= 2
  temperatures with >= 3 frequencies each), the Arrhenius and VFT laws of a_T
  (:func:`~swapmc.analysis.master_curve.fit_shift_factors`) and HN / KWW fits of the
  master curve of M'' (loss only);
* ``fits``: :func:`~swapmc.analysis.fit_havriliak_negami` and
  :func:`~swapmc.analysis.fit_kww_spectrum` of M' and M'' at each temperature (>= 4
  frequencies), with the parameters at a bound (unconstrained) and the pairs whose
  correlation exceeds 0.95 (degenerate) flagged;
* ``beta``: :func:`~swapmc.analysis.beta_relaxation.detect_beta_isothermal` at each
  temperature (>= 8 frequencies) and
  :func:`~swapmc.analysis.beta_relaxation.detect_beta_isochronal` at each frequency (enough
  temperatures on the alpha flank).

A section asked for explicitly that the data cannot support raises ValueError; with
``sections=None`` every section runs where it can and the others carry the reason.
"""

from __future__ import annotations

import glob
import json
import math
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

# The fit modules (scipy.optimize, scipy.stats) are imported inside the sections that use
# them: `swapmc dms-analyze` registers its options from SECTIONS at every start-up.
from .dms_scan import _FORMAT, POINTS_DIR, combine_records, scan_peaks
from .protocols import TIME_UNIT

__all__ = ["SECTIONS", "ScanData", "analyze", "read_scan"]

#: Sections of :func:`analyze`.
SECTIONS = ("peaks", "master", "fits", "beta")
#: Correlation above which two fitted parameters are flagged degenerate.
DEGENERATE_CORRELATION = 0.95
#: Least frequencies per temperature for a spectrum fit / the isothermal beta test, and
#: per curve of a master curve.
MIN_FIT_FREQUENCIES = 4
MIN_BETA_FREQUENCIES = 8
MIN_MASTER_FREQUENCIES = 3


@dataclass
class ScanData:
    """The combined rows of a scan directory (:func:`read_scan`).

    ``rows``: one :class:`~swapmc.md.protocols.DMSRow` per (T, period) kept, ordered by T
    then omega. ``counts[(T, period)]`` is the number of samples found, ``dropped`` the
    (T, period) pairs left out for having fewer than ``min_samples``. ``units`` is
    ``"lj"`` or ``"metal"``, ``mode`` ``"shear"`` or ``"uniaxial"``.
    """

    directory: str
    rows: list
    units: str
    mode: str
    settings: dict
    n_files: int
    min_samples: int
    counts: dict = field(default_factory=dict)
    dropped: list = field(default_factory=list)

    @property
    def temperatures(self) -> list:
        return sorted({r.temperature for r in self.rows})

    @property
    def omegas(self) -> list:
        return sorted({r.omega for r in self.rows})


def read_scan(directory: str, *, min_samples: int | None = None) -> ScanData:
    """Read and combine the point files of a ``swapmc dms`` output directory.

    Parameters
    ----------
    directory : str
        The scan's output directory (holding ``points/``).
    min_samples : int, optional
        Least samples for a (T, period) to be used. Default: 2 when any (T, period) has two
        or more (errors over glasses throughout), else 1 (errors over cycles).

    Returns
    -------
    ScanData

    Raises
    ------
    ValueError
        No such directory, no point files, an unreadable file, files of different scan
        settings or of another format, nothing left after ``min_samples``.
    """
    if not os.path.isdir(directory):
        raise ValueError(f"{directory}: no such directory")
    folder = os.path.join(directory, POINTS_DIR)
    paths = sorted(glob.glob(os.path.join(folder, "*.json")))
    if not paths:
        raise ValueError(f"{folder}: no point files (not a swapmc dms output directory, or "
                         "no point has finished yet)")
    settings = None
    groups: dict = {}
    units = None
    for path in paths:
        try:
            with open(path, encoding="utf-8") as fh:
                rec = json.load(fh)
            if rec.get("format") != _FORMAT:
                raise ValueError(f"point-file format {rec.get('format')!r}, expected "
                                 f"{_FORMAT}")
            key = (float(rec["temperature"]), float(rec["period"]))
            sample = int(rec["sample"])
            time_unit = rec["result"]["time_unit"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a readable DMS point file ({err})") from None
        if settings is None:
            settings = rec.get("settings")
        elif rec.get("settings") != settings:
            raise ValueError(f"{path}: made with other scan settings than "
                             f"{os.path.basename(paths[0])}; analyse one scan at a time")
        u = {v: k for k, v in TIME_UNIT.items()}.get(time_unit)
        if u is None:
            raise ValueError(f"{path}: unknown time unit {time_unit!r}")
        if units is not None and u != units:
            raise ValueError(f"{path}: unit system {u!r} differs from {units!r}")
        units = u
        groups.setdefault(key, {})[sample] = rec
    counts = {k: len(v) for k, v in groups.items()}
    if min_samples is None:
        min_samples = 2 if max(counts.values()) >= 2 else 1
    if int(min_samples) < 1:
        raise ValueError(f"--min-samples must be >= 1, got {min_samples}")
    min_samples = int(min_samples)
    mode = (settings or {}).get("mode", "shear")
    rows, dropped = [], []
    for (temp, period) in sorted(groups, key=lambda k: (k[0], -k[1])):
        recs = [groups[(temp, period)][i] for i in sorted(groups[(temp, period)])]
        if len(recs) < min_samples:
            dropped.append((temp, period, len(recs)))
            continue
        rows.append(combine_records(recs, temp, period, mode=mode, units=units))
    if not rows:
        raise ValueError(f"{folder}: no (T, period) with at least {min_samples} samples "
                         f"(found at most {max(counts.values())}); lower --min-samples")
    return ScanData(directory=directory, rows=rows, units=units, mode=mode,
                    settings=settings or {}, n_files=len(paths), min_samples=min_samples,
                    counts=counts, dropped=dropped)


# ----------------------------------------------------------------------------- sections
def _errors_or_none(values):
    v = np.asarray(values, dtype=np.float64)
    return v if np.all(np.isfinite(v)) and np.all(v > 0) else None


def _isotherms(rows, min_freq):
    out = []
    for temp in sorted({r.temperature for r in rows}):
        sel = sorted((r for r in rows if r.temperature == temp), key=lambda r: r.omega)
        if len(sel) >= min_freq:
            out.append((temp, sel))
    return out


def _flags(fit):
    """Unconstrained (at bound) and degenerate (|correlation| > 0.95) parameters."""
    names = ["tau" if n == "ln_tau" else n for n in fit.names]
    cov = np.asarray(fit.covariance, dtype=np.float64)
    sd = np.sqrt(np.where(np.isfinite(np.diag(cov)) & (np.diag(cov) > 0), np.diag(cov),
                          np.nan))
    pairs = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if math.isfinite(sd[i]) and math.isfinite(sd[j]):
                rho = cov[i, j] / (sd[i] * sd[j])
                if abs(rho) > DEGENERATE_CORRELATION:
                    pairs.append([names[i], names[j], float(rho)])
    return {"unconstrained": sorted(fit.at_bound), "degenerate": pairs}


def _fit_both(omega, m1, m2, e1, e2, units, fast="none"):
    """HN and KWW fits (M' may be None; ``fast``: the fast term of
    :mod:`swapmc.analysis.loss_models`) as dicts with flags, or the error text."""
    from ..analysis.loss_models import fit_havriliak_negami, fit_kww_spectrum
    from .protocols import STRESS_UNIT

    out = {}
    for name, fn in (("havriliak_negami", fit_havriliak_negami), ("kww", fit_kww_spectrum)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                fit = fn(omega, m1, m2, e1, e2, stress_unit=STRESS_UNIT[units],
                         time_unit=TIME_UNIT[units], fast=fast)
        except (ValueError, RuntimeError, np.linalg.LinAlgError) as err:
            out[name] = {"error": str(err)}
            continue
        wp, wp_e = fit.loss_peak_omega()
        out[name] = dict(fit.as_dict(), flags=_flags(fit), loss_peak_omega=wp,
                         loss_peak_omega_err=wp_e, _fit=fit)
    return out


def _section_fits(data, fast="none"):
    iso = _isotherms(data.rows, MIN_FIT_FREQUENCIES)
    if not iso:
        raise ValueError(f"spectrum fits need >= {MIN_FIT_FREQUENCIES} frequencies at a "
                         "temperature")
    out = []
    for temp, sel in iso:
        w = np.array([r.omega for r in sel])
        m1 = np.array([r.m_storage for r in sel])
        m2 = np.array([r.m_loss for r in sel])
        e1 = _errors_or_none([r.m_storage_err for r in sel])
        e2 = _errors_or_none([r.m_loss_err for r in sel])
        if e1 is None or e2 is None:
            e1 = e2 = None
        out.append({"temperature": temp, "n_frequencies": len(sel),
                    **_fit_both(w, m1, m2, e1, e2, data.units, fast)})
    return out


def _section_master(data, quantity, scale, reference, fast="none"):
    from ..analysis.master_curve import fit_shift_factors, superpose

    iso = _isotherms(data.rows, MIN_MASTER_FREQUENCIES)
    if len(iso) < 2:
        raise ValueError(f"a master curve needs >= 2 temperatures with >= "
                         f"{MIN_MASTER_FREQUENCIES} frequencies each, got {len(iso)}")
    temps = [t for t, _ in iso]
    xs = [np.log([r.omega for r in sel]) for _, sel in iso]
    ys = [np.array([getattr(r, quantity) for r in sel]) for _, sel in iso]
    es = [_errors_or_none([getattr(r, quantity + "_err") for r in sel]) for _, sel in iso]
    errors = es if all(e is not None for e in es) else None
    positive = all(np.all(y > 0) for y in ys)
    if scale == "auto":
        scale = "log" if positive else "linear"
    elif scale == "log" and not positive:
        raise ValueError(f"--mc-scale log needs positive {quantity} at every point")
    if reference is not None and not any(math.isclose(reference, t, rel_tol=1e-9)
                                         for t in temps):
        raise ValueError(f"--reference {reference:g} is not a temperature of the scan "
                         f"({', '.join(f'{t:g}' for t in temps)})")
    # superpose's default knots (every 1.5 grid spacings) need several points per curve;
    # with few frequencies the spacing is doubled until the spline has fewer coefficients
    # than the points allow (the spacing used is reported).
    spacing = 1.5 * float(np.median(np.concatenate([np.diff(x) for x in xs])))
    for _ in range(6):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", RuntimeWarning)
                mc = superpose(xs, ys, errors, temps, reference=reference, scale=scale,
                               knot_spacing=spacing)
            break
        except ValueError as err:
            if "increase knot_spacing" not in str(err):
                raise
            spacing *= 2.0
    else:
        raise ValueError(f"too few points ({sum(x.size for x in xs)}) for a master curve of "
                         f"{len(xs)} temperatures")
    out = {"master_curve": mc, "scale": scale, "quantity": quantity, "knot_spacing": spacing,
           "warnings": [str(w.message) for w in caught], "laws": {}, "fits": {}}
    for law in ("arrhenius", "vft"):
        try:
            out["laws"][law] = fit_shift_factors(mc, law, units=data.units)
        except ValueError as err:
            out["laws"][law] = str(err)
    if quantity == "m_loss":
        order = np.argsort(mc.x)
        e = mc.y_err[order] if mc.weighted else None
        out["fits"] = _fit_both(np.exp(mc.x[order]), None, mc.y[order], None, e, data.units,
                                fast)
    else:
        out["fits_skipped"] = ("HN / KWW fits of a master curve need M'' (--quantity "
                               "m_loss)")
    return out


def _section_beta(data, quantity, iso_quantity, alpha_model, alpha_form, p_max,
                  flank_fraction, fast="none"):
    from ..analysis.beta_relaxation import (
        BETA_P_MAX,
        detect_beta_isochronal,
        detect_beta_isothermal,
    )

    if p_max is None:
        p_max = BETA_P_MAX
    out = {"isothermal": [], "isochronal": [], "skipped": []}
    for temp, sel in _isotherms(data.rows, MIN_BETA_FREQUENCIES):
        try:
            out["isothermal"].append(detect_beta_isothermal(
                [r.omega for r in sel], [getattr(r, quantity) for r in sel],
                _errors_or_none([getattr(r, quantity + "_err") for r in sel]),
                alpha_model=alpha_model, temperature=temp, p_max=p_max, fast=fast))
        except ValueError as err:
            out["skipped"].append(f"T = {temp:g}: {err}")
    for w in data.omegas:
        sel = sorted((r for r in data.rows if r.omega == w), key=lambda r: r.temperature)
        try:
            out["isochronal"].append(detect_beta_isochronal(
                [r.temperature for r in sel], [getattr(r, iso_quantity) for r in sel],
                _errors_or_none([getattr(r, iso_quantity + "_err") for r in sel]),
                omega=w, alpha_form=alpha_form, flank_fraction=flank_fraction,
                p_max=p_max))
        except ValueError as err:
            out["skipped"].append(f"omega = {w:.5g}: {err}")
    if not out["isothermal"] and not out["isochronal"]:
        raise ValueError("beta test not possible: " + ("; ".join(out["skipped"]) or
                         f"needs >= {MIN_BETA_FREQUENCIES} frequencies at a temperature or "
                         "enough temperatures at a frequency"))
    return out


def analyze(data: ScanData, *, sections=None, quantity="m_loss",
            isochronal_quantity="tan_delta", alpha_model="kww", alpha_form="arrhenius",
            p_max=None, flank_fraction=0.2, mc_scale="auto", reference=None, tg=None,
            tg_err=0.0, fast="none") -> dict:
    """Run the analysis sections on a scan (module docstring).

    Parameters
    ----------
    data : ScanData
    sections : sequence of str, optional
        Subset of :data:`SECTIONS`; each must be possible (else ValueError). Default: all,
        each where the data allow.
    quantity : {"m_loss", "tan_delta"}
        Loss quantity of the peaks, the master curve and the isothermal beta test.
    isochronal_quantity : {"tan_delta", "m_loss"}
        Loss quantity of the isochronal beta test.
    alpha_model : {"kww", "havriliak_negami"}
        Alpha shape of the isothermal beta test.
    alpha_form : {"arrhenius", "vft"}
        Alpha flank law of the isochronal beta test.
    p_max, flank_fraction
        Of the beta tests (p_max None: ``analysis.beta_relaxation.BETA_P_MAX``).
    mc_scale : {"auto", "log", "linear"}
        Master-curve fit of ln y or y (auto: log when every value is positive).
    reference : float, optional
        Reference temperature of the master curve (default the median one).
    tg, tg_err : float, optional
        T_g for E / (R T_g) of the peak Arrhenius fit.
    fast : {"none", "viscous", "power"}
        Fast term ``A (i omega)^a`` added to the HN and KWW fits of the spectra and of the
        master curve (:mod:`swapmc.analysis.loss_models`) and to the alpha model of the
        isothermal beta test, for MD spectra whose loss rises again at the highest
        frequencies.

    Returns
    -------
    dict
        ``{section: result}`` for the sections run and ``{"skipped": {section: reason}}``.

    Raises
    ------
    ValueError
        An explicitly requested section that the data do not support, unknown names.
    """
    explicit = sections is not None
    sections = list(SECTIONS if sections is None else sections)
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        raise ValueError(f"unknown section {bad[0]!r}; choose from {', '.join(SECTIONS)}")
    if mc_scale not in ("auto", "log", "linear"):
        raise ValueError(f"--mc-scale must be auto, log or linear, got {mc_scale!r}")
    out = {"skipped": {}}
    runners = {
        "peaks": lambda: scan_peaks(data.rows, quantity=quantity, units=data.units, tg=tg,
                                    tg_err=tg_err),
        "master": lambda: _section_master(data, quantity, mc_scale, reference, fast),
        "fits": lambda: _section_fits(data, fast),
        "beta": lambda: _section_beta(data, quantity, isochronal_quantity, alpha_model,
                                      alpha_form, p_max, flank_fraction, fast),
    }
    for name in sections:
        try:
            result = runners[name]()
        except ValueError as err:
            if explicit:
                raise ValueError(f"{name}: {err}") from None
            out["skipped"][name] = str(err)
            continue
        if name == "peaks" and not (result["isothermal"] or result["isochronal"]):
            reason = ("needs >= 6 frequencies at a temperature or >= 6 temperatures at a "
                      "frequency")
            if explicit:
                raise ValueError(f"peaks: {reason}")
            out["skipped"][name] = reason
            continue
        out[name] = result
    if len(out) == 1:
        raise ValueError("nothing to analyse: " + "; ".join(
            f"{k}: {v}" for k, v in out["skipped"].items()))
    return out
