"""Figures of a tempering run directory (matplotlib is the optional ``plot`` extra)."""

from __future__ import annotations

import json
import os

import numpy as np

from .output import read_table

__all__ = ["plot_tempering"]


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'swapmc[plot]'") from None
    return plt


def plot_tempering(directory: str, max_walks: int = 8) -> list[str]:
    """Draw ``pt_acceptance.png`` and ``pt_walks.png`` for a finished tempering run.

    ``pt_acceptance.png``: exchange acceptance of each neighbouring pair (production),
    drawn at the pair's mean temperature, with the fraction f(T) of up-going replicas
    (a straight line from 1 to 0 is the ideal of Katzgraber et al.).
    ``pt_walks.png``: temperature of the first ``max_walks`` replicas versus round, and the
    per-temperature mean energy with its blocking error.

    Returns
    -------
    list of str
        Paths of the figures.
    """
    summary_path = os.path.join(directory, "summary.json")
    if not os.path.exists(summary_path):
        raise FileNotFoundError(f"{summary_path} not found: is {directory!r} a finished "
                                "`swapmc temper` directory?")
    with open(summary_path) as fh:
        s = json.load(fh)
    plt = _pyplot()
    ladder = np.array(s["ladder"])
    written = []

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    mid = np.sqrt(ladder[:-1] * ladder[1:])
    acc = np.array([np.nan if p["acceptance"] is None else p["acceptance"] for p in s["pairs"]])
    width = 0.8 * np.diff(ladder)
    a1.bar(mid, acc, width=width, color="#4c72b0")
    a1.axhspan(0.2, 0.3, color="#cccccc", alpha=0.5, lw=0, label="aim 0.2-0.3")
    a1.set_xlabel(f"T ({s['units']['temperature']})")
    a1.set_ylabel("exchange acceptance")
    a1.set_ylim(0, 1)
    a1.legend(fontsize=8)
    f = np.array([np.nan if x is None else x for x in s["fraction_up"]])
    a2.plot(ladder, f, "o-", label="measured")
    a2.plot([ladder[0], ladder[-1]], [1, 0], ":", color="grey", label="ideal (linear)")
    a2.set_xlabel(f"T ({s['units']['temperature']})")
    a2.set_ylabel("fraction up-going f(T)")
    rt = s["round_trips"]
    a2.set_title(f"{rt['total']} round trips"
                 + (f", mean {rt['mean_sweeps']:.4g} sweeps" if rt["mean_sweeps"] else ""),
                 fontsize=9)
    a2.legend(fontsize=8)
    fig.tight_layout()
    out = os.path.join(directory, "pt_acceptance.png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    written.append(out)

    labels = read_table(os.path.join(directory, "labels.csv"))
    rounds = np.array(labels["round"], int)
    fig, (b1, b2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for r in range(min(max_walks, s["n_replicas"])):
        slots = np.array(labels[f"r{r}"], int)
        b1.step(rounds, ladder[slots], where="post", lw=0.8, label=f"replica {r}")
    eq = s["equilibration_rounds"]
    if eq:
        b1.axvspan(0, eq, color="#fff2cc", lw=0)
    for temp in ladder:
        b1.axhline(temp, color="#dddddd", lw=0.5, zorder=0)
    b1.set_xlabel("round (shaded: equilibration; ladder of production)")
    b1.set_ylabel(f"T ({s['units']['temperature']})")
    b1.legend(fontsize=7, ncol=2)
    pt = s["per_temperature"]
    e = np.array([np.nan if p["energy_per_particle"] is None else p["energy_per_particle"]
                  for p in pt])
    err = np.array([np.nan if p["energy_per_particle_stderr"] is None
                    else p["energy_per_particle_stderr"] for p in pt])
    b2.errorbar(ladder, e, yerr=err, fmt="o-", ms=3)
    b2.set_xlabel(f"T ({s['units']['temperature']})")
    b2.set_ylabel(f"U/N ({s['units']['energy']})")
    fig.tight_layout()
    out = os.path.join(directory, "pt_walks.png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    written.append(out)
    return written
