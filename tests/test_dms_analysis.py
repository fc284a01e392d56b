"""``swapmc dms-analyze`` and swapmc.md.dms_analysis on synthetic scan directories with
known parameters: point files written in the format of swapmc.md.dms_scan from a
Havriliak-Negami modulus whose tau(T) is Arrhenius, with glass-to-glass scatter, so the
master-curve shift factors, their Arrhenius law and the HN fits have a truth to recover.
"""

import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from helpers import subprocess_env

from swapmc.analysis.loss_models import hn_susceptibility
from swapmc.md.dms_analysis import analyze, read_scan

# Truth of the synthetic scans: M* = M_u - dM / (1 + (i w tau)^a)^g with
# tau(T) = TAU0 exp(E / T) (LJ units).
M_U, DM, A_HN, G_HN = 12.0, 9.0, 0.8, 0.55
E_TRUE, TAU0 = 6.0, 1e-5
SETTINGS = {"strain_amplitude": 0.03, "mode": "shear", "model": "synthetic", "seed": 1}


def _result(omega, m1, m2, e1, e2):
    """A DMSResult dict as a point file stores it (fields the analysis does not use are
    filled consistently but are not tested)."""
    amp = math.hypot(m1, m2)
    return {"omega": omega, "strain_amplitude": 0.03, "m_storage": m1, "m_storage_err": e1,
            "m_loss": m2, "m_loss_err": e2, "tan_delta": m2 / m1,
            "tan_delta_err": e2 / abs(m1), "delta": math.atan2(m2, m1), "delta_err": 0.01,
            "modulus_magnitude": amp, "modulus_magnitude_err": e1,
            "stress_amplitude": 0.03 * amp, "stress_amplitude_err": 0.03 * e1,
            "stress_offset": 0.0, "stress_offset_err": 0.01, "stress_drift": None,
            "m_storage_err_ls": e1, "m_loss_err_ls": e2, "delta_err_ls": 0.01,
            "residual_rms": 0.1, "n_cycles": 6, "n_points": 600, "discard_cycles": 1,
            "stress_unit": "epsilon/sigma^3", "time_unit": "tau_LJ", "error_dof": 5.0,
            "error_method": "synthetic"}


def write_scan(directory, temperatures, periods, n_samples=4, noise=0.03, seed=0,
               skip=(), eta_fast=0.0):
    """Point files of a synthetic scan; ``noise`` is the glass-to-glass scatter relative
    to each value (M' and M'' scattered independently); ``skip`` lists (T, period,
    sample) left unwritten (a partial scan); ``eta_fast`` adds a fast viscous loss
    ``eta_fast omega`` to M''."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(directory, "points")
    os.makedirs(folder, exist_ok=True)
    for t in temperatures:
        tau = TAU0 * math.exp(E_TRUE / t)
        for p in periods:
            w = 2 * math.pi / p
            chi = hn_susceptibility(w * tau, A_HN, G_HN)
            m1, m2 = M_U - DM * chi.real, -DM * chi.imag + eta_fast * w
            for i in range(n_samples):
                if (t, p, i) in skip:
                    continue
                v1 = m1 * (1 + noise * rng.standard_normal())
                v2 = m2 * (1 + noise * rng.standard_normal())
                rec = {"sample": i, "temperature": float(t), "period": float(p),
                       "omega": w, "n_cycles": 7, "discard_cycles": 1, "n": 500,
                       "density": 1.2, "kinetic_temperature": t,
                       "result": _result(w, v1, v2, 0.01 * abs(v1), 0.01 * abs(v2)),
                       "npt": None, "format": 1, "settings": SETTINGS}
                name = f"T={float(t)!r}_period={float(p)!r}_sample={i}.json"
                with open(os.path.join(folder, name), "w") as fh:
                    json.dump(rec, fh)
    return directory


TEMPS = [0.5, 0.55, 0.6, 0.65, 0.7]
PERIODS = [float(v) for v in np.geomspace(1.0, 1000.0, 10)]


def _run(argv, timeout=300):
    return subprocess.run([sys.executable, "-m", "swapmc", *argv], capture_output=True,
                          text=True, env=subprocess_env(), timeout=timeout,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_master_curve_recovers_arrhenius_shift_law(tmp_path):
    """Shift factors of an HN spectrum with Arrhenius tau: ln a_T = E (1/T - 1/T_ref).
    The a_T law's E must contain the truth within 3 of its errors (the master-curve
    errors are 10-15 % small at larger noise, master_curve docstring), and each ln a_T
    within 4 errors."""
    data = read_scan(write_scan(str(tmp_path), TEMPS, PERIODS, noise=0.02, seed=3))
    assert data.units == "lj" and data.min_samples == 2 and len(data.rows) == 50
    res = analyze(data, sections=["master"])
    mc = res["master"]["master_curve"]
    assert res["master"]["scale"] == "log"
    truth = E_TRUE * (1 / mc.temperatures - 1 / mc.reference)
    ok = np.isfinite(mc.ln_a_err) & (mc.ln_a_err > 0)
    assert np.all(np.abs(mc.ln_a[ok] - truth[ok]) < 4 * mc.ln_a_err[ok])
    law = res["master"]["laws"]["arrhenius"]
    assert abs(law.params["e_over_k"] - E_TRUE) < 3 * law.errors["e_over_k"]
    assert law.errors["e_over_k"] < 0.1 * E_TRUE
    assert law.energy_unit == "epsilon_AA"
    # The VFT law of Arrhenius data: T_0 at (or near) 0.
    vft = res["master"]["laws"]["vft"]
    assert vft.params["t0"] < 0.3 or "t0" in vft.at_bound
    # HN fit of the master curve of M'' at T_ref: tau within 4 errors of the truth.
    hn = res["master"]["fits"]["havriliak_negami"]
    tau_ref = TAU0 * math.exp(E_TRUE / mc.reference)
    assert abs(math.log(hn["params"]["tau"] / tau_ref)) < 4 * hn["errors"]["tau"] / \
        hn["params"]["tau"] + 0.05


def test_spectrum_fits_per_temperature_and_flags(tmp_path):
    """HN fits of M' and M'' at each T recover M_u, dM and tau (within 4 errors); the
    output carries the unconstrained / degenerate flags of each parameter."""
    data = read_scan(write_scan(str(tmp_path), [0.55, 0.6], PERIODS, noise=0.01, seed=4))
    res = analyze(data, sections=["fits"])
    for item in res["fits"]:
        hn = item["havriliak_negami"]
        tau = TAU0 * math.exp(E_TRUE / item["temperature"])
        p, e = hn["params"], hn["errors"]
        assert abs(p["m_unrelaxed"] - M_U) < 4 * e["m_unrelaxed"]
        assert abs(math.log(p["tau"] / tau)) < 4 * e["tau"] / p["tau"]
        assert set(hn["flags"]) == {"unconstrained", "degenerate"}
        assert "kww" in item and ("params" in item["kww"] or "error" in item["kww"])


def test_fast_term_in_the_fits_and_the_cli(tmp_path):
    """A loss that rises again at high frequency (a fast viscous term, eta = 0.05 in
    epsilon/sigma^3 tau_LJ, equal to ~1/3 of the alpha peak at the shortest period):
    with --fast-term viscous the HN fits recover eta and tau within 4 errors; the CLI
    prints the term."""
    eta = 0.05
    write_scan(str(tmp_path), [0.55, 0.6], PERIODS, noise=0.01, seed=4, eta_fast=eta)
    res = analyze(read_scan(str(tmp_path)), sections=["fits"], fast="viscous")
    for item in res["fits"]:
        hn = item["havriliak_negami"]
        p, e = hn["params"], hn["errors"]
        assert hn["fast"] == "viscous"
        assert abs(p["fast_amplitude"] - eta) < 4 * e["fast_amplitude"]
        tau = TAU0 * math.exp(E_TRUE / item["temperature"])
        assert abs(math.log(p["tau"] / tau)) < 4 * e["tau"] / p["tau"]
    out = _run(["dms-analyze", str(tmp_path), "--sections", "fits", "--fast-term",
                "viscous"])
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("fast term A (i omega)^a: A = ") == 4 and "a = 1" in out.stdout


def test_partial_scan_uses_complete_points_and_lists_the_rest(tmp_path):
    skip = {(0.7, PERIODS[0], 1), (0.7, PERIODS[0], 2), (0.7, PERIODS[0], 3)}
    data = read_scan(write_scan(str(tmp_path), TEMPS, PERIODS, skip=skip))
    assert data.dropped == [(0.7, PERIODS[0], 1)]
    assert len(data.rows) == 49
    assert read_scan(str(tmp_path), min_samples=1).dropped == []


def test_cli_writes_tables_and_figures(tmp_path):
    d = write_scan(str(tmp_path / "scan"), TEMPS, PERIODS, noise=0.02, seed=5)
    proc = _run(["dms-analyze", d, "--sections", "master,fits,peaks"])
    assert proc.returncode == 0, proc.stderr
    out = os.path.join(d, "analysis")
    for name in ("analysis.json", "shift_factors.csv", "spectrum_fits.csv", "peaks.csv",
                 "master_curve.png", "arrhenius_peaks.png"):
        assert os.path.exists(os.path.join(out, name)), name
    assert "arrhenius law of a_T: e_over_k" in proc.stdout
    doc = json.load(open(os.path.join(out, "analysis.json")))
    e = doc["master"]["laws"]["arrhenius"]
    assert abs(e["params"]["e_over_k"] - E_TRUE) < 3 * e["errors"]["e_over_k"]
    flags = {r.split(",")[5].strip() for r in
             open(os.path.join(out, "spectrum_fits.csv")).read().splitlines()[1:]}
    assert flags <= {"", "unconstrained", "degenerate", "fixed"} | {
        f for f in flags if f.startswith("dof")}


@pytest.mark.parametrize("case, extra, text", [
    ("missing", [], "no such directory"),
    ("empty", [], "no point files"),
    ("one_t", ["--sections", "master"], "master: a master curve needs >= 2 temperatures"),
    ("few", ["--sections", "fits"], "fits: spectrum fits need >= 4 frequencies"),
    ("few", [], "nothing to analyse"),
    ("ok", ["--sections", "nonsense"], "unknown section 'nonsense'"),
    ("ok", ["--p-max", "2"], "--p-max must lie in (0, 1]"),
    ("ok", ["--reference", "0.33", "--sections", "master"], "--reference 0.33 is not"),
    ("mixed", [], "made with other scan settings"),
])
def test_cli_errors(tmp_path, case, extra, text):
    d = str(tmp_path / "scan")
    if case == "empty":
        os.makedirs(os.path.join(d, "points"))
    elif case == "one_t":
        write_scan(d, [0.6], PERIODS)
    elif case == "few":
        write_scan(d, [0.6, 0.7], PERIODS[:2])
    elif case in ("ok", "mixed"):
        write_scan(d, [0.6, 0.7], PERIODS[:4])
        if case == "mixed":
            path = os.path.join(d, "points", os.listdir(os.path.join(d, "points"))[0])
            rec = json.load(open(path))
            rec["settings"] = dict(SETTINGS, seed=2)
            json.dump(rec, open(path, "w"))
    proc = _run(["dms-analyze", d, *extra], timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("swapmc: error:"), proc.stderr
    assert text in lines[0]


def test_real_scan_directory_end_to_end(tmp_path, capsys):
    """A real `swapmc dms` scan (two N = 250 KA2 lattices, 2 T x 3 periods of 40-400 MD
    steps, as in tests/test_dms_scan.py) read back by the analysis: the rows equal the
    scan's own dms.csv, and the master curve runs on them (the values are not physics)."""
    import argparse

    from swapmc.build import composition_counts, lattice_configuration
    from swapmc.io import write_extxyz
    from swapmc.md.cli import add_parsers
    from swapmc.models import load_preset

    pre = load_preset("ka2-x10")
    counts = composition_counts(pre.composition, 250, pre.model.species)
    paths = []
    for k in (1, 2):
        path = tmp_path / f"g{k}.xyz"
        write_extxyz(str(path), lattice_configuration(counts, pre.model.species, 1.2, seed=k))
        paths.append(str(path))
    parser = argparse.ArgumentParser(prog="swapmc")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "scan"
    args = parser.parse_args(["dms", *paths, "--preset", "ka2-x10", "-T", "0.3", "0.4",
                              "--period-range", "0.2", "2", "--per-decade", "2", "--cycles",
                              "3", "--equilibration-steps", "100", "--no-progress",
                              "-o", str(out)])
    assert args.func(args) == 0
    data = read_scan(str(out))
    table = json.loads((out / "dms.json").read_text())["rows"]
    assert len(data.rows) == len(table) == 6
    mine = {(r.temperature, round(r.period, 9)): r for r in data.rows}
    for row in table:
        r = mine[(row["temperature"], round(row["period"], 9))]
        assert r.m_storage == row["m_storage"] and r.m_loss_err == row["m_loss_err"]
    capsys.readouterr()
    args = parser.parse_args(["dms-analyze", str(out), "--sections", "master"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "master curve of m_loss" in text and (out / "analysis" / "analysis.json").exists()


def test_master_curve_and_peak_figures(tmp_path):
    """The figures of the analysis carry units, legends and the fitted E with its error."""
    import matplotlib.pyplot as plt

    from swapmc.plotting import master_curve_figure, peak_arrhenius_figure

    data = read_scan(write_scan(str(tmp_path), TEMPS, PERIODS, noise=0.02, seed=6))
    res = analyze(data, sections=["master", "peaks"])
    m = res["master"]
    fig = master_curve_figure(m["master_curve"], m["laws"], stress_unit="epsilon/sigma^3",
                              time_unit="tau_LJ", temperature_unit="epsilon/k_B")
    left, right = fig.axes[:2]
    assert "omega a_T" in left.get_xlabel() and "tau" in left.get_xlabel()
    assert "sigma" in left.get_ylabel() and left.get_legend() is not None
    assert "1/T" in right.get_xlabel() and "ln a_T" in right.get_ylabel()
    labels = [t.get_text() for t in right.get_legend().get_texts()]
    assert any(t.startswith("Arrhenius: E = ") and "±" in t for t in labels)
    peaks = res["peaks"]
    fig = peak_arrhenius_figure(peaks["isothermal"] + peaks["isochronal"],
                                peaks["arrhenius"], time_unit="tau_LJ",
                                temperature_unit="epsilon/k_B")
    ax = fig.axes[0]
    assert "omega_p" in ax.get_ylabel() and "1/T" in ax.get_xlabel()
    assert any("E = " in t.get_text() for t in ax.get_legend().get_texts())
    plt.close("all")


def test_metal_units_scan(tmp_path):
    """A scan in metal units (ps, GPa, K): the a_T law's E comes out in eV with k_B in
    eV/K, E/k_B recovering the truth (here in K)."""
    d = str(tmp_path)
    temps = [500.0, 550.0, 600.0, 650.0, 700.0]
    e_over_k = 6000.0
    rng = np.random.default_rng(8)
    folder = os.path.join(d, "points")
    os.makedirs(folder)
    for t in temps:
        tau = 1e-2 * math.exp(e_over_k / t) / math.exp(e_over_k / 600.0)
        for p in PERIODS:
            w = 2 * math.pi / p
            chi = hn_susceptibility(w * tau, A_HN, G_HN)
            for i in range(3):
                v1 = (40 - 30 * chi.real) * (1 + 0.02 * rng.standard_normal())
                v2 = -30 * chi.imag * (1 + 0.02 * rng.standard_normal())
                res = dict(_result(w, v1, v2, 0.1, 0.1), stress_unit="GPa", time_unit="ps")
                rec = {"sample": i, "temperature": t, "period": p, "omega": w,
                       "n_cycles": 7, "discard_cycles": 1, "n": 2000, "density": 0.06,
                       "kinetic_temperature": t, "result": res, "npt": None, "format": 1,
                       "settings": SETTINGS}
                with open(os.path.join(folder, f"T={t!r}_period={p!r}_sample={i}.json"),
                          "w") as fh:
                    json.dump(rec, fh)
    data = read_scan(d)
    assert data.units == "metal"
    law = analyze(data, sections=["master"])["master"]["laws"]["arrhenius"]
    assert law.energy_unit == "eV"
    assert abs(law.params["e_over_k"] - e_over_k) < 3 * law.errors["e_over_k"]
    assert law.energy == pytest.approx(law.params["e_over_k"] * 8.617333262e-5)
