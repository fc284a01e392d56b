"""Glass library: certification, the SQLite store, builds (serial, resumed, MPI), crash
safety, concurrent writers, queries and export."""

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import MPIEXEC, REPO, subprocess_env

from swapmc import Box, System
from swapmc.analysis import crystalline_fraction, first_shell_cutoff
from swapmc.io import read_extxyz, read_lammps_data
from swapmc.library import (
    Criteria,
    Library,
    LibraryError,
    build_library,
    certify,
    energy_drift_z,
    export_samples,
)


# ------------------------------------------------------------------ certification
def _kww_decay(t, tau, beta=0.8):
    return np.exp(-((t / tau) ** beta))


def test_certify_accepts_a_decayed_stationary_chain():
    t = np.arange(0, 1000, 2.0)
    rng = np.random.default_rng(1)
    cert = certify(t, _kww_decay(t, 100.0), 2000, rng.normal(-7.0, 0.01, 400), 0.0)
    assert cert.verdict == "certified" and cert.reasons == []
    assert cert.tau_alpha == pytest.approx(100.0, rel=0.02)  # linear interpolation of 1/e
    assert cert.decays == pytest.approx(20.0, rel=0.02)


def test_certify_rejects_each_failure_with_its_reason():
    t = np.arange(0, 1000, 2.0)
    rng = np.random.default_rng(2)
    flat = rng.normal(-7.0, 0.01, 400)
    # Production only 5 tau_alpha long: fails, and a longer run could fix it.
    short = certify(t, _kww_decay(t, 100.0), 500, flat, 0.0)
    assert short.verdict == "failed" and short.needs_longer_run
    assert "production lasted 5" in short.reasons[0]
    # F_s stuck on a plateau above 1/e (arrested, glassy chain).
    plateau = 0.5 + 0.5 * _kww_decay(t, 20.0)
    stuck = certify(t, plateau, 100_000, flat, 0.0)
    assert stuck.verdict == "failed" and "did not reach 1/e" in stuck.reasons[0]
    assert math.isnan(stuck.tau_alpha) and stuck.needs_longer_run
    # Crossing 1/e but levelling off at 0.3: no full decay.
    partial = 0.3 + 0.7 * _kww_decay(t, 20.0)
    assert "no full decay" in " ".join(certify(t, partial, 100_000, flat, 0.0).reasons)
    # Aging: the energy still falls by 10 of its standard deviations over production. (The
    # certificate allows for correlations over tau_alpha = 20 samples, so a fall of one
    # standard deviation over these 20 tau_alpha would be within the noise.)
    aging = flat - np.linspace(0.0, 0.1, 400)
    drifting = certify(t, _kww_decay(t, 100.0), 2000, aging, 0.0)
    assert drifting.verdict == "failed" and drifting.drift_z < -4
    assert not drifting.needs_longer_run
    # Crystallised and not quenched.
    cryst = certify(t, _kww_decay(t, 100.0), 2000, flat, 0.3, quench_converged=False)
    assert len(cryst.reasons) == 2 and "crystallised" in cryst.reasons[0]
    assert "quench" in cryst.reasons[1]
    # Thresholds are configurable.
    lenient = certify(t, _kww_decay(t, 100.0), 500, flat, 0.0, criteria=Criteria(min_decays=4))
    assert lenient.verdict == "certified"


def test_energy_drift_z_distribution_and_power():
    """For independent samples, z = diff / se with 5 blocks per half and se from the
    scatter about a fitted line is Student-t with 8 degrees of freedom: mean 0,
    sd sqrt(8/6) = 1.155. With 4000
    replicates the sample sd has a standard error of ~0.015, so [1.10, 1.21] is a ~3.5 sigma
    band; P(|z| > 4) = 0.4 % for t_8, here checked to be below 1 %."""
    rng = np.random.default_rng(3)
    z = np.array([energy_drift_z(rng.normal(size=200), 5) for _ in range(4000)])
    assert abs(z.mean()) < 0.07
    assert 1.10 < z.std() < 1.21
    assert np.mean(np.abs(z) > 4) < 0.01
    # A steady drift of 2.5 sigma per 100 samples (expected z = -2.5 / (sqrt(2/5) / sqrt(20))
    # = -17.7) is found, and a weak one (a tenth of that) is mostly not.
    drifting = rng.normal(size=200) - 0.025 * np.arange(200)
    assert energy_drift_z(drifting, 5) < -8
    weak = [energy_drift_z(rng.normal(size=200) - 0.0025 * np.arange(200), 5)
            for _ in range(200)]
    assert np.mean(np.abs(weak) > 4) < 0.2
    assert math.isnan(energy_drift_z(np.ones(7), 5))
    with pytest.raises(ValueError):
        energy_drift_z(np.ones(20), 1)


# ------------------------------------------------------------------ crystallisation guard
def _lattice(kind, n_cells, spacing=1.0, noise=0.0, seed=0):
    basis = {"fcc": [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
             "bcc": [[0, 0, 0], [0.5, 0.5, 0.5]]}[kind]
    g = np.array([[i, j, k] for i in range(n_cells) for j in range(n_cells)
                  for k in range(n_cells)], float)
    pos = ((g[:, None, :] + np.array(basis)[None]) * spacing).reshape(-1, 3)
    pos += noise * np.random.default_rng(seed).normal(size=pos.shape)
    return pos, Box.cube(n_cells * spacing)


@pytest.mark.parametrize("kind", ["fcc", "bcc"])
def test_crystals_are_solid_like(kind):
    """Gaussian noise of 0.05 a per coordinate (rms displacement 0.087 a: 12 % of the fcc
    and 10 % of the bcc neighbour distance, i.e. at the Lindemann melting criterion) still
    leaves > 90 % solid-like particles."""
    pos, box = _lattice(kind, 6, noise=0.05)
    assert crystalline_fraction(pos, box) > 0.9
    # The cut-off closes the first shell: the 12 fcc neighbours at 0.707 a (next at a), or
    # the 8 + 6 bcc neighbours at 0.866 a and a (next at 1.414 a).
    low, high = {"fcc": (np.sqrt(0.5), 1.0), "bcc": (1.0, np.sqrt(2.0))}[kind]
    assert low < first_shell_cutoff(pos, box) < high


def test_disordered_configurations_are_not_solid_like(liquid_factory, ka2):
    liquid = liquid_factory(ka2, n=500, seed=4)
    assert crystalline_fraction(liquid.positions, liquid.box) < 0.02
    gas = np.random.default_rng(5).uniform(0, 6.0, size=(500, 3))
    assert crystalline_fraction(gas, Box.cube(6.0), cutoff=1.0) < 0.02
    with pytest.raises(NotImplementedError, match="orthorhombic"):
        crystalline_fraction(gas, Box([6.0, 6.0, 6.0], [0.5, 0, 0]))


# ------------------------------------------------------------------ the store
def _system(n=50, seed=0, names=("A", "B")):
    rng = np.random.default_rng(seed)
    box = Box([5.0, 5.5, 6.0], [0.0, 0.0, 0.0])
    pos = rng.uniform(0, 1, (n, 3)) * box.lengths
    return System(pos, rng.integers(0, 2, n), names, box,
                  images=rng.integers(-3, 4, (n, 3)))


def _meta(chain, build="b" * 64, model="toy", temperature=0.5, verdict="certified", n=50):
    return {"build": build, "chain": chain, "source": "chain", "model": model,
            "model_hash": "h" * 64, "kind": "lj", "units": "lj", "species_names": ["A", "B"],
            "composition": {"A": 25, "B": 25}, "masses": [1.0, 1.0], "elements": None, "n": n,
            "temperature": temperature, "pressure": None, "density": 1.2, "seed": chain,
            "sweeps": 100, "production_sweeps": 50, "tau_alpha": 5.0, "decays": 10.0,
            "verdict": verdict, "reasons": "" if verdict == "certified" else "why",
            "energy": -1.0 - chain, "is_energy": -2.0 - chain}


def test_store_round_trip_queries_and_no_duplicates(tmp_path):
    path = str(tmp_path / "lib.sqlite")
    with Library(path, create=True) as lib:
        systems = {}
        for chain, (model, temp, verdict) in enumerate([
                ("toy", 0.40, "certified"), ("toy", 0.45, "failed"), ("toy", 0.50, "certified"),
                ("other", 0.40, "certified")]):
            systems[chain] = _system(seed=chain)
            sid = lib.add_sample(_meta(chain, model=model, temperature=temp, verdict=verdict),
                                 systems[chain], _system(seed=100 + chain))
            assert sid == chain + 1
        # The same (build, chain) again is ignored, whatever its content.
        assert lib.add_sample(_meta(0, temperature=9.0), _system(seed=9), None) is None
        assert lib.count() == {"certified": 3, "failed": 1}
    with Library(path) as lib:  # read-only
        ids = lambda **f: [s.id for s in lib.query(**f)]  # noqa: E731
        assert ids() == [1, 3, 4]
        assert ids(verdict="all") == [1, 2, 3, 4]
        assert ids(verdict="failed") == [2]
        assert ids(model="toy", t_max=0.45, verdict="all") == [1, 2]
        assert ids(t_min=0.45, t_max=0.5) == [3]
        assert ids(build="bbbb", n=50, limit=2) == [1, 3]
        assert ids(n=51) == []
        s = lib.get(1)
        assert s.meta["temperature"] == 0.40 and s.meta["composition"] == {"A": 25, "B": 25}
        got, ref = s.system, systems[0]
        for attr in ("positions", "species", "images"):
            assert np.array_equal(getattr(got, attr), getattr(ref, attr))
        assert got.box == ref.box and got.species_names == ref.species_names
        assert np.array_equal(s.inherent.positions, _system(seed=100).positions)
        with pytest.raises(LibraryError, match="no sample with id 99"):
            lib.get(99)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            lib.add_sample(_meta(7), _system(), None)
        assert lib.check() == "ok"


def test_store_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(LibraryError, match="no library at"):
        Library(str(tmp_path / "absent.sqlite"))
    bad = tmp_path / "notes.sqlite"
    bad.write_text("these are not the samples you are looking for\n" * 100)
    with pytest.raises(LibraryError, match="notes.sqlite: not a readable swapmc library"):
        Library(str(bad))
    with Library(str(tmp_path / "ok.sqlite"), create=True) as lib:
        with pytest.raises(ValueError, match="lacks"):
            lib.add_sample({"build": "x"}, _system(), None)
        with pytest.raises(ValueError, match="unknown sample metadata"):
            lib.add_sample({**_meta(0), "colour": "blue"}, _system(), None)


# A child process that stores samples in a loop and reports each commit on stdout.
_WRITER = r"""
import os, sys, numpy as np
sys.path[:0] = [{repo!r}, os.path.join({repo!r}, "tests")]
from tests.test_library import _meta, _system
from swapmc.library import Library
lib = Library({path!r}, create=True)
for chain in range({start}, {stop}):
    sid = lib.add_sample(_meta(chain, build={build!r}, n={n}), _system(n={n}, seed=chain),
                         _system(n={n}, seed=10**6 + chain))
    print(chain, sid, flush=True)
"""


def _writer(path, build, start, stop, n=3000):
    code = _WRITER.format(repo=REPO, path=path, build=build, start=start, stop=stop, n=n)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=subprocess_env())


def test_sigkill_mid_write_loses_nothing_committed(tmp_path):
    """Kill a writer at random moments (it stores 1000-particle samples as fast as it can,
    so most of its time is spent inside transactions); every sample it reported as stored
    is there with both structures intact, nothing half-written appears, and the file checks ok. Then
    rerunning the writer over the same chains completes the set without duplicates."""
    path = str(tmp_path / "lib.sqlite")
    rng = np.random.default_rng(6)
    reported = set()
    for _ in range(4):
        proc = _writer(path, "k" * 64, 0, 10**7, n=1000)
        # Wait for the writer's first reported sample (its start-up takes longer on a
        # loaded machine), then kill it at a random moment among its later commits.
        first = proc.stdout.readline()
        time.sleep(rng.uniform(0, 1.5))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        out = first + out
        assert proc.returncode == -signal.SIGKILL
        # Only complete lines count: the kill can land while a report is half-written, and
        # a sample whose report did not finish is not claimed as stored (it may be there).
        complete = out.split("\n")[:-1]
        reported |= {int(line.split()[0]) for line in complete if line.split()[1] != "None"}
        with Library(path) as lib:
            assert lib.check() == "ok"
            stored = {s.meta["chain"]: s for s in lib.query(verdict="all")}
            assert reported <= set(stored), "a reported sample is missing"
            for chain, s in stored.items():
                assert np.array_equal(s.system.positions, _system(1000, seed=chain).positions)
                assert np.array_equal(s.inherent.images,
                                      _system(1000, seed=10**6 + chain).images)
    assert len(reported) > 0
    done = _writer(path, "k" * 64, 0, 40, n=1000)
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    with Library(path) as lib:
        chains = [s.meta["chain"] for s in lib.query(verdict="all")]
    assert sorted(chains) == sorted(set(chains)) and set(range(40)) <= set(chains)


def test_concurrent_writers(tmp_path):
    """Three processes write interleaved chains of one build at the same time (each also
    retries the others' chains): every chain is stored exactly once, nobody errs."""
    path = str(tmp_path / "lib.sqlite")
    procs = [_writer(path, "c" * 64, k * 10, 30 + k * 10, n=500) for k in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    stored_by = [[int(line.split()[0]) for line in out.splitlines()
                  if line.split()[1] != "None"] for out, _ in outs]
    every = sorted(sum(stored_by, []))
    assert every == list(range(50))  # each chain stored by exactly one writer
    with Library(path) as lib:
        assert sorted(s.meta["chain"] for s in lib.query(verdict="all")) == list(range(50))
        assert lib.check() == "ok"


# ------------------------------------------------------------------ builds
TOML = """\
preset = "ka2-x10"
[state]
temperature = 1.0
[system]
n = 200
melt_sweeps = 50
[run]
seed = 5
equilibration_sweeps = 1500
production_sweeps = 1000
[library]
path = "{path}"
samples = {samples}
max_production_sweeps = 6000
"""


def _toml(tmp_path, name="lib", samples=3):
    path = tmp_path / f"{name}.toml"
    path.write_text(TOML.format(path=tmp_path / f"{name}.sqlite", samples=samples))
    return str(path)


def _summary(path, build=None):
    with Library(path) as lib:
        return {s.meta["chain"]: (s.meta["energy"], s.meta["is_energy"], s.meta["verdict"],
                                  s.meta["production_sweeps"])
                for s in lib.query(verdict="all", build=build)}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("built")
    cfg = _toml(tmp, samples=3)
    lines = []
    result = build_library(cfg, log=lines.append)
    return tmp, cfg, result, lines


def test_build_makes_certified_quenched_samples(built):
    """At T = 1.0 (tau_alpha ~ 300 sweeps) 1000 production sweeps are too short, so every
    chain is extended to >= 10 tau_alpha and then certified; the stored inherent structure
    is a minimum whose energy FIRE reproduces."""
    from swapmc.md.forcefield import ForceField
    from swapmc.md.minimize import fire
    from swapmc.models import load_preset

    tmp, cfg, result, lines = built
    assert result.counts == {"certified": 3, "failed": 0} and len(result.made) == 3
    ff = ForceField(load_preset("ka2-x10").model)
    with Library(result.path) as lib:
        for s in lib.samples(model="ka2-x10", t_max=1.0):
            m = s.meta
            assert m["production_sweeps"] > 1000 and m["decays"] >= 10
            assert m["sweeps"] == 50 + 1500 + m["production_sweeps"]
            assert m["n"] == 200 and m["composition"] == {"A": 140, "B": 40, "C": 20}
            assert m["is_energy"] < m["energy"] and m["is_max_force"] < 1e-6
            again = fire(s.inherent, ff, fmax=1e-8)  # straight into the MD stage
            assert again.energy_per_particle == pytest.approx(m["is_energy"], abs=1e-9)
    # The work directories are gone once their samples are stored.
    assert not os.path.exists(str(tmp / "lib.sqlite") + ".work")
    assert any("certified" in line for line in lines)


def test_build_rerun_continues_without_duplicates(built, tmp_path):
    tmp, cfg, result, _ = built
    before = _summary(result.path, result.build)
    again = build_library(cfg, log=lambda *a: None)
    assert again.made == [] and _summary(result.path, result.build) == before
    more = build_library(cfg, {"library": {"samples": 4}}, log=lambda *a: None)
    assert len(more.made) == 1 and set(_summary(result.path, result.build)) == {0, 1, 2, 3}
    # A different protocol is a different build in the same file.
    other = build_library(cfg, {"library": {"samples": 1, "min_decays": 5.0}},
                          log=lambda *a: None)
    assert other.build != result.build
    with Library(result.path) as lib:
        assert len(lib.builds()) == 2
        assert len(lib.query(build=other.build[:10])) == 1


def test_build_killed_then_rerun_equals_uninterrupted(built, tmp_path):
    """SIGKILL a build in flight, rerun the same command: the library ends with exactly the
    samples (bit for bit) of an uninterrupted build of the same config."""
    _, _, ref, _ = built
    cfg = _toml(tmp_path, samples=3)
    cmd = [sys.executable, "-m", "swapmc", "library", "build", cfg]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=subprocess_env())
    lib_path = str(tmp_path / "lib.sqlite")
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(lib_path):
            try:
                with Library(lib_path) as lib:
                    if lib.count()["certified"] >= 1:
                        break
            except LibraryError:
                pass  # the build is creating the file's tables right now: look again
        time.sleep(0.05)
    time.sleep(0.5)  # into the next chain
    if proc.poll() is not None:
        pytest.fail("the build finished before it could be killed; make it longer")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    out = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert out.returncode == 0, out.stderr
    assert _summary(lib_path) == {
        k: v for k, v in _summary(ref.path, ref.build).items() if k < 3}
    with Library(lib_path) as lib, Library(ref.path) as rlib:
        for s in lib.query():
            r = rlib.query(build=s.meta["build"], verdict="all")[s.meta["chain"]]
            assert np.array_equal(s.inherent.positions, r.inherent.positions)


def test_build_config_errors(tmp_path):
    from swapmc._toml import ConfigError

    cfg = _toml(tmp_path)
    with pytest.raises(ConfigError, match=r"unknown key 'sample' \(did you mean 'samples'\?\)"):
        build_library(cfg, {"library": {"sample": 3}})
    with pytest.raises(ConfigError, match="max_production_sweeps = 10 is below"):
        build_library(cfg, {"library": {"max_production_sweeps": 10}})
    with pytest.raises(ConfigError, match="samples must be a positive integer"):
        build_library(cfg, {"library": {"samples": 0}})


@pytest.mark.mpi
def test_mpi_build_matches_serial(built, tmp_path):
    """mpiexec -n 2: the chains are shared between two ranks that write to one file; the
    samples equal the serial build's (seeds depend on the chain, not the rank)."""
    if not os.path.exists(MPIEXEC):
        pytest.skip(f"no mpiexec next to {sys.executable} (pip install 'swapmc[mpich]')")
    pytest.importorskip("mpi4py")
    _, _, ref, _ = built
    cfg = _toml(tmp_path, samples=3)
    cmd = [MPIEXEC, "-n", "2", sys.executable, "-m", "swapmc", "library", "build", cfg]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), timeout=300)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"mpiexec -n 2 hung: {err}")
    assert out.returncode == 0, out.stderr
    assert "3 to make on 2 process(es)" in out.stdout
    assert out.stdout.count("holds 3 certified") == 1  # rank 0 prints, rank 1 does not
    assert _summary(str(tmp_path / "lib.sqlite")) == {
        k: v for k, v in _summary(ref.path, ref.build).items() if k < 3}


# ------------------------------------------------------------------ export and CLI
def test_export_round_trip(built, tmp_path):
    _, _, result, _ = built
    with Library(result.path) as lib:
        samples = lib.query(limit=2)
        files = export_samples(lib, samples, str(tmp_path / "ex"),
                               structures=("equilibrium", "inherent"))
        # + index.csv, the model's in-<hash>.lammps and its five protocol inputs
        assert len(files) == 2 * 2 * 2 + 2 + 5
        for s in samples:
            for kind in ("equilibrium", "inherent"):
                ref = s.structure(kind)
                stem = tmp_path / "ex" / f"sample-{s.id}-{kind}"
                for back in (read_extxyz(str(stem) + ".xyz", species_names=("A", "B", "C")),
                             read_lammps_data(str(stem) + ".data",
                                              species_names=("A", "B", "C"))):
                    assert np.array_equal(back.positions, ref.positions)
                    assert np.array_equal(back.species, ref.species)
                    assert np.array_equal(back.images, ref.images)
                    assert back.box == ref.box
        # ASE/OVITO see element labels.
        assert "\nNi " in (tmp_path / "ex" / f"sample-{samples[0].id}-inherent.xyz").read_text()


def test_cli_ls_show_export_check(built, tmp_path, capsys):
    from swapmc.cli import main

    _, _, result, _ = built
    assert main(["library", "ls", result.path, "--t-max", "1.0", "--model", "ka2-x10"]) == 0
    out = capsys.readouterr().out
    assert "certified" in out and "E_IS/N" in out
    assert main(["library", "ls", result.path, "--t-max", "0.5"]) == 0
    assert "0 sample(s) match" in capsys.readouterr().out
    assert main(["library", "show", result.path, "1"]) == 0
    assert "tau_alpha" in capsys.readouterr().out
    assert main(["library", "export", result.path, "1", "2", "--format", "lammps",
                 "-o", str(tmp_path / "x")]) == 0
    listed = sorted(os.listdir(tmp_path / "x"))
    assert [f for f in listed if not f.startswith("in-")] == [
        "index.csv", "sample-1-inherent.data", "sample-2-inherent.data"]
    inputs = [f for f in listed if f.startswith("in-") and f.endswith(".lammps")]
    assert len(inputs) == 6  # the model and its protocols (in-<hash>.<protocol>.lammps)
    assert main(["library", "export", result.path, "999", "-o", str(tmp_path / "y")]) == 1
    assert "no sample(s) with id [999]" in capsys.readouterr().err
    assert main(["library", "check", result.path]) == 0
    assert "integrity ok" in capsys.readouterr().out
    assert main(["library", "ls", str(tmp_path / "nothing.sqlite")]) == 1
    assert "no library at" in capsys.readouterr().err


# ------------------------------------------------------------------ PT harvest
def _expected_harvest(pt, stride, every=50, per_round=5):
    """Frame indices harvest should take, worked out row by row from labels.csv: frames
    >= stride sweeps apart whose bottom replica was at the top since the previous one
    (since production began for the first); the default stride is production rounds x
    replicas / round trips completed in production, rounded up to a multiple of ``every``.
    """
    from swapmc.io import iter_extxyz
    from swapmc.tempering.output import read_table

    table = read_table(str(pt / "labels.csv"))
    m = sum(1 for k in table if k.startswith("r") and k[1:].isdigit())
    walk = {int(g): [int(table[f"r{r}"][i]) for r in range(m)]
            for i, g in enumerate(table["round"])}
    production = [int(g) for g, ph in zip(table["round"], table["phase"])
                  if ph == "production"]
    if stride is None:
        trips, previous_end = 0, [None] * m
        for g in sorted(walk):
            for r, slot in enumerate(walk[g]):
                if slot in (0, m - 1):
                    if slot == 0 and previous_end[r] == m - 1 and g >= production[0]:
                        trips += 1
                    previous_end[r] = slot
        stride = every * math.ceil(len(production) * m / trips * per_round / every)
    taken, last_sweep, since = [], None, production[0] - 1
    for index, frame in enumerate(iter_extxyz(str(pt / "trajectories" / "T00.xyz"),
                                              species_names=("A", "B", "C"))):
        sweep, g = int(frame.info["sweep"]), int(frame.info["round"])
        if last_sweep is not None and sweep - last_sweep < stride:
            continue
        bottom = walk[g].index(0)
        if any(walk[h][bottom] == m - 1 for h in range(since + 1, g + 1)):
            taken.append(index)
            last_sweep, since = sweep, g
    return taken


def test_harvest_lowest_temperature_of_tempering(tmp_path):
    """Frames of T00.xyz at least one round-trip time apart, whose bottom replica visited
    the top since the previous one, become samples; too few round trips fail them;
    rerunning adds nothing; the stored structures are the frames."""
    from swapmc._toml import ConfigError
    from swapmc.io import iter_extxyz
    from swapmc.library import harvest_tempering
    from swapmc.tempering.driver import temper

    pt = tmp_path / "pt"
    run = temper("ka2-x10", {
        "system": {"n": 200, "melt_sweeps": 50}, "run": {"seed": 3},
        "tempering": {"t_min": 0.8, "t_max": 1.2, "n_replicas": 4, "exchange_every": 5,
                      "rounds": 400, "equilibration_rounds": 20},
        "output": {"directory": str(pt), "trajectory_every": 50, "progress": False}},
        log=lambda *a: None)
    trips = run.summary["round_trips"]
    lib_path = str(tmp_path / "lib.sqlite")
    strict = harvest_tempering(str(pt), lib_path, min_round_trips=trips["total"] + 1,
                               log=lambda *a: None)
    assert strict.counts["certified"] == 0 and strict.counts["failed"] >= 1
    with Library(lib_path) as lib:
        assert ([s.meta["chain"] for s in lib.query(build=strict.build, verdict="failed")]
                == _expected_harvest(pt, None))
    assert harvest_tempering(str(pt), lib_path, min_round_trips=trips["total"] + 1,
                             log=lambda *a: None).made == []
    ok = harvest_tempering(str(pt), lib_path, stride=400, min_round_trips=1,
                           log=lambda *a: None)
    assert ok.build != strict.build
    frames = list(iter_extxyz(str(pt / "trajectories" / "T00.xyz"),
                              species_names=("A", "B", "C")))
    with Library(lib_path) as lib:
        samples = lib.query(build=ok.build, verdict="all")
        assert len(samples) == ok.counts["certified"] + ok.counts["failed"] >= 2
        assert [s.meta["chain"] for s in samples] == _expected_harvest(pt, 400)
        assert ok.counts["certified"] >= 1
        sweeps = [s.meta["sweeps"] for s in samples]
        assert min(np.diff(sweeps)) >= 400
        for s in samples:
            assert s.meta["source"] == "tempering" and s.meta["temperature"] == 0.8
            assert s.meta["round_trips"] == trips["total"] and s.meta["tau_alpha"] is None
            frame = frames[s.meta["chain"]]
            assert np.array_equal(s.system.positions, frame.positions)
            assert s.meta["is_energy"] < s.meta["energy"]
    os.remove(pt / "summary.json")
    with pytest.raises(ConfigError, match="missing summary.json"):
        harvest_tempering(str(pt), lib_path)


def test_older_file_gains_new_nullable_columns(tmp_path):
    path = str(tmp_path / "old.sqlite")
    with Library(path, create=True) as lib:
        lib.add_sample(_meta(0), _system(), None)
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE samples DROP COLUMN round_trips")  # as written before it existed
    db.commit()
    db.close()
    with Library(path, create=True) as lib:
        assert lib.get(1).meta["round_trips"] is None
        assert lib.add_sample({**_meta(1), "round_trips": 12}, _system(), None) == 2
        assert lib.get(2).meta["round_trips"] == 12


def test_eam_build_in_metal_units(tmp_path):
    """A doped Cu-Zr chain at 1500 K and P = 0: F_s is measured at the first S(q) peak in
    Å^-1 (~2.7-3.0 for Cu-Cu, not an LJ-unit value), the sample is certified, and export
    writes the exact potential next to the data files."""
    cfg = tmp_path / "cuzr.toml"
    cfg.write_text(f"""preset = "cu50zr50-x10"
[state]
temperature = 1500.0
[system]
n = 250
melt_sweeps = 20
[run]
equilibration_sweeps = 300
production_sweeps = 600
[library]
path = "{tmp_path / 'cuzr.sqlite'}"
samples = 1
max_production_sweeps = 4000
""")
    result = build_library(str(cfg), log=lambda *a: None)
    assert result.counts == {"certified": 1, "failed": 0}
    with Library(result.path) as lib:
        (s,) = lib.query()
        m = s.meta
        assert m["units"] == "metal" and m["kind"] == "eam" and m["pressure"] == 0.0
        assert 2.4 < m["fs_q"] < 3.2
        assert m["acc_volume"] > 0 and 0.04 < m["density"] < 0.08
        files = export_samples(lib, [s], str(tmp_path / "ex"), formats=("lammps",))
    names = sorted(os.path.basename(f) for f in files)
    assert [n for n in names if n.startswith("potential-") and n.endswith(".eam.alloy")]
    index = (tmp_path / "ex" / "index.csv").read_text()
    assert "pair_style eam/alloy" in index and "Cu Zr X" in index
