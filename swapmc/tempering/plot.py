"""Figures of a tempering run directory (matplotlib is the optional ``plot`` extra), with
units on every axis."""

from __future__ import annotations

import json
import os

import numpy as np

from .output import read_table

__all__ = ["plot_tempering", "tempering_figures"]


def plot_tempering(directory: str, max_walks: int = 8) -> list[str]:
    """Draw ``pt_acceptance.png`` and ``pt_walks.png`` for a finished tempering run.

    See :func:`tempering_figures`.

    Returns
    -------
    list of str
        Paths of the figures.
    """
    from ..plotting import save_figures

    return save_figures(tempering_figures(directory, max_walks), directory)


def tempering_figures(directory: str, max_walks: int = 8) -> dict:
    """The figures of a finished tempering run, not yet saved (``{file name: Figure}``).

    ``pt_acceptance.png``: exchange acceptance of each neighbouring pair (production),
    drawn at the pair's mean temperature, with the fraction f(T) of up-going replicas
    (a straight line from 1 to 0 is the ideal of Katzgraber et al.).
    ``pt_walks.png``: temperature of the first ``max_walks`` replicas versus round, the
    per-temperature mean energy with its blocking error and, for isobaric replicas, the
    mean density N/V.
    """
    from ..plotting import _pyplot, unit_power, unit_text

    summary_path = os.path.join(directory, "summary.json")
    if not os.path.exists(summary_path):
        raise FileNotFoundError(f"{summary_path} not found: is {directory!r} a finished "
                                "`swapmc temper` directory?")
    with open(summary_path) as fh:
        s = json.load(fh)
    plt = _pyplot()
    from matplotlib.patches import Patch

    units = s["units"]
    temp_u, energy_u = unit_text(units["temperature"]), unit_text(units["energy"])
    ladder = np.array(s["ladder"])
    figures = {}

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    mid = np.sqrt(ladder[:-1] * ladder[1:])
    acc = np.array([np.nan if p["acceptance"] is None else p["acceptance"] for p in s["pairs"]])
    width = 0.8 * np.diff(ladder)
    a1.axhspan(0.2, 0.3, color="#cccccc", alpha=0.5, lw=0, label="aim 0.2-0.3")
    a1.bar(mid, acc, width=width, color="#4c72b0", label="neighbouring pair (production)")
    a1.set_xlabel(f"T ({temp_u})")
    a1.set_ylabel("exchange acceptance ratio")
    a1.set_ylim(0, 1)
    a1.legend(fontsize=8)
    f = np.array([np.nan if x is None else x for x in s["fraction_up"]])
    a2.plot(ladder, f, "o-", label="measured")
    a2.plot([ladder[0], ladder[-1]], [1, 0], ":", color="grey", label="ideal (linear)")
    a2.set_xlabel(f"T ({temp_u})")
    a2.set_ylabel("fraction up-going f(T)")
    rt = s["round_trips"]
    a2.set_title(f"{rt['total']} round trips"
                 + (f", mean {rt['mean_sweeps']:.4g} MC sweeps" if rt["mean_sweeps"] else ""),
                 fontsize=9)
    a2.legend(fontsize=8)
    fig.tight_layout()
    figures["pt_acceptance.png"] = fig

    labels = read_table(os.path.join(directory, "labels.csv"))
    rounds = np.array(labels["round"], int)
    pt = s["per_temperature"]
    isobaric = any(p.get("volume") is not None for p in pt)
    n_panels = 3 if isobaric else 2
    fig, axes = plt.subplots(1, n_panels, figsize=(5 * n_panels, 3.9))
    b1, b2 = axes[0], axes[1]
    for r in range(min(max_walks, s["n_replicas"])):
        slots = np.array(labels[f"r{r}"], int)
        b1.step(rounds, ladder[slots], where="post", lw=0.8, label=f"replica {r}")
    handles, names = b1.get_legend_handles_labels()
    eq = s["equilibration_rounds"]
    if eq:
        b1.axvspan(0, eq, color="#fff2cc", lw=0, zorder=0)
        handles.append(Patch(color="#fff2cc", label="equilibration"))
        names.append("equilibration")
    for temp in ladder:
        b1.axhline(temp, color="#dddddd", lw=0.5, zorder=0)
    b1.set_xlabel(f"exchange round ({s['exchange_every']} MC sweeps each)")
    b1.set_ylabel(f"T ({temp_u})")
    # Above the axes: the walks fill the whole panel, so a legend inside hides some.
    b1.legend(handles, names, fontsize=7, ncol=min(len(names), 5), loc="lower center",
              bbox_to_anchor=(0.5, 1.0), frameon=False)
    e = np.array([np.nan if p["energy_per_particle"] is None else p["energy_per_particle"]
                  for p in pt])
    err = np.array([np.nan if p["energy_per_particle_stderr"] is None
                    else p["energy_per_particle_stderr"] for p in pt])
    b2.errorbar(ladder, e, yerr=err, fmt="o-", ms=3, capsize=2)
    b2.set_xlabel(f"T ({temp_u})")
    b2.set_ylabel(f"U/N ({energy_u})")
    b2.set_title("production mean ± blocking error", fontsize=9)
    if isobaric:
        v = np.array([np.nan if p.get("volume") is None else p["volume"] for p in pt])
        ve = np.array([np.nan if p.get("volume_stderr") is None else p["volume_stderr"]
                       for p in pt])
        n = s["n"]
        axes[2].errorbar(ladder, n / v, yerr=n * ve / v**2, fmt="o-", ms=3, capsize=2,
                         color="C2")
        axes[2].set_xlabel(f"T ({temp_u})")
        axes[2].set_ylabel(rf"$\rho = N/V$ ({unit_power(units['length'], -3)})")
        p_imposed = s.get("pressure_imposed")
        axes[2].set_title("isobaric" + (f", P = {p_imposed:g} {unit_text(units['pressure'])}"
                                        if p_imposed is not None else ""), fontsize=9)
    fig.tight_layout()
    figures["pt_walks.png"] = fig
    return figures
