"""Figures of a run directory (matplotlib is the optional ``plot`` extra)."""

from __future__ import annotations

import os

import numpy as np


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


def plot_run(directory: str) -> list[str]:
    """Draw ``thermo.png`` (U/N, P and acceptances vs sweeps, phases shaded) and, when the
    run measured it, ``fs.png`` (F_s(q, t) and MSD vs sweeps, log time axis).

    Returns
    -------
    list of str
        Paths of the written figures.
    """
    plt = _pyplot()
    written = []
    thermo = os.path.join(directory, "thermo.csv")
    if not os.path.exists(thermo):
        raise FileNotFoundError(f"{thermo} not found: is {directory!r} a swapmc run directory?")
    t = _read_csv(thermo)
    sweep = np.array(t["sweep"], float)
    fig, axes = plt.subplots(3, 1, figsize=(7, 8), sharex=True)
    phases = np.array(t["phase"])
    for name, color in (("melt", "#f4cccc"), ("equilibration", "#fff2cc")):
        sel = sweep[phases == name]
        if sel.size:
            for ax in axes:
                ax.axvspan(sel.min(), sel.max(), color=color, lw=0)
    axes[0].plot(sweep, np.array(t["energy_per_particle"], float), lw=0.8)
    axes[0].set_ylabel("U / N")
    axes[1].plot(sweep, np.array(t["pressure"], float), lw=0.8)
    axes[1].set_ylabel("P")
    for col, label in (("acc_displacement", "displacement"), ("acc_swap", "swap"),
                       ("acc_volume", "volume")):
        y = np.array(t[col], float)
        if np.any(np.isfinite(y)):
            axes[2].plot(sweep, y, lw=0.8, label=label)
    axes[2].set_ylabel("acceptance")
    axes[2].set_yscale("log")
    axes[2].legend(fontsize=8)
    axes[2].set_xlabel("MC sweeps (shaded: melt, equilibration)")
    fig.tight_layout()
    out = os.path.join(directory, "thermo.png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    written.append(out)
    fs_path = os.path.join(directory, "fs.csv")
    if os.path.exists(fs_path):
        f = _read_csv(fs_path)
        tt = np.array(f["t"], float)
        sel = tt > 0
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
        a1.semilogx(tt[sel], np.array(f["fs"], float)[sel])
        a1.axhline(np.exp(-1), color="grey", ls=":")
        a1.set_xlabel("t (MC sweeps)")
        a1.set_ylabel("F_s(q, t)")
        a2.loglog(tt[sel], np.array(f["msd"], float)[sel])
        a2.set_xlabel("t (MC sweeps)")
        a2.set_ylabel("MSD")
        fig.tight_layout()
        out = os.path.join(directory, "fs.png")
        fig.savefig(out, dpi=120)
        plt.close(fig)
        written.append(out)
    return written
