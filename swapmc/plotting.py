"""Figures of swapmc results (matplotlib is the optional ``plot`` extra; Agg backend).

``plot_run`` draws a ``swapmc run`` directory: ``thermo.png`` (U/N, P, the density of an
isobaric run, acceptances against MC sweeps, phases shaded) and ``fs.png`` (F_s(q, t) with
the 1/e line and tau_alpha with its error band, and the MSD). The ``*_figure`` functions
build the figures of ``swapmc dms`` and ``swapmc relax`` from their results.

Every axis carries its unit: reduced LJ units (epsilon_AA, sigma_AA, tau_LJ) or metal units
(eV, Å, ps, GPa, K), and MC time in sweeps. The figure builders return the
:class:`matplotlib.figure.Figure`, so callers (and tests) can read labels back.
"""

from __future__ import annotations

import json
import math
import os
from typing import NamedTuple

import numpy as np

__all__ = ["LogBinned", "beta_isochronal_figure", "beta_isothermal_figure", "dms_figures",
           "log_bin", "master_curve_figure", "peak_arrhenius_figure", "plot_run",
           "relaxation_figure", "run_figures", "save_figures", "unit_power", "unit_text"]

# Unit strings as swapmc writes them (swapmc.units.LABELS and the MD protocols' units) and
# how an axis shows them (matplotlib mathtext; DejaVu Sans has the Å glyph).
_UNIT_TEXT = {
    "epsilon_AA": r"$\varepsilon_{AA}$",
    "sigma_AA": r"$\sigma_{AA}$",
    "epsilon_AA/k_B": r"$\varepsilon_{AA}/k_B$",
    "epsilon_AA/sigma_AA^3": r"$\varepsilon_{AA}/\sigma_{AA}^3$",
    "epsilon": r"$\varepsilon_{AA}$",
    "epsilon/k_B": r"$\varepsilon_{AA}/k_B$",
    "epsilon/sigma^3": r"$\varepsilon_{AA}/\sigma_{AA}^3$",
    "tau_LJ": r"$\tau_\mathrm{LJ}$",
    "1/sigma_AA^3": r"$\sigma_{AA}^{-3}$",
    "Angstrom": "Å",
    "1/Angstrom^3": r"Å$^{-3}$",
    "eV": "eV",
    "K": "K",
    "GPa": "GPa",
    "ps": "ps",
    "MC sweeps": "MC sweeps",
}


def unit_text(unit: str) -> str:
    """How an axis label shows a unit string of swapmc (``"sigma_AA"`` -> σ_AA)."""
    return _UNIT_TEXT.get(unit, unit)


def unit_power(unit: str, power: int) -> str:
    """A unit raised to a power for an axis label (``"sigma_AA", -1`` -> σ_AA⁻¹)."""
    text = unit_text(unit)
    if len(text) > 1 and text.startswith("$") and text.endswith("$"):
        return text[:-1] + "^{" + str(power) + "}$"
    return text + "$^{" + str(power) + "}$"


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "plots need matplotlib: pip install 'swapmc[plot]'"
        ) from None
    return plt


def _save(fig, path: str) -> str:
    plt = _pyplot()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- binning
class LogBinned(NamedTuple):
    """A time series averaged in logarithmic time bins (:func:`log_bin`).

    Attributes
    ----------
    t : ndarray
        Mean time of the points in each non-empty bin.
    mean : ndarray
        Mean of y over the bin's points; for several curves, the mean over curves of each
        curve's bin mean.
    sem : ndarray
        Standard error of ``mean``: over the curves (several curves), else over the bin's
        points (one curve; NaN for a bin of one point). The points of one curve are
        correlated in time, so the one-curve value is a lower bound.
    count : ndarray of int
        Points (time samples) in each bin.
    edges : ndarray
        Edges of the non-empty bins, shape (len(t), 2).
    """

    t: np.ndarray
    mean: np.ndarray
    sem: np.ndarray
    count: np.ndarray
    edges: np.ndarray


def log_bin(t, y, per_decade: int = 10) -> LogBinned:
    """Average a relaxation curve in bins equally spaced in log t.

    A curve recorded at equal time steps has most of its points at long times, where a log
    axis squeezes them into a noisy band; binning gives each decade the same number of
    points and a standard error per bin.

    Parameters
    ----------
    t : array_like, shape (K,)
        Times; points with t <= 0 (no place on a log axis) are left out.
    y : array_like, shape (K,) or (G, K)
        One curve, or G curves (e.g. one per glass) sampled at ``t``.
    per_decade : int
        Bins per decade of t. Bins start at the smallest positive t; empty bins (at short
        times, where the samples are sparser than the bins) are dropped.

    Returns
    -------
    LogBinned
    """
    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    curves = y[None, :] if y.ndim == 1 else y
    if curves.shape[-1] != t.size:
        raise ValueError(f"t has {t.size} points, y has {curves.shape[-1]}")
    if per_decade < 1:
        raise ValueError(f"per_decade must be >= 1, got {per_decade}")
    keep = np.isfinite(t) & (t > 0)
    t, curves = t[keep], curves[:, keep]
    if t.size == 0:
        empty = np.empty(0)
        return LogBinned(empty, empty, empty, np.empty(0, int), np.empty((0, 2)))
    lo = math.log10(t.min())
    index = np.floor((np.log10(t) - lo) * per_decade + 1e-9).astype(int)
    n_bins = int(index.max()) + 1
    count = np.bincount(index, minlength=n_bins)
    full = np.nonzero(count)[0]
    t_mean = np.bincount(index, weights=t, minlength=n_bins)[full] / count[full]
    bin_means = np.stack([np.bincount(index, weights=c, minlength=n_bins)[full] / count[full]
                          for c in curves])
    if curves.shape[0] >= 2:
        mean = bin_means.mean(axis=0)
        sem = bin_means.std(axis=0, ddof=1) / math.sqrt(curves.shape[0])
    else:
        mean = bin_means[0]
        sq = np.bincount(index, weights=curves[0] ** 2, minlength=n_bins)[full]
        n = count[full]
        with np.errstate(invalid="ignore", divide="ignore"):
            var = np.where(n > 1, (sq - n * mean**2) / np.maximum(n - 1, 1), np.nan)
            sem = np.sqrt(np.maximum(var, 0.0) / n)
    edges = 10.0 ** (lo + np.stack([full, full + 1], axis=1) / per_decade)
    return LogBinned(t_mean, mean, sem, count[full], edges)


# ----------------------------------------------------------------------------- run
def _read_csv(path):
    """Columns of a swapmc CSV file; a truncated or damaged file (a row with a missing
    field or a non-number, e.g. cut off by a full disk) is reported with its line."""
    with open(path) as fh:
        lines = [(k, ln) for k, ln in enumerate(fh, 1) if not ln.startswith("#")]
    if not lines:
        raise ValueError(f"{path}: no header line (empty or truncated file)")
    header = lines[0][1].strip().split(",")
    rows = []
    for k, ln in lines[1:]:
        if not ln.strip():
            continue
        row = ln.strip().split(",")
        bad = len(row) != len(header)
        if not bad:
            try:
                [float(v) for h, v in zip(header, row) if h != "phase"]
            except ValueError:
                bad = True
        if bad:
            raise ValueError(f"{path}:{k}: damaged row ({len(row)} of {len(header)} fields, "
                             f"or not a number): the file is truncated or corrupt; rerun the "
                             "command that wrote it to resume (which truncates it to its "
                             "checkpoint)")
        rows.append(row)
    return {h: [r[k] for r in rows] for k, h in enumerate(header)}


def _header_units(path) -> dict:
    """The units named in a thermo.csv comment line ("units: energy eV, length Angstrom, ..."),
    as {quantity: unit}."""
    with open(path) as fh:
        first = fh.readline()
    if "units:" not in first:
        return {}
    part = first.split("units:", 1)[1].split(";", 1)[0]
    units = {}
    for item in part.split(","):
        words = item.split()
        if len(words) == 2:
            units[words[0]] = words[1]
    return units


def _run_units(directory, summary) -> dict:
    from .units import LABELS

    units = dict(LABELS["lj"])
    units.update(_header_units(os.path.join(directory, "thermo.csv")))
    if summary and isinstance(summary.get("units"), dict):
        units.update(summary["units"])
    units.setdefault("time", "MC sweeps")
    return units


def _summary(directory):
    path = os.path.join(directory, "summary.json")
    if not os.path.exists(path):
        return None  # a run still going: its thermo.csv can be drawn all the same
    with open(path) as fh:
        return json.load(fh)


def _floats(column):
    return np.array([float(v) for v in column], dtype=float)


def _mean_band(ax, summary, key, x0, x1, color):
    """The production mean +- its standard error from summary.json, over the production."""
    entry = ((summary or {}).get("production") or {}).get(key) or {}
    mean, err = entry.get("mean"), entry.get("stderr")
    if mean is None:
        return
    ax.hlines(mean, x0, x1, color=color, lw=1.2, ls="--", zorder=3,
              label="production mean" + (r" $\pm$ s.e." if err else ""))
    if err:
        ax.fill_between([x0, x1], mean - err, mean + err, color=color, alpha=0.25, lw=0,
                        zorder=2)


def run_figures(directory: str) -> dict:
    """The figures of a run directory, not yet saved: ``{"thermo.png": Figure, ...}``.

    ``thermo.png`` always; ``fs.png`` when the run measured F_s (``fs.csv``). A run still in
    progress (no ``summary.json`` yet) is drawn from its ``thermo.csv``.
    """
    plt = _pyplot()
    thermo = os.path.join(directory, "thermo.csv")
    if not os.path.exists(thermo):
        raise FileNotFoundError(f"{thermo} not found: is {directory!r} a swapmc run directory?")
    summary = _summary(directory)
    units = _run_units(directory, summary)
    t = _read_csv(thermo)
    sweep = _floats(t["sweep"])
    phases = np.array(t["phase"])
    temperature = _floats(t["temperature"])
    volume = _floats(t["volume"])
    density = _floats(t["density"])
    acc_volume = _floats(t["acc_volume"])
    # Isobaric: volume moves were tried (finite acceptance) or the volume moved.
    isobaric = bool(np.any(np.isfinite(acc_volume))) or (
        volume.size > 1 and float(np.ptp(volume)) > 1e-12 * float(np.max(volume)))
    n_panels = 4 if isobaric else 3
    fig, axes = plt.subplots(n_panels, 1, figsize=(7.5, 2.1 * n_panels + 0.9), sharex=True)
    tu = unit_text(units["time"])
    e_u, p_u, l_u = (unit_text(units["energy"]), unit_text(units["pressure"]),
                     units["length"])
    prod = phases == "production"
    x0, x1 = (sweep[prod].min(), sweep[prod].max()) if prod.any() else (None, None)
    from matplotlib.patches import Patch

    t_unit = unit_text(units["temperature"])
    shading = []
    for name, color in (("melt", "#f4cccc"), ("equilibration", "#fff2cc")):
        sel = phases == name
        if sel.any():
            # A row is logged at the end of its interval: the phase began one row earlier.
            first = int(np.argmax(sel))
            lo = sweep[first - 1] if first > 0 else 0.0
            for ax in axes:
                ax.axvspan(lo, sweep[sel].max(), color=color, lw=0, zorder=0)
            shading.append(Patch(color=color,
                                 label=f"{name}, T = {temperature[sel][-1]:g} {t_unit}"))
    axes[0].plot(sweep, _floats(t["energy_per_particle"]), lw=0.8, color="C0")
    axes[0].set_ylabel(f"U/N ({e_u})")
    if x0 is not None:
        _mean_band(axes[0], summary, "energy_per_particle", x0, x1, "C3")
    axes[1].plot(sweep, _floats(t["pressure"]), lw=0.8, color="C0")
    axes[1].set_ylabel(f"P ({p_u})")
    if x0 is not None:
        _mean_band(axes[1], summary, "pressure", x0, x1, "C3")
    imposed = (summary or {}).get("pressure_imposed")
    if imposed is not None:
        axes[1].axhline(imposed, color="k", lw=0.8, ls=":", label=f"imposed P = {imposed:g}")
    axes[1].legend(fontsize=7, loc="upper right")
    k = 2
    if isobaric:
        ax = axes[k]
        ax.plot(sweep, density, lw=0.8, color="C2")
        ax.set_ylabel(rf"$\rho = N/V$ ({unit_power(l_u, -3)})")
        if x0 is not None:
            _mean_band(ax, summary, "density", x0, x1, "C3")
        k += 1
    ax = axes[k]
    for col, label in (("acc_displacement", "displacement"), ("acc_swap", "swap"),
                       ("acc_volume", "volume")):
        if col not in t:
            continue
        y = _floats(t[col])
        if np.any(np.isfinite(y) & (y > 0)):
            ax.plot(sweep, y, lw=0.8, label=label)
    ax.set_ylabel("acceptance ratio")
    ax.set_yscale("log")
    ax.legend(fontsize=7, loc="best", ncol=3)
    ax.set_xlabel(f"{tu}")
    ax.set_xlim(0, sweep.max() if sweep.size else 1)
    if shading:
        axes[0].legend(handles=shading, fontsize=7, loc="best")
    title = []
    if summary:
        title.append(f"{summary.get('preset', '')}, N = {summary.get('n')}")
    if temperature.size:
        title.append(f"T = {temperature[-1]:g} {t_unit}")
    if not isobaric and density.size:
        title.append(rf"NVT at $\rho$ = {density[-1]:.4g} {unit_power(l_u, -3)}")
    elif imposed is not None:
        title.append(f"NPT at P = {imposed:g} {p_u}")
    else:
        title.append("NPT")
    fig.suptitle(", ".join(title), fontsize=10)
    fig.align_ylabels(axes)
    fig.tight_layout()
    figures = {"thermo.png": fig}

    fs_path = os.path.join(directory, "fs.csv")
    if os.path.exists(fs_path):
        figures["fs.png"] = _fs_figure(plt, fs_path, summary, units)
    return figures


def _fs_figure(plt, fs_path, summary, units):
    f = _read_csv(fs_path)
    tt = _floats(f["t"])
    sel = tt > 0
    s = summary or {}
    q = s.get("fs_q")
    species = s.get("fs_species", "")
    tau, err = s.get("tau_alpha_sweeps"), s.get("tau_alpha_stderr_sweeps")
    tu = unit_text(units["time"])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    label = f"species {species}" if species else "tracked species"
    a1.semilogx(tt[sel], _floats(f["fs"])[sel], "o-", ms=2.5, lw=1.2, color="C0", label=label)
    a1.axhline(np.exp(-1), color="grey", ls=":", lw=1)
    a1.text(tt[sel].min() if sel.any() else 1, np.exp(-1), " 1/e", va="bottom",
            color="grey", fontsize=8)
    if tau is not None:
        for ax in (a1, a2):
            ax.axvline(tau, color="C3", lw=1)
            if err:
                ax.axvspan(tau - err, tau + err, color="C3", alpha=0.2, lw=0)
        value = (rf"$\tau_\alpha$ = {tau:.3g} ± {err:.2g} {units['time']}" if err else
                 rf"$\tau_\alpha$ = {tau:.3g} {units['time']}" + "\n(no error bar: production "
                 r"< 6 $\tau_\alpha$)")
        a1.plot([], [], color="C3", label=value)
    a1.set_xlabel(f"t ({tu})")
    a1.set_ylabel(r"$F_s(q, t)$")
    a1.set_ylim(-0.05, 1.05)
    if q is not None:
        a1.set_title(f"self-intermediate scattering at q = {q:.4g} "
                     f"{unit_power(units['length'], -1)}", fontsize=9)
    a1.legend(fontsize=8, loc="lower left")
    msd = _floats(f["msd"])[sel]
    a2.loglog(tt[sel], msd, "o-", ms=2.5, lw=1.2, color="C0", label=label)
    if tau is not None:
        a2.plot([], [], color="C3", label=r"$\tau_\alpha$")
    a2.set_xlabel(f"t ({tu})")
    a2.set_ylabel(f"MSD ({unit_power(units['length'], 2)})")
    a2.set_title("mean squared displacement", fontsize=9)
    a2.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def save_figures(figures: dict, directory: str) -> list[str]:
    """Save ``{file name: Figure}`` into ``directory`` (PNG, 150 dpi) and close them.

    Returns
    -------
    list of str
        The paths written.
    """
    return [_save(fig, os.path.join(directory, name)) for name, fig in figures.items()]


def plot_run(directory: str) -> list[str]:
    """Draw ``thermo.png`` and, when the run measured it, ``fs.png`` into a run directory.

    Returns
    -------
    list of str
        Paths of the written figures.
    """
    return save_figures(run_figures(directory), directory)


# ----------------------------------------------------------------------------- MD
def _temperature_colors(temperatures):
    """A colour per temperature, cold (dark blue) to hot (orange): the dark end of plasma,
    whose middle stays readable on white (coolwarm's pale middle does not)."""
    plt = _pyplot()
    temps = sorted(set(float(t) for t in temperatures))
    cmap = plt.get_cmap("plasma")
    if len(temps) == 1:
        return {temps[0]: "C0"}
    return {t: cmap(0.8 * k / (len(temps) - 1)) for k, t in enumerate(temps)}


def dms_figures(rows, *, stress_unit: str, time_unit: str, temperature_unit: str,
                modulus: str = "G") -> dict:
    """Figures of a DMS sweep: ``dms.png`` and, with two or more temperatures,
    ``tan_delta_T.png``.

    ``dms.png``: the storage modulus M' (solid) and loss modulus M'' (dashed) against the
    angular frequency on one axis, tan delta on its own axis, one colour per temperature;
    the top axis gives the period.

    Parameters
    ----------
    rows : sequence of dict or DMSRow
        With ``temperature, omega, m_storage, m_storage_err, m_loss, m_loss_err,
        tan_delta, tan_delta_err`` (:meth:`swapmc.md.protocols.DMSRow.as_dict`).
    stress_unit, time_unit, temperature_unit : str
        As the protocols write them (e.g. ``"GPa"``, ``"ps"``, ``"K"``).
    modulus : str
        Symbol of the modulus (G for shear, E_V for uniaxial).

    Returns
    -------
    dict
        ``{file name: Figure}``.
    """
    plt = _pyplot()
    from matplotlib.lines import Line2D

    rows = [r if isinstance(r, dict) else r.as_dict() for r in rows]
    su, tu, temp_u = unit_text(stress_unit), unit_text(time_unit), unit_text(temperature_unit)
    colors = _temperature_colors(r["temperature"] for r in rows)
    sym = "E_V" if modulus.startswith("E") else "G"
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.3))
    for temp, color in colors.items():
        sel = sorted((r for r in rows if float(r["temperature"]) == temp),
                     key=lambda r: r["omega"])
        w = [r["omega"] for r in sel]
        a1.errorbar(w, [r["m_storage"] for r in sel], [r["m_storage_err"] for r in sel],
                    marker="o", ms=4, ls="-", color=color, capsize=2)
        a1.errorbar(w, [r["m_loss"] for r in sel], [r["m_loss_err"] for r in sel],
                    marker="s", ms=4, ls="--", color=color, capsize=2, mfc="white")
        td = [r for r in sel if _tan_delta_defined(r)]
        a2.errorbar([r["omega"] for r in td], [r["tan_delta"] for r in td],
                    [r["tan_delta_err"] for r in td], marker="o", ms=4, ls="-", color=color,
                    capsize=2, label=f"T = {temp:g} {temp_u}")
    values = [r[k] for r in rows for k in ("m_storage", "m_loss")]
    if values and min(values) > 0:
        a1.set_yscale("log")  # M'' is often 10-100 times smaller than M'
    omegas = [r["omega"] for r in rows]
    span = max(omegas) / min(omegas) if omegas and min(omegas) > 0 else 1.0
    for ax in (a1, a2):
        ax.set_xscale("log")
        ax.set_xlabel(rf"$\omega$ (rad/{tu})")
        _plain_log_ticks(ax.xaxis, span)
        top = ax.secondary_xaxis("top", functions=(_period, _period))
        top.set_xlabel(f"period 2π/ω ({tu})", fontsize=9)
        _plain_log_ticks(top.xaxis, span)
    a1.set_ylabel(rf"${sym}'$, ${sym}''$ ({su})")
    a2.set_ylabel(r"tan $\delta$ = " + rf"${sym}''/{sym}'$")
    a2.axhline(0.0, color="0.7", lw=0.8)
    style = [Line2D([], [], color="k", marker="o", ls="-", label=f"${sym}'$ storage"),
             Line2D([], [], color="k", marker="s", mfc="white", ls="--",
                    label=f"${sym}''$ loss")]
    # Line style names the quantity here; the colours (temperatures) are named beside.
    a1.legend(handles=style, fontsize=8, loc="best")
    a2.legend(fontsize=8, loc="best")
    _note_undefined_tan_delta(a2, rows, sym)
    fig.tight_layout()
    figures = {"dms.png": fig}
    if len(colors) < 2:
        return figures  # one temperature: tan delta(T) would be single points
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    omegas = sorted({r["omega"] for r in rows})
    cmap = plt.get_cmap("viridis")
    for k, omega in enumerate(omegas):
        sel = sorted((r for r in rows if r["omega"] == omega and _tan_delta_defined(r)),
                     key=lambda r: r["temperature"])
        ax.errorbar([r["temperature"] for r in sel], [r["tan_delta"] for r in sel],
                    [r["tan_delta_err"] for r in sel], marker="o", ms=4, capsize=2,
                    color=cmap(0.85 * k / max(len(omegas) - 1, 1)),
                    label=f"period {2 * math.pi / omega:.3g} {tu}")
    ax.axhline(0.0, color="0.7", lw=0.8)
    ax.set_xlabel(f"T ({temp_u})")
    ax.set_ylabel(r"tan $\delta$ = " + rf"${sym}''/{sym}'$")
    ax.legend(fontsize=8)
    _note_undefined_tan_delta(ax, rows, sym)
    fig.tight_layout()
    figures["tan_delta_T.png"] = fig
    return figures


def _tan_delta_defined(row) -> bool:
    """tan delta = M''/M' means something only where M' is resolved from zero (more than
    two of its errors): near M' = 0 the ratio and its error blow up and would set the axis."""
    err = row.get("m_storage_err")
    err = 0.0 if err is None or not math.isfinite(err) else err
    return abs(row["m_storage"]) > 2.0 * err and row["m_storage"] != 0.0


def _note_undefined_tan_delta(ax, rows, sym: str) -> None:
    """Say on the axes how many points were left out by :func:`_tan_delta_defined`."""
    left_out = sum(not _tan_delta_defined(r) for r in rows)
    if left_out:
        ax.text(0.02, 0.02, f"{left_out} point(s) with |${sym}'$| < 2 errors left out "
                "(tan δ undefined)", transform=ax.transAxes, fontsize=7, color="0.35")


def _plain_log_ticks(axis, span: float) -> None:
    """Plain numbers on a log axis ("0.5, 1, 2"); when the data span (largest / smallest
    value) is under a decade and a half, where a log axis would show one major tick or none
    (matplotlib would write 2 x 10^0), the minor ticks at 2, 3 and 5 times a power of ten
    are labelled too (all eight would overlap)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")

    def minor(v, _):
        if not (v > 0 and math.isfinite(v)):
            return ""
        lead = round(v / 10.0 ** math.floor(math.log10(v) + 1e-9))
        return f"{v:g}" if lead in (2, 3, 5) else ""

    axis.set_major_formatter(plain)
    axis.set_minor_formatter(FuncFormatter(minor) if span < 30 else NullFormatter())


def _period(x):
    # 2 pi / x is its own inverse; guard the zero matplotlib may probe.
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(x > 0, 2.0 * np.pi / np.where(x > 0, x, 1.0), np.inf)


def _kww_text(k, name: str, fmt: str) -> str:
    """A KWW parameter for a legend: "12.3 ± 1.1", "12.3 (at bound)" or "12.3"."""
    value = getattr(k, name)
    if not k.constrained(name):
        return f"{value:{fmt}} (at bound)"
    err = getattr(k, name + "_err", None)
    if err is None or not math.isfinite(err):
        return f"{value:{fmt}}"
    return f"{value:{fmt}} ± {err:.2g}"


def relaxation_figure(results, *, stress_unit: str, time_unit: str, temperature_unit: str,
                      modulus: str = "G", per_decade: int = 8):
    """Stress relaxation M(t) after a step strain, log-binned, one colour per temperature.

    Each curve is averaged in log-t bins (:func:`log_bin`): the mean over glasses of each
    glass's bin mean, with the standard error over glasses as a band (over the repeats of a
    single glass; none for a single curve). The KWW fit is drawn only over the time range it
    was fitted to.

    Parameters
    ----------
    results : sequence of (temperature, RelaxationResult)
        :func:`swapmc.md.protocols.step_strain_relaxation` results.
    stress_unit, time_unit, temperature_unit : str
    modulus : str
        Symbol of the modulus (G for shear, E_V for uniaxial).
    per_decade : int
        Bins per decade of time.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()
    su, tu, temp_u = unit_text(stress_unit), unit_text(time_unit), unit_text(temperature_unit)
    colors = _temperature_colors(temp for temp, _ in results)
    sym = "E_V" if modulus.startswith("E") else "G"
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for temp, r in results:
        color = colors[float(temp)]
        glass_curves = getattr(r, "glass_curves", None)
        if glass_curves is not None and glass_curves.shape[0] >= 2:
            curves = glass_curves
        elif r.curves.shape[0] >= 2:
            curves = r.curves
        else:
            curves = r.curves[0]
        b = log_bin(r.t, np.asarray(curves) / r.strain, per_decade)
        # Points for the data and a line for the fit, so the fit stays visible where it
        # goes through the points.
        ax.plot(b.t, b.mean, "o", ms=3.5, color=color, label=f"T = {temp:g} {temp_u}")
        if curves.ndim == 2:
            ax.fill_between(b.t, b.mean - b.sem, b.mean + b.sem, color=color, alpha=0.25,
                            lw=0)
        k = r.kww
        if k is not None:
            lo, hi = k.fit_range
            lo = max(lo, b.t.min()) if b.t.size else lo
            tf = np.geomspace(lo, hi, 200)
            ax.plot(tf, k.modulus(tf), "--", color=color, lw=1.6, zorder=4,
                    label=(rf"KWW: $\tau$ = {_kww_text(k, 'tau', '.3g')} {tu}, "
                           rf"$\beta$ = {_kww_text(k, 'beta', '.2f')}"))
    ax.set_xscale("log")
    ax.set_xlabel(f"t ({tu})")
    ax.set_ylabel(rf"${sym}(t)$ ({su})")
    ax.axhline(0.0, color="0.7", lw=0.8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- DMS analysis
_QUANTITY_TEXT = {"m_loss": "{sym}''", "tan_delta": r"\tan\delta", "m_storage": "{sym}'"}


def _quantity_label(quantity, sym, su):
    text = "$" + _QUANTITY_TEXT[quantity].format(sym=sym) + "$"
    return text if quantity == "tan_delta" else f"{text} ({su})"


def master_curve_figure(mc, laws=None, *, quantity="m_loss", stress_unit="",
                        time_unit="", temperature_unit="", modulus="G"):
    """Time-temperature master curve and its shift factors.

    Left: the shifted points y / b_T against the reduced frequency omega a_T (log axes),
    one colour per temperature with error bars, and the fitted master curve with its 68 %
    band. Right: ln a_T against 1/T with 68 % errors and the fitted Arrhenius / VFT laws
    (E with its error in the legend).

    Parameters
    ----------
    mc : MasterCurve
        From :func:`swapmc.analysis.superpose`.
    laws : dict, optional
        ``{"arrhenius": ShiftFactorFit, "vft": ShiftFactorFit}`` (either may be absent).
    quantity : {"m_loss", "tan_delta", "m_storage"}
    stress_unit, time_unit, temperature_unit : str
    modulus : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()
    su, tu, temp_u = unit_text(stress_unit), unit_text(time_unit), unit_text(temperature_unit)
    sym = "E_V" if modulus.startswith("E") else "G"
    colors = _temperature_colors(mc.temperatures)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.8),
                                 gridspec_kw={"width_ratios": [1.35, 1]})
    for c, t in enumerate(mc.temperatures):
        on = mc.curve == c
        err = mc.y_err[on] if mc.weighted else None
        a1.errorbar(np.exp(mc.x[on]), mc.y[on], err, marker="o", ms=4, ls="none",
                    capsize=2, color=colors[float(t)], label=f"T = {t:g} {temp_u}")
    xf = np.linspace(mc.x.min(), mc.x.max(), 300)
    yf, ef = mc.master(xf)
    a1.plot(np.exp(xf), yf, "-", color="k", lw=1.2, label="master curve (spline)")
    a1.fill_between(np.exp(xf), yf - ef, yf + ef, color="0.6", alpha=0.3, lw=0)
    a1.set_xscale("log")
    if mc.scale == "log":
        a1.set_yscale("log")
    a1.set_xlabel(rf"reduced frequency $\omega a_T$ (rad/{tu})")
    ylab = _quantity_label(quantity, sym, su)
    a1.set_ylabel(ylab + (" / $b_T$" if mc.vertical else ""))
    a1.set_title(f"master curve, $T_\\mathrm{{ref}}$ = {mc.reference:g} {temp_u}",
                 fontsize=10)
    a1.legend(fontsize=8, ncol=2)
    inv = 1.0 / mc.temperatures
    for c, t in enumerate(mc.temperatures):
        e = mc.ln_a_err[c]
        a2.errorbar(inv[c], mc.ln_a[c], e if math.isfinite(e) else None, marker="o",
                    ms=6, capsize=3, ls="none", color=colors[float(t)])
    tf = np.linspace(mc.temperatures.min(), mc.temperatures.max(), 200)
    styles = {"arrhenius": ("-", "C0"), "vft": ("--", "C3")}
    for name, fit in (laws or {}).items():
        v, e = fit.ln_a(tf)
        if name == "arrhenius":
            lab = (f"Arrhenius: E = {fit.energy:.3g} ± {fit.energy_err:.2g} "
                   f"{unit_text(fit.energy_unit)}")
        else:
            t0e = fit.errors.get("t0", math.nan)
            lab = (f"VFT: $T_0$ = {fit.params['t0']:.3g}"
                   + (f" ± {t0e:.2g}" if math.isfinite(t0e) else " (at bound)")
                   + f", E(T_ref) = {fit.energy:.3g}"
                   + (f" ± {fit.energy_err:.2g}" if math.isfinite(fit.energy_err) else ""))
        ls, col = styles[name]
        a2.plot(1.0 / tf, v, ls, color=col, lw=1.4, label=lab)
        a2.fill_between(1.0 / tf, v - e, v + e, color=col, alpha=0.15, lw=0)
    a2.axhline(0.0, color="0.7", lw=0.8)
    a2.set_xlabel(f"1/T ({_inverse_unit(temperature_unit)})")
    a2.set_ylabel(r"shift factor $\ln a_T$,  $a_T = \tau(T)/\tau(T_\mathrm{ref})$")
    _top_temperature_axis(a2, temp_u)
    if laws:
        a2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _inverse_unit(unit: str) -> str:
    """Axis text of 1/unit: "K$^{-1}$", or "(ε_AA/k_B)$^{-1}$" for a compound unit."""
    text = unit_text(unit)
    return f"({text})$^{{-1}}$" if "/" in unit else unit_power(unit, -1)


def _top_temperature_axis(ax, temp_u):
    """A T axis on top of a 1/T axis, with a few plain ticks."""
    from matplotlib.ticker import MaxNLocator

    top = ax.secondary_xaxis("top", functions=(_inverse, _inverse))
    top.set_xlabel(f"T ({temp_u})", fontsize=9)
    top.xaxis.set_major_locator(MaxNLocator(5))
    return top


def _inverse(x):
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(x != 0, 1.0 / np.where(x != 0, x, 1.0), np.inf)


def peak_arrhenius_figure(peaks, fit=None, *, time_unit="", temperature_unit=""):
    """Arrhenius plot of loss-peak positions: ln omega_p against 1/T_p.

    Isochronal peaks (T_p at fixed omega, horizontal errors) and isothermal ones
    (ln omega_p at fixed T, vertical errors) as separate markers; the fitted law with its
    68 % band and E ± error in the legend.

    Parameters
    ----------
    peaks : sequence of LossPeak
        Those not found are skipped.
    fit : ActivationFit, optional
        :func:`swapmc.analysis.fit_peak_arrhenius` of the peaks.
    time_unit, temperature_unit : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()
    tu, temp_u = unit_text(time_unit), unit_text(temperature_unit)
    fig, ax = plt.subplots(figsize=(6.8, 4.6))
    found = [p for p in peaks if p.found]
    chron = [p for p in found if p.variable == "temperature"]
    therm = [p for p in found if p.variable == "ln_omega"]
    if chron:
        t = np.array([p.position for p in chron])
        te = np.array([p.position_err for p in chron])
        ax.errorbar(1.0 / t, [math.log(p.fixed) for p in chron], xerr=te / t**2,
                    marker="s", ms=6, ls="none", capsize=3, color="C1",
                    label=r"isochronal: $T_p$ at fixed $\omega$")
    if therm:
        ax.errorbar([1.0 / p.fixed for p in therm], [p.position for p in therm],
                    [p.position_err for p in therm], marker="o", ms=6, ls="none",
                    capsize=3, color="C0", label=r"isothermal: $\omega_p$ at fixed T")
    if fit is not None:
        lo, hi = fit.t_range
        tf = np.linspace(lo * 0.97, hi * 1.03, 200)
        v, e = fit.ln_omega(tf)
        ax.plot(1.0 / tf, v, "-", color="k", lw=1.3,
                label=f"Arrhenius: E = {fit.energy:.3g} ± {fit.energy_err:.2g} "
                f"{unit_text(fit.energy_unit)}")
        ax.fill_between(1.0 / tf, v - e, v + e, color="0.6", alpha=0.3, lw=0)
    ax.set_xlabel(f"1/T ({_inverse_unit(temperature_unit)})")
    ax.set_ylabel(rf"$\ln\,\omega_p$ ($\omega_p$ in rad/{tu})")
    _top_temperature_axis(ax, temp_u)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig



def _beta_figure(rows):
    """pyplot, the rows as dicts, and one figure and axes for a beta-test plot."""
    plt = _pyplot()
    rows = [r if isinstance(r, dict) else r.as_dict() for r in rows]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    return plt, rows, fig, ax


def _beta_curves(ax, x, curves, found: bool, colour):
    """Draw one beta test's fits at abscissae ``x``: alpha only (dotted) and, when the beta
    term was kept, alpha + beta (solid) and the beta term (dashed). ``curves`` is
    ``BetaFeature.curves(...)``; returns the total curve."""
    a_only, _, b_part, total = curves
    ax.plot(x, a_only, ":", color=colour, lw=1.2)
    if found:
        ax.plot(x, total, "-", color=colour, lw=1.4)
        ax.plot(x, b_part, "--", color=colour, lw=1.2)
    return total


def _beta_legend(ax, kept, alpha_label: str, marker_label: str | None = None) -> None:
    """Legend of a beta-test plot: the data entries, then the line styles (the beta ones
    only when some beta term was kept)."""
    from matplotlib.lines import Line2D

    handles, _ = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="k", ls=":", label=alpha_label))
    if kept:
        handles += [Line2D([], [], color="k", ls="-", label=r"$\alpha + \beta$ fit (kept)"),
                    Line2D([], [], color="k", ls="--", label=r"$\beta$ term")]
        if marker_label:
            handles.append(Line2D([], [], color="k", marker="v", ls="none", mec="k",
                                  label=marker_label))
    ax.legend(handles=handles, fontsize=8)

def beta_isochronal_figure(rows, features, *, quantity="tan_delta", stress_unit="",
                           time_unit="", temperature_unit="", modulus="G"):
    """Isochronal loss against T, one colour per frequency, with the beta test drawn.

    For each tested frequency: the points (68 % errors), the alpha-only fit (dotted) and
    the alpha + beta fit (solid) over the fitted window, the beta term alone (dashed) when
    it was kept, and T_b ± error as a shaded band with a marker.

    Parameters
    ----------
    rows : sequence of DMSRow or dict
    features : sequence of BetaFeature
        :func:`swapmc.analysis.beta_relaxation.detect_beta_isochronal` results.
    quantity : {"tan_delta", "m_loss"}
    stress_unit, time_unit, temperature_unit, modulus : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt, rows, fig, ax = _beta_figure(rows)
    su, tu, temp_u = unit_text(stress_unit), unit_text(time_unit), unit_text(temperature_unit)
    sym = "E_V" if modulus.startswith("E") else "G"
    omegas = sorted({r["omega"] for r in rows})
    cmap = plt.get_cmap("viridis")
    feat = {f.fixed: f for f in features}
    for k, w in enumerate(omegas):
        col = cmap(0.85 * k / max(len(omegas) - 1, 1))
        sel = sorted((r for r in rows if r["omega"] == w), key=lambda r: r["temperature"])
        ax.errorbar([r["temperature"] for r in sel], [r[quantity] for r in sel],
                    [r[quantity + "_err"] for r in sel], marker="o", ms=4, ls="none",
                    capsize=2, color=col, label=f"period {2 * math.pi / w:.3g} {tu}")
        f = feat.get(w)
        if f is None:
            continue
        tf = np.linspace(f.window[0], f.window[1], 200)
        total = _beta_curves(ax, tf, f.curves(tf), f.found, col)
        if f.found:
            ax.axvspan(f.position - f.position_err, f.position + f.position_err, color=col,
                       alpha=0.15, lw=0)
            ax.plot([f.position], [float(np.interp(f.position, tf, total))], "v", ms=10,
                    color=col, mec="k")
    kept = [f for f in features if f.found]
    _beta_legend(ax, kept, r"$\alpha$ flank only", marker_label=r"$T_\beta$ ± 68 % (shaded)")
    ax.set_title(r"isochronal $\beta$ test: " + (
        ", ".join(f"{f.kind} at T = {f.position:.3g} ± {f.position_err:.2g}" for f in kept)
        if kept else "no $\\beta$ feature kept"), fontsize=10)
    ax.set_xlabel(f"T ({temp_u})")
    ax.set_ylabel(_quantity_label(quantity, sym, su))
    _log_axis_positive(ax, [r[quantity] for r in rows])
    fig.tight_layout()
    return fig


def _log_axis_positive(ax, values):
    """Log y axis when most values are positive (a small loss spans decades and a beta
    feature sits decades below the alpha peak); points <= 0 (noise) cannot be shown there,
    which the axis label then says."""
    v = np.asarray(values, dtype=float)
    pos = v[v > 0]
    if pos.size < 0.5 * v.size or pos.size < 2:
        return
    ax.set_yscale("log")
    ax.set_ylim(0.5 * pos.min(), 2.0 * pos.max())
    n_bad = int(np.sum(v <= 0))
    if n_bad:
        ax.set_ylabel(ax.get_ylabel() + f"\n({n_bad} point(s) <= 0 not shown)")


def beta_isothermal_figure(rows, features, *, quantity="m_loss", stress_unit="",
                           time_unit="", temperature_unit="", modulus="G"):
    """Isothermal loss spectra with the beta test: points per temperature, alpha-only fit
    (dotted), alpha + beta fit (solid) and the kept beta term (dashed) with omega_b ± error
    shaded.

    Parameters
    ----------
    rows : sequence of DMSRow or dict
    features : sequence of BetaFeature
        :func:`swapmc.analysis.beta_relaxation.detect_beta_isothermal` results.
    quantity : {"m_loss", "tan_delta"}
    stress_unit, time_unit, temperature_unit, modulus : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt, rows, fig, ax = _beta_figure(rows)
    su, tu, temp_u = unit_text(stress_unit), unit_text(time_unit), unit_text(temperature_unit)
    sym = "E_V" if modulus.startswith("E") else "G"
    colors = _temperature_colors(f.fixed for f in features)
    for f in features:
        col = colors[float(f.fixed)]
        sel = sorted((r for r in rows if r["temperature"] == f.fixed), key=lambda r: r["omega"])
        ax.errorbar([r["omega"] for r in sel], [r[quantity] for r in sel],
                    [r[quantity + "_err"] for r in sel], marker="o", ms=4, ls="none",
                    capsize=2, color=col, label=f"T = {f.fixed:g} {temp_u}: {f.kind}")
        wf = np.exp(np.linspace(f.window[0], f.window[1], 200))
        _beta_curves(ax, wf, f.curves(wf), f.found, col)
        if f.found:
            lo, hi = f.position - f.position_err, f.position + f.position_err
            ax.axvspan(math.exp(lo), math.exp(min(hi, f.window[1] + 3)), color=col,
                       alpha=0.15, lw=0)
    _beta_legend(ax, [f for f in features if f.found], r"$\alpha$ only")
    ax.set_xscale("log")
    ax.set_xlabel(rf"$\omega$ (rad/{tu})")
    ax.set_ylabel(_quantity_label(quantity, sym, su))
    _log_axis_positive(ax, [r[quantity] for r in rows
                            if any(r["temperature"] == f.fixed for f in features)])
    ax.set_title(r"isothermal $\beta$ test (shaded: $\omega_\beta$ ± 68 %)", fontsize=10)
    fig.tight_layout()
    return fig
