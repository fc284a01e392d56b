"""``swapmc shear`` on glass-library samples, per-glass and per-family yielding summaries,
and options from a ``[shear]`` TOML table (with one-line errors naming file and line)."""

import csv
import importlib.util
import json
import math

import numpy as np
import pytest

from swapmc.analysis.yielding import aqs_summary
from swapmc.box import Box
from swapmc.build import composition_counts, random_configuration
from swapmc.cli import main
from swapmc.io import write_extxyz
from swapmc.library.store import Library
from swapmc.md import ForceField, fire
from swapmc.md.elasticity import elastic_constants
from swapmc.models import load_preset
from swapmc.system import System

HAS_MPL = importlib.util.find_spec("matplotlib") is not None
BUILD_A, BUILD_B = "a1" * 32, "b2" * 32
FAST = ["--step", "2e-3", "--max-strain", "0.03", "--ftol", "1e-6", "--steady-window",
        "0.01", "--modulus-strain", "0.01"]


def _rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Four KA2 glasses (N = 250) in two families: build A at T = 0.4 (ids 1, 2) and build
    B at T = 0.8 (ids 3, 4), plus a failed sample of build A (id 5)."""
    pre = load_preset("ka2-x10")
    model = pre.model
    counts = composition_counts(pre.composition, 250, model.species)
    ff = ForceField(model)
    path = str(tmp_path_factory.mktemp("lib") / "glasses.sqlite")
    with Library(path, create=True) as lib:
        for k, (build, temp, verdict) in enumerate([
                (BUILD_A, 0.4, "certified"), (BUILD_A, 0.4, "certified"),
                (BUILD_B, 0.8, "certified"), (BUILD_B, 0.8, "certified"),
                (BUILD_A, 0.4, "failed")]):
            s = random_configuration(counts, model.species, 1.2, seed=10 + k, min_distance=0.7)
            inherent = fire(s, ff, fmax=1e-3).system
            meta = {"build": build, "chain": k, "source": "chain", "model": "ka2-x10",
                    "model_hash": "h" * 64, "kind": "lj", "units": "lj",
                    "species_names": list(model.species),
                    "composition": {n: int(c) for n, c in zip(model.species, counts)},
                    "masses": list(model.masses), "elements": None, "n": 250,
                    "temperature": temp, "pressure": None, "density": 1.2, "seed": k,
                    "sweeps": 100, "production_sweeps": 50, "tau_alpha": 5.0, "decays": 10.0,
                    "verdict": verdict, "reasons": "" if verdict == "certified" else "why",
                    "energy": -7.0, "is_energy": inherent.n and -7.5}
            lib.add_sample(meta, s, inherent)
    return path


@pytest.fixture(scope="module")
def library_run(library, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "shear"
    code = main(["shear", "--library", library, *FAST, "-o", str(out)])
    return code, out


def test_library_samples_end_to_end(library_run, library, capsys):
    code, out = library_run
    assert code == 0
    # Certified samples only (the failed id 5 is left out), one directory each.
    ys = _rows(out / "yielding.csv")
    assert [r["sample"] for r in ys] == ["sample1", "sample2", "sample3", "sample4"]
    assert [r["family"] for r in ys] == ["a1a1a1a1 T=0.4"] * 2 + ["b2b2b2b2 T=0.8"] * 2
    assert {r["file"] for r in ys} == {f"{library}#{i}" for i in range(1, 5)}
    top = json.loads((out / "summary.json").read_text())
    pre = load_preset("ka2-x10")
    ff, names = ForceField(pre.model), pre.model.species
    with Library(library) as lib:
        species = {f"sample{i}": lib.get(i).inherent.species for i in range(1, 5)}
    assert set(top["families"]) == {"a1a1a1a1 T=0.4", "b2b2b2b2 T=0.8"}
    for rec in top["samples"]:
        where = out / rec["sample"]
        # The per-glass summary is that of its own written curve and drops.
        rows = _rows(where / "stress_strain.csv")
        drops = [{k: float(v) for k, v in d.items()} for d in _rows(where / "drops.csv")]
        for d in drops:
            d["step"] = int(d["step"])
        mine = aqs_summary([float(r["strain"]) for r in rows],
                           [float(r["stress"]) for r in rows], drops=drops,
                           steady_window=0.01, modulus_strain=0.01)
        y = rec["yielding"]
        assert y["peak_stress"] == mine.peak_stress and y["modulus"] == mine.modulus
        assert y["overshoot"] == pytest.approx(mine.overshoot, rel=1e-12, nan_ok=True)
        assert 0 <= y["localization_at_yield"] <= 1
        assert json.loads((where / "summary.json").read_text())["yielding"] == y
        # A KA glass: G of order 10-20 epsilon/sigma^3 on its elastic branches (the
        # least-squares slope of these tiny glasses may include a drop).
        assert y["modulus_elastic"] > 5.0
        # The Hessian modulus of the initial inherent structure (the AQS reference in the
        # checkpoint): G_xy = C_66 + sigma_yy, Born + non-affine, below the Born term; the
        # tangent of the elastic branch at strain 0, so at least the chord slope of the first
        # 2e-3 step, which the branch's softening keeps within ~20 % below it.
        e = rec["elasticity"]
        with np.load(where / "checkpoint.npz") as z:
            ref = System.from_unwrapped(z["reference_positions"], species[rec["sample"]], names,
                                        Box.from_matrix(z["reference_cell"]))
        assert y["modulus_hessian"] == e["modulus_hessian"] == pytest.approx(
            elastic_constants(ref, ff).G_xy, rel=1e-9)
        assert e["modulus_hessian"] < e["modulus_born"]
        chord = (float(rows[1]["stress"]) - float(rows[0]["stress"])) / float(rows[1]["strain"])
        assert chord <= 1.02 * e["modulus_hessian"] < 1.25 * chord
    # Family means over their glasses, with the 68 % half-width of 1 degree of freedom.
    fam = top["families"]["b2b2b2b2 T=0.8"]
    vals = [r["yielding"]["peak_stress"] for r in top["samples"] if r["family"] ==
            "b2b2b2b2 T=0.8"]
    assert fam["n_glasses"] == 2
    assert fam["peak_stress"]["mean"] == pytest.approx(np.mean(vals))
    assert fam["peak_stress"]["half68"] == pytest.approx(
        1.8373 * np.std(vals, ddof=1) / math.sqrt(2), rel=1e-3)
    fams = _rows(out / "families.csv")
    assert [f["family"] for f in fams] == ["a1a1a1a1 T=0.4", "b2b2b2b2 T=0.8"]
    assert float(fams[1]["peak_stress"]) == pytest.approx(np.mean(vals))
    for name in ("stress_strain_all.png", "localization.png"):
        assert (out / name).exists() == HAS_MPL
    assert (out / "sample1" / "d2min_drop_maps.png").exists() == (
        HAS_MPL and bool(_rows(out / "sample1" / "drops.csv")))


def test_library_table_on_stdout(library, tmp_path, capsys):
    out = tmp_path / "two"
    assert main(["shear", "--library", library, "--ids", "3", "5", *FAST, "-o",
                 str(out)]) == 0
    text = capsys.readouterr().out
    assert "G_AQS" in text and "eps_Y" in text and "overshoot" in text
    assert "families: mean ±" in text
    lines = [ln for ln in text.splitlines() if ln.startswith("sample") and ln[6].isdigit()]
    assert [ln.split()[0] for ln in lines] == ["sample3", "sample5"]  # explicit ids: any verdict
    assert "a1a1a1a1 T=0.4 (1 glass)" in text and "b2b2b2b2 T=0.8 (1 glass)" in text


def test_library_selection_by_build_and_temperature(library, tmp_path):
    out = tmp_path / "b"
    assert main(["shear", "--library", library, "--build", "b2b2", "--t-min", "0.7",
                 "--max-strain", "0.004", "--step", "2e-3", "--ftol", "1e-5",
                 "--steady-window", "0.002", "--modulus-strain", "0.004",
                 "-o", str(out)]) == 0
    assert [r["sample"] for r in _rows(out / "yielding.csv")] == ["sample3", "sample4"]


@pytest.mark.parametrize("extra, message", [
    ([], "give configuration files or --library"),
    (["--build", "a1"], "--build selects library samples"),
    (["--library", "missing.sqlite"], "no such library"),
    (["--library", "LIB", "--t-min", "5"], "no sample matches"),
    (["--library", "LIB", "--ids", "99"], "no sample with id 99"),
])
def test_library_selection_errors(library, tmp_path, capsys, extra, message):
    argv = ["shear", *[library if a == "LIB" else a for a in extra], "-o",
            str(tmp_path / "o")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- TOML
@pytest.fixture(scope="module")
def glass_file(tmp_path_factory):
    pre = load_preset("ka2-x10")
    counts = composition_counts(pre.composition, 250, pre.model.species)
    s = random_configuration(counts, pre.model.species, 1.2, seed=3, min_distance=0.7)
    s = fire(s, ForceField(pre.model), fmax=1e-3).system
    path = tmp_path_factory.mktemp("glass") / "glass.xyz"
    write_extxyz(str(path), s)
    return str(path)


def test_config_table_and_command_line_precedence(glass_file, tmp_path):
    cfg = tmp_path / "shear.toml"
    cfg.write_text("# AQS settings\n[shear]\nmax_strain = 0.01\nstep = 0.002  # coarse\n"
                   "ftol = 1e-6\nmode = \"pure\"\nsnapshot_strains = [0.004]\n"
                   "steady_window = 0.004\nmodulus_strain = 0.006\n")
    out = tmp_path / "a"
    assert main(["shear", glass_file, "--preset", "ka2-x10", "--config", str(cfg), "-o",
                 str(out)]) == 0
    rec = json.loads((out / "summary.json").read_text())
    assert rec["settings"]["mode"] == "pure" and rec["settings"]["step"] == 0.002
    assert rec["summary"]["max_strain"] == pytest.approx(0.01)
    assert (out / "strain_0.0040.xyz").exists()
    # The command line wins over the file, also when it gives an option's default value.
    out = tmp_path / "b"
    assert main(["shear", glass_file, "--preset", "ka2-x10", "--config", str(cfg),
                 "--mode", "shear", "--max-strain", "0.006", "-o", str(out)]) == 0
    rec = json.loads((out / "summary.json").read_text())
    assert rec["settings"]["mode"] == "shear"
    assert rec["summary"]["max_strain"] == pytest.approx(0.006)


@pytest.mark.parametrize("text, message", [
    ("[shear]\nmax_strian = 0.1\n", "shear.toml:2: unknown key 'max_strian' (did you mean "
                                    "'max_strain'?) in [shear]"),
    ("[shear]\nstep = 1e-3\nmax_strain = \"big\"\n", "shear.toml:3: [shear] max_strain must "
                                                     "be a number"),
    ("[shear]\n\nmax_strain = -0.1\n", "shear.toml:3: [shear] max_strain must be > 0"),
    ("[shear]\nmode = \"torsion\"\n", "shear.toml:2: [shear] mode must be one of shear, pure"),
    ("[shear]\nmax_iter = 1.5\n", "shear.toml:2: [shear] max_iter must be an integer"),
    ("[shear]\nsnapshot_strains = [0.1, -1]\n", "shear.toml:2: [shear] snapshot_strains must "
                                               "be >= 0"),
    ("[run]\nsteps = 1\n", "shear.toml:1: expected one [shear] table, found run"),
    ("[shear]\nstep = \n", "shear.toml: invalid TOML"),
])
def test_config_errors_are_one_line(glass_file, tmp_path, capsys, text, message):
    cfg = tmp_path / "shear.toml"
    cfg.write_text(text)
    assert main(["shear", glass_file, "--preset", "ka2-x10", "--config", str(cfg), "-o",
                 str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
