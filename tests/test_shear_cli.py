"""``swapmc shear`` end to end: outputs, D²_min columns against an independent
recomputation from the written files, resume after a kill, metal units, and input errors
(one line on stderr, exit code 1)."""

import csv
import importlib.util
import json

import numpy as np
import pytest

from swapmc.analysis.nonaffine import d2min
from swapmc.build import composition_counts, lattice_configuration, random_configuration
from swapmc.cli import main
from swapmc.io import read_extxyz, write_extxyz
from swapmc.md import ForceField, fire
from swapmc.md.engine import NativeEngine
from swapmc.md.shear import deformation_gradient
from swapmc.models import load_preset

HAS_MPL = importlib.util.find_spec("matplotlib") is not None


@pytest.fixture(scope="module")
def glass_file(tmp_path_factory):
    """A KA2 glass of N = 250 (random insertion at rho = 1.2, FIRE quench)."""
    pre = load_preset("ka2-x10")
    counts = composition_counts(pre.composition, 250, pre.model.species)
    s = random_configuration(counts, pre.model.species, 1.2, seed=3, min_distance=0.7)
    s = fire(s, ForceField(pre.model), fmax=1e-3).system
    path = tmp_path_factory.mktemp("glass") / "glass.xyz"
    write_extxyz(str(path), s)
    return str(path)


def _rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_cli_aqs_end_to_end(glass_file, tmp_path, capsys):
    out = tmp_path / "aqs"
    code = main(["shear", glass_file, "--preset", "ka2-x10", "--step", "2e-3",
                 "--max-strain", "0.1", "--ftol", "1e-6", "--snapshot-strains", "0.05",
                 "-o", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "AQS, shear to strain 0.1" in text and "drop(s)" in text
    rows = _rows(out / "stress_strain.csv")
    assert len(rows) == 51 and float(rows[-1]["strain"]) == pytest.approx(0.1)
    assert all(r["converged"] == "1" for r in rows)
    drops = _rows(out / "drops.csv")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["units"]["stress"] == "epsilon_AA/sigma_AA^3"
    assert summary["settings"]["displacement_threshold"] == 0.1
    assert summary["summary"]["n_drops"] == len(drops) >= 1
    big = summary["summary"]["largest_drop"]
    assert big["stress_change"] == min(float(d["stress_change"]) for d in drops)
    for kind in ("final", "after_largest_drop", "across_largest_drop", "strain_0.0500"):
        loc = summary["localization"][kind]
        assert 0.0 <= loc["index"] <= 1.0 and loc["band_axis"] in ("x", "y")
        assert len(loc["y"]["profile"]) == 6  # round(250^(1/3))
    for name in ("reference.xyz", "final.xyz", "drop_before.xyz", "drop_after.xyz",
                 "strain_0.0500.xyz", "checkpoint.npz"):
        assert (out / name).exists(), name
    for name in ("stress_strain.png", "d2min.png", "d2min_drop.png"):
        assert (out / name).exists() == HAS_MPL
    header = (out / "drop_after.xyz").read_text().splitlines()[1]
    assert "d2min:R:1:u_na:R:3:u_na_norm:R:1:d2min_drop:R:1:u_na_drop_norm:R:1" in header
    assert 'd2min_unit="sigma_AA^2"' in header
    # The d2min column equals D²_min recomputed from the two written files.
    ref = read_extxyz(out / "reference.xyz")
    fin = read_extxyz(out / "final.xyz")
    col = np.array([float(line.split()[8]) for line in
                    (out / "final.xyz").read_text().splitlines()[2:]])
    want = d2min(ref.unwrapped_positions(), fin.unwrapped_positions(), ref.box.matrix,
                 fin.box.matrix, 1.5, deformation=deformation_gradient(0.1, "shear"))
    np.testing.assert_allclose(col, want, rtol=1e-9, atol=1e-12)


def test_cli_resume_after_kill(glass_file, tmp_path, monkeypatch, capsys):
    """A run killed at its 9th minimisation (checkpoints every 3 steps) and rerun gives the
    same tables as an uninterrupted run; a larger --max-strain then extends it."""
    args = ["shear", glass_file, "--preset", "ka2-x10", "--step", "2e-3", "--max-strain",
            "0.03", "--ftol", "1e-6", "--checkpoint-every", "3"]
    assert main(args + ["-o", str(tmp_path / "whole")]) == 0
    original = NativeEngine.minimize
    calls = []

    def dying(self, *a, **kw):
        calls.append(1)
        if len(calls) == 9:
            raise KeyboardInterrupt
        return original(self, *a, **kw)

    monkeypatch.setattr(NativeEngine, "minimize", dying)
    out = tmp_path / "killed"
    assert main(args + ["-o", str(out)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert len(_rows(out / "stress_strain.csv")) == 7  # steps 0-6 checkpointed
    monkeypatch.setattr(NativeEngine, "minimize", original)
    assert main(args + ["-o", str(out)]) == 0
    assert "resumed at 6/15" in capsys.readouterr().out
    for name in ("stress_strain.csv", "drops.csv"):
        assert (out / name).read_text() == (tmp_path / "whole" / name).read_text()
    assert json.loads((out / "summary.json").read_text())["resumed"] is True
    longer = [a if a != "0.03" else "0.04" for a in args]
    assert main(longer + ["-o", str(out)]) == 0
    rows = _rows(out / "stress_strain.csv")
    assert len(rows) == 21 and float(rows[-1]["strain"]) == pytest.approx(0.04)


def test_cli_rate(glass_file, tmp_path, capsys):
    out = tmp_path / "rate"
    code = main(["shear", glass_file, "--preset", "ka2-x10", "--protocol", "rate",
                 "--rate", "0.05", "-T", "0.3", "--max-strain", "0.01", "--block-strain",
                 "0.002", "--equilibration-steps", "50", "--sample-every", "2",
                 "-o", str(out)])
    assert code == 0
    assert "steady state" in capsys.readouterr().out
    rows = _rows(out / "stress_strain.csv")
    assert len(rows) == 5 and float(rows[-1]["strain_end"]) == pytest.approx(0.01)
    summary = json.loads((out / "summary.json").read_text())["summary"]
    assert summary["rate"] == 0.05 and summary["temperature"] == 0.3
    assert 0.1 < summary["mean_temperature"] < 0.6
    assert (out / "final.xyz").exists() and (out / "stress_strain.png").exists() == HAS_MPL


def test_cli_metal_units(tmp_path, capsys):
    """Cu50Zr50 on fcc sites (N = 256): stresses in GPa, Å-based defaults."""
    pre = load_preset("cu50zr50")
    counts = composition_counts(pre.composition, 256, pre.model.species)
    path = tmp_path / "cuzr.xyz"
    write_extxyz(str(path), lattice_configuration(counts, pre.model.species, pre.density,
                                                  seed=1))
    out = tmp_path / "out"
    assert main(["shear", str(path), "--preset", "cu50zr50", "--step", "2e-3",
                 "--max-strain", "0.004", "--ftol", "1e-4", "-o", str(out)]) == 0
    assert "GPa" in capsys.readouterr().out
    data = json.loads((out / "summary.json").read_text())
    assert data["units"]["stress"] == "GPa" and data["units"]["length"] == "Angstrom"
    assert data["settings"]["displacement_threshold"] == 0.25
    assert "d2min_cutoff=3.7" in (out / "final.xyz").read_text().splitlines()[1]


@pytest.mark.parametrize("extra,message", [
    (["--protocol", "rate", "-T", "0.3"], "--protocol rate needs --rate"),
    (["--rate", "0.1"], "--rate applies to --protocol rate only"),
    (["--step", "0"], "--step must be > 0"),
    (["--mode", "pure"], "cell too small"),
    (["--snapshot-strains", "0.5"], "exceeds --max-strain"),
])
def test_cli_errors(glass_file, tmp_path, capsys, extra, message):
    code = main(["shear", glass_file, "--preset", "ka2-x10", "-o", str(tmp_path / "e")]
                + extra)
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("swapmc: error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_error_missing_file_and_changed_settings(glass_file, tmp_path, capsys):
    assert main(["shear", str(tmp_path / "nope.xyz"), "--preset", "ka2-x10"]) == 1
    assert "no such configuration file" in capsys.readouterr().err
    out = str(tmp_path / "o")
    base = ["shear", glass_file, "--preset", "ka2-x10", "--step", "2e-3", "--max-strain",
            "0.004", "--ftol", "1e-5", "-o", out]
    assert main(base) == 0
    capsys.readouterr()
    assert main(base[:5] + ["1e-3"] + base[6:]) == 1
    err = capsys.readouterr().err
    assert "checkpoint.npz" in err and "step = 0.002 (now 0.001)" in err
    assert len(err.strip().splitlines()) == 1


def test_cli_several_configurations(glass_file, tmp_path, capsys):
    """Two inputs: one sub-directory each, a summary of both and the overlaid curves; a
    second file of the same name is refused."""
    other = tmp_path / "other.xyz"
    other.write_text(open(glass_file).read())
    out = tmp_path / "two"
    assert main(["shear", glass_file, str(other), "--preset", "ka2-x10", "--step", "2e-3",
                 "--max-strain", "0.004", "--ftol", "1e-5", "-o", str(out)]) == 0
    data = json.loads((out / "summary.json").read_text())
    assert [s["file"] for s in data["samples"]] == [glass_file, str(other)]
    for name in ("glass", "other"):
        assert len(_rows(out / name / "stress_strain.csv")) == 3
    # The same configuration gives the same curve.
    assert (out / "glass" / "stress_strain.csv").read_text() == \
        (out / "other" / "stress_strain.csv").read_text()
    assert (out / "stress_strain_all.png").exists() == HAS_MPL
    capsys.readouterr()
    same = tmp_path / "again" / "glass.xyz"
    same.parent.mkdir()
    same.write_text(open(glass_file).read())
    assert main(["shear", glass_file, str(same), "--preset", "ka2-x10",
                 "-o", str(tmp_path / "clash")]) == 1
    assert "distinct names" in capsys.readouterr().err


def test_cli_help_gives_defaults_and_units(capsys):
    with pytest.raises(SystemExit) as info:
        main(["shear", "--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for needle in ("(default: aqs)", "(default: 0.2)", "(default: 0.0001)",
                   "(default: 1e-08)", "epsilon_AA/sigma_AA or eV/Å", "1/tau_LJ or 1/ps",
                   "0.1 sigma_AA in LJ units, 0.25 Å in metal units",
                   "1.5 sigma_AA in LJ units, 3.7 Å in metal units", "(default: 1000)"):
        assert needle in out, needle
