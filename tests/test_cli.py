import json

from swapmc.cli import main


def test_presets_listing(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("ka", "ka2-x01", "ka2-x10"):
        assert name in out


def test_preset_show(capsys):
    assert main(["presets", "ka2-x01"]) == 0
    assert "fraction = 0.01" in capsys.readouterr().out


def test_run_with_overrides_writes_outputs(tmp_path, capsys):
    out = tmp_path / "o"
    code = main(["run", "ka2-x01", "-N", "200", "-T", "0.9", "-s", "60",
                 "--equilibration-sweeps", "20", "-o", str(out), "--no-progress",
                 "--trajectory-every", "30"])
    assert code == 0
    text = capsys.readouterr().out
    assert "ka2-x01" in text and str(out) in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 200 and summary["temperature"] == 0.9
    assert summary["composition"] == {"A": 158, "B": 40, "C": 2}
    assert summary["units"]["energy"] == "epsilon_AA"
    for name in ("final.xyz", "final.data", "thermo.csv", "trajectory.xyz", "config.toml"):
        assert (out / name).exists(), name
    from swapmc.io import iter_extxyz, read_lammps_data

    frames = list(iter_extxyz(out / "trajectory.xyz"))
    assert len(frames) == 2
    data = read_lammps_data(out / "final.data")
    assert data.n == 200


def test_analyze_and_plot(tmp_path, capsys):
    import pytest

    out = tmp_path / "o"
    assert main(["run", "-N", "300", "-s", "200", "--equilibration-sweeps", "50", "--tau-alpha",
                 "-o", str(out), "--no-progress"]) == 0
    assert "tau_alpha" in capsys.readouterr().out
    assert main(["analyze", str(out / "final.xyz"), "-o", str(tmp_path / "s.csv")]) == 0
    text = capsys.readouterr().out
    # KA-type liquids at rho = 1.2: first peak of S_AA near q = 7.2-7.3, g_AA max near 1.1.
    line = next(ln for ln in text.splitlines() if "A-A:" in ln)
    q1 = float(line.split("q = ")[1].split(",")[0])
    assert 6.8 < q1 < 7.8
    pytest.importorskip("matplotlib")
    assert main(["plot", str(out)]) == 0
    assert (out / "thermo.png").exists() and (out / "fs.png").exists()


def test_import_does_not_load_mpi():
    import subprocess
    import sys

    code = "import sys, swapmc, swapmc.run, swapmc.cli; print('mpi4py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_eam_config_with_user_setfl_file(tmp_path, capsys):
    """A config can point [model] at any setfl file; a malformed one is reported with its
    name and line."""
    from swapmc.models import zjw_potential

    pot_file = tmp_path / "mine.eam.alloy"
    zjw_potential().write(pot_file)
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'preset = "cu64zr36"\n[model]\nkind = "eam"\nfile = "{pot_file}"\n'
        "[system]\nn = 200\nmelt_sweeps = 5\n[run]\nequilibration_sweeps = 5\n"
        f'production_sweeps = 10\n[output]\ndirectory = "{tmp_path / "o"}"\nprogress = false\n'
    )
    assert main(["run", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "cu64zr36" in out and "eV" in out and "GPa" in out
    lines = pot_file.read_text().splitlines()
    lines[7] = lines[7].replace("e", "x", 1)
    (tmp_path / "bad.eam.alloy").write_text("\n".join(lines) + "\n")
    cfg.write_text(cfg.read_text().replace(str(pot_file), str(tmp_path / "bad.eam.alloy")))
    assert main(["run", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "bad.eam.alloy:8" in err
