"""Figures: units on every axis (LJ and metal), the density panel of isobaric runs, tau_alpha
and q on F_s, log-binned relaxation curves with the KWW fit over its range only, DMS colours
by temperature and line styles by quantity. Labels are read back from the figures; pixels are
not compared."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from swapmc.analysis.mechanics import fit_kww_glasses  # noqa: E402
from swapmc.cli import main  # noqa: E402
from swapmc.plotting import (  # noqa: E402
    dms_figures,
    log_bin,
    plot_run,
    relaxation_figure,
    run_figures,
    unit_power,
    unit_text,
)
from swapmc.tempering.plot import plot_tempering, tempering_figures  # noqa: E402

LJ = {"energy": unit_text("epsilon_AA"), "pressure": unit_text("epsilon_AA/sigma_AA^3"),
      "length": "sigma_AA"}
METAL = {"energy": "eV", "pressure": "GPa", "length": "Angstrom"}


def _labels(fig):
    return [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes]


# ----------------------------------------------------------------------------- log binning
def test_log_bin_means_and_spacing():
    """Bin means are the plain means of the points in each bin, bins are equally spaced in
    log t, and bins without points are dropped."""
    t = np.arange(0, 2001) * 0.05  # t = 0 has no place on a log axis
    y = np.cos(t) + 0.1 * t
    b = log_bin(t, y, per_decade=20)
    ratios = b.edges[:, 1] / b.edges[:, 0]
    assert np.allclose(ratios, 10 ** (1 / 20))
    assert b.edges[0, 0] == pytest.approx(0.05)
    # Consecutive edges, where no bin was dropped, share a boundary on the log grid.
    k = np.round(np.log10(b.edges[:, 0] / 0.05) * 20, 9)
    assert np.allclose(k, np.round(k)) and np.all(np.diff(k) >= 1)
    assert np.all(b.count > 0) and b.count.sum() == 2000
    assert np.any(np.diff(k) > 1)  # short times: 0.05, 0.10, ... leave bins empty
    for j in range(b.t.size):
        lo, hi = b.edges[j]
        inside = (t >= lo * (1 - 1e-12)) & (t < hi * (1 - 1e-12)) & (t > 0)
        if j == b.t.size - 1:
            inside |= t == t.max()
        assert inside.sum() == b.count[j]
        assert b.mean[j] == pytest.approx(y[inside].mean(), rel=1e-12, abs=1e-12)
        assert b.t[j] == pytest.approx(t[inside].mean())
        if inside.sum() > 1:
            assert b.sem[j] == pytest.approx(y[inside].std(ddof=1) / math.sqrt(inside.sum()))
        else:
            assert np.isnan(b.sem[j])


def test_log_bin_over_curves():
    """Several curves (glasses): the mean over curves of each curve's bin mean, and the
    standard error over curves."""
    rng = np.random.default_rng(0)
    t = np.linspace(0.01, 100, 5000)
    curves = np.exp(-t / 10)[None, :] + rng.normal(0, 0.05, (4, t.size))
    b = log_bin(t, curves, per_decade=10)
    single = np.stack([log_bin(t, c, per_decade=10).mean for c in curves])
    assert np.allclose(b.mean, single.mean(axis=0))
    assert np.allclose(b.sem, single.std(axis=0, ddof=1) / 2)
    assert b.t.size < 60 and np.all(np.diff(np.log10(b.t)) > 0)


# ----------------------------------------------------------------------------- run
def _run(tmp_path, name, extra):
    out = tmp_path / name
    argv = ["run", *extra, "--tau-alpha", "-o", str(out), "--no-progress"]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Short runs: LJ NVT, LJ NPT and Cu-Zr (the preset's P = 0 GPa, so NPT), hot enough
    for F_s to decay within the production."""
    tmp = tmp_path_factory.mktemp("runs")
    return {
        "lj_nvt": _run(tmp, "lj_nvt", ["-N", "200", "-T", "2.0", "-s", "300",
                                       "--equilibration-sweeps", "100"]),
        "lj_npt": _run(tmp, "lj_npt", ["-N", "200", "-T", "2.0", "-P", "10", "-s", "300",
                                       "--equilibration-sweeps", "100"]),
        "metal": _run(tmp, "metal", ["cu50zr50", "-N", "256", "-T", "2500", "-s", "200",
                                     "--equilibration-sweeps", "50"]),
    }


@pytest.mark.parametrize("name, units, isobaric", [
    ("lj_nvt", LJ, False), ("lj_npt", LJ, True), ("metal", METAL, True)])
def test_run_figures_units_and_panels(runs, name, units, isobaric, capsys):
    figs = run_figures(str(runs[name]))
    assert set(figs) == {"thermo.png", "fs.png"}
    thermo = figs["thermo.png"]
    labels = _labels(thermo)
    assert len(thermo.axes) == (4 if isobaric else 3)  # a density panel for NPT only
    assert units["energy"] in labels[0][1] and "U/N" in labels[0][1]
    assert units["pressure"] in labels[1][1]
    if isobaric:
        assert "N/V" in labels[2][1] and unit_power(units["length"], -3) in labels[2][1]
    assert labels[-1][0] == "MC sweeps"
    suptitle = thermo._suptitle.get_text()
    assert ("NPT" if isobaric else "NVT") in suptitle

    fs = figs["fs.png"]
    a1, a2 = fs.axes
    summary = json.loads((runs[name] / "summary.json").read_text())
    tau, q = summary["tau_alpha_sweeps"], summary["fs_q"]
    assert tau is not None
    assert "MC sweeps" in a1.get_xlabel() and "F_s" in a1.get_ylabel()
    assert f"{q:.4g}" in a1.get_title() and unit_power(units["length"], -1) in a1.get_title()
    assert "MSD" in a2.get_ylabel() and unit_power(units["length"], 2) in a2.get_ylabel()
    xs = [tuple(ln.get_xdata()) for ln in a1.lines]
    assert (tau, tau) in xs  # tau_alpha as a vertical line
    ys = [tuple(ln.get_ydata()) for ln in a1.lines]
    assert (math.exp(-1), math.exp(-1)) in ys  # the 1/e line
    legend = " ".join(t.get_text() for t in a1.get_legend().get_texts())
    assert f"{tau:.3g}" in legend and "MC sweeps" in legend
    import matplotlib.pyplot as plt

    plt.close("all")
    written = plot_run(str(runs[name]))
    assert sorted(p.rsplit("/", 1)[1] for p in written) == ["fs.png", "thermo.png"]
    assert all((runs[name] / p.rsplit("/", 1)[1]).stat().st_size > 10_000 for p in written)


def test_fs_error_band_from_summary(runs, tmp_path):
    """tau_alpha's standard error is drawn as a band around its line."""
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(runs["lj_nvt"], d)
    s = json.loads((d / "summary.json").read_text())
    s["tau_alpha_sweeps"], s["tau_alpha_stderr_sweeps"] = 20.0, 3.0
    (d / "summary.json").write_text(json.dumps(s))
    a1 = run_figures(str(d))["fs.png"].axes[0]
    # Extents in the patch's own coordinates: data coordinates along x for axvspan.
    spans = [p.get_path().get_extents(p.get_patch_transform()) for p in a1.patches]
    assert any(np.allclose([e.x0, e.x1], [17, 23]) for e in spans), spans
    legend = " ".join(t.get_text() for t in a1.get_legend().get_texts())
    assert "20 ± 3" in legend


# ----------------------------------------------------------------------------- DMS
def _dms_rows():
    rows = []
    for temp, tau in ((300.0, 40.0), (500.0, 4.0), (700.0, 0.4)):
        for period in (1.0, 10.0, 100.0):
            w = 2 * math.pi / period
            x = (w * tau) ** 2
            ms, ml = 2 + 28 * x / (1 + x), 28 * w * tau / (1 + x)
            rows.append(dict(temperature=temp, omega=w, period=period, m_storage=ms,
                             m_storage_err=0.1, m_loss=ml, m_loss_err=0.1,
                             tan_delta=ml / ms, tan_delta_err=0.01))
    return rows


@pytest.mark.parametrize("units, expect", [
    (("GPa", "ps", "K"), ("GPa", "ps", "K")),
    (("epsilon/sigma^3", "tau_LJ", "epsilon/k_B"),
     (unit_text("epsilon/sigma^3"), unit_text("tau_LJ"), unit_text("epsilon/k_B")))])
def test_dms_figures_units_colours_and_styles(units, expect, tmp_path):
    from matplotlib.container import ErrorbarContainer

    su, tu, temp_u = units
    figs = dms_figures(_dms_rows(), stress_unit=su, time_unit=tu, temperature_unit=temp_u,
                       modulus="G (shear)")
    assert set(figs) == {"dms.png", "tan_delta_T.png"}
    a1, a2 = figs["dms.png"].axes[:2]
    assert expect[0] in a1.get_ylabel() and "G'" in a1.get_ylabel()
    assert "tan" in a2.get_ylabel()
    for ax in (a1, a2):
        assert expect[1] in ax.get_xlabel() and "omega" in ax.get_xlabel()
    # M' solid and M'' dashed, the same colour for one temperature, one colour per T.
    lines = [c.lines[0] for c in a1.containers if isinstance(c, ErrorbarContainer)]
    styles = [ln.get_linestyle() for ln in lines]
    assert styles == ["-", "--"] * 3
    colors = [ln.get_color() for ln in lines]
    assert [tuple(np.atleast_1d(c)) for c in colors[0::2]] == [
        tuple(np.atleast_1d(c)) for c in colors[1::2]]
    assert len({tuple(np.atleast_1d(c)) for c in colors}) == 3
    legend = " ".join(t.get_text() for t in a2.get_legend().get_texts())
    assert f"T = 300 {expect[2]}" in legend
    style_legend = " ".join(t.get_text() for t in a1.get_legend().get_texts())
    assert "storage" in style_legend and "loss" in style_legend
    (ax,) = figs["tan_delta_T.png"].axes
    assert expect[2] in ax.get_xlabel()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"period 10 {expect[1]}" in legend
    from swapmc.plotting import save_figures

    assert len(save_figures(figs, str(tmp_path))) == 2


def test_dms_figures_leave_out_undefined_tan_delta():
    """Where M' is not resolved from zero (a liquid at low frequency) tan delta = M''/M' is
    left out of both tan delta plots, and the figure says how many points were; the moduli
    are still all drawn."""
    from matplotlib.container import ErrorbarContainer

    rows = _dms_rows()
    rows[0] = dict(rows[0], m_storage=-0.05, m_storage_err=0.3, tan_delta=-40.0,
                   tan_delta_err=900.0)
    figs = dms_figures(rows, stress_unit="GPa", time_unit="ps", temperature_unit="K")
    a1, a2 = figs["dms.png"].axes[:2]
    (ax,) = figs["tan_delta_T.png"].axes
    for axis in (a2, ax):
        drawn = [y for c in axis.containers if isinstance(c, ErrorbarContainer)
                 for y in c.lines[0].get_ydata()]
        assert len(drawn) == 8 and -40.0 not in drawn
        assert any("1 point(s)" in t.get_text() and "left out" in t.get_text()
                   for t in axis.texts)
    assert sum(len(c.lines[0].get_ydata()) for c in a1.containers
               if isinstance(c, ErrorbarContainer)) == 18


# ----------------------------------------------------------------------------- relaxation
def _relaxation(temp, tau, strain=0.02, glasses=3):
    """A synthetic step-strain result: KWW decay plus noise, one curve per glass, with the
    real KWW fit over t >= 1."""
    rng = np.random.default_rng(int(temp))
    t = np.arange(0, 4001) * 0.005
    clean = strain * (20 * np.exp(-((t / tau) ** 0.6)) + 2.0)
    curves = clean[None, :] + rng.normal(0, 0.02 * strain * 20, (glasses, t.size))
    glass = np.arange(glasses)
    kww = fit_kww_glasses(t, curves, glass, strain=strain, fit_range=(1.0, None),
                          stress_unit="GPa", time_unit="ps")
    return SimpleNamespace(t=t, curves=curves, glass_curves=curves, strain=strain, kww=kww,
                           glass=glass)


@pytest.mark.parametrize("units, expect", [
    (("GPa", "ps", "K"), ("GPa", "ps", "K")),
    (("epsilon/sigma^3", "tau_LJ", "epsilon/k_B"),
     (unit_text("epsilon/sigma^3"), unit_text("tau_LJ"), unit_text("epsilon/k_B")))])
def test_relaxation_figure_binned_with_fit_over_its_range(units, expect):
    results = [(300.0, _relaxation(300.0, 3.0)), (500.0, _relaxation(500.0, 0.8))]
    fig = relaxation_figure(results, stress_unit=units[0], time_unit=units[1],
                            temperature_unit=units[2], modulus="G (shear)")
    (ax,) = fig.axes
    assert expect[1] in ax.get_xlabel() and ax.get_xscale() == "log"
    assert expect[0] in ax.get_ylabel() and "G(t)" in ax.get_ylabel()
    data = [ln for ln in ax.lines if ln.get_marker() == "o"]
    fits = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert len(data) == 2 and len(fits) == 2
    for ln, (_, r) in zip(data, results):
        x = np.asarray(ln.get_xdata())
        assert x.size < 60 < r.t.size  # log-binned, not the 4000 raw points
        assert np.all(np.diff(np.log10(x)) > 0.05)
        expected = log_bin(r.t, r.glass_curves / r.strain, 8)
        assert np.allclose(ln.get_ydata(), expected.mean)
    for ln, (_, r) in zip(fits, results):
        x = np.asarray(ln.get_xdata())
        lo, hi = r.kww.fit_range
        assert x.min() >= lo - 1e-12 and x.max() <= hi + 1e-12 and lo >= 1.0
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert f"T = 300 {expect[2]}" in legend and "KWW" in legend and expect[1] in legend
    assert len(ax.collections) == 2  # an error band per temperature (spread over glasses)


# ----------------------------------------------------------------------------- tempering
@pytest.mark.parametrize("isobaric", [False, True])
def test_tempering_figures_units(tmp_path, isobaric, capsys):
    out = tmp_path / "pt"
    argv = ["temper", "-N", "200", "--t-min", "1.5", "--t-max", "2.0", "-M", "3", "-K", "5",
            "-r", "20", "--equilibration-rounds", "5", "-o", str(out), "--no-progress"]
    if isobaric:
        argv += ["-P", "10"]
    assert main(argv) == 0
    figs = tempering_figures(str(out))
    temp_u = unit_text("epsilon_AA/k_B")
    a1, a2 = figs["pt_acceptance.png"].axes
    assert temp_u in a1.get_xlabel() and temp_u in a2.get_xlabel()
    walks = figs["pt_walks.png"].axes
    assert len(walks) == (3 if isobaric else 2)
    assert "MC sweeps" in walks[0].get_xlabel() and temp_u in walks[0].get_ylabel()
    assert unit_text("epsilon_AA") in walks[1].get_ylabel()
    if isobaric:
        assert "N/V" in walks[2].get_ylabel()
        assert unit_power("sigma_AA", -3) in walks[2].get_ylabel()
    assert len(plot_tempering(str(out))) == 2
