"""Hostile input at the seams: typos, NaN, wrong types, odd paths, NumPy scalars, help.

Every error path goes through the command line: one line ``swapmc: error: ...`` naming
the key (and the file and line where it came from), exit code 1, no traceback.
"""

import csv
import math
import os

import numpy as np
import pytest

from swapmc import System
from swapmc._toml import ConfigError, dumps_toml, load_toml_file, loads_toml
from swapmc.build import composition_counts, random_configuration
from swapmc.cli import main
from swapmc.config import differences, fingerprint, fingerprint_hash, resolve
from swapmc.io import write_extxyz
from swapmc.mc import MoveSettings
from swapmc.models import load_preset


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    """Every test runs in its own folder, so a command that wrongly starts a run cannot
    write into the checkout."""
    monkeypatch.chdir(tmp_path)


def _fails(capsys, argv, *needles):
    """Run the CLI, expect exit code 1 and a one-line error containing every needle."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("swapmc"), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def _toml(tmp_path, body, name="c.toml", preset="ka2-x10"):
    p = tmp_path / name
    p.write_text(f'preset = "{preset}"\n' + body)
    return str(p)


def _xyz(tmp_path, preset="ka", n=200, density=1.2, name="x.xyz", overlap=False):
    pre = load_preset(preset)
    counts = composition_counts(pre.composition, n, pre.model.species)
    s = random_configuration(counts, pre.model.species, density, seed=3,
                             min_distance=0.7 if preset == "ka" else 2.0)
    if overlap:
        pos = s.positions.copy()
        pos[7] = pos[3]  # a duplicated particle
        s = System(pos, s.species, s.species_names, s.box)
    path = tmp_path / name
    write_extxyz(path, s)
    return str(path)


# ------------------------------------------------------------------ item 1: unknown keys
@pytest.mark.parametrize("key,suggestion", [("temprature", "temperature"),
                                            ("presure", "pressure")])
def test_state_typo_is_refused_with_suggestion_file_and_line(tmp_path, capsys, key,
                                                             suggestion):
    cfg = _toml(tmp_path, f"[run]\nseed = 2\n[state]\n{key} = 0.5\n")
    _fails(capsys, ["run", cfg], f"unknown key '{key}'",
           f"did you mean '{suggestion}'", "[state]", "c.toml:5")
    assert not os.path.exists("swapmc-run")


@pytest.mark.parametrize("table,key,suggestion", [
    ("system", "melt_temprature", "melt_temperature"),
    ("run", "production_sweep", "production_sweeps"),
    ("output", "directroy", "directory"),
    ("diagnostics", "tau_alfa", "tau_alpha"),
    ("moves", "p_swp", "p_swap"),
    ("dopant", "fracton", "fraction"),
    ("model", "cutof_factor", "cutoff_factor"),
])
def test_every_run_table_rejects_unknown_keys(tmp_path, capsys, table, key, suggestion):
    cfg = _toml(tmp_path, f"[{table}]\n{key} = 1\n")
    _fails(capsys, ["run", cfg, "--no-progress"], f"'{key}'", f"did you mean '{suggestion}'",
           f"[{table}]", "c.toml:3")


def test_unknown_table_and_preset_get_suggestions(tmp_path, capsys):
    cfg = _toml(tmp_path, "[stat]\ntemperature = 0.5\n")
    _fails(capsys, ["run", cfg], "'stat'", "did you mean 'state'", "c.toml:2")
    _fails(capsys, ["run", "ka2-x1O"], "unknown preset 'ka2-x1O'", "did you mean 'ka2-x10'")


def test_tempering_and_library_tables_reject_unknown_keys(tmp_path, capsys):
    cfg = _toml(tmp_path, "[tempering]\nt_mni = 0.5\n")
    err = _fails(capsys, ["temper", cfg, "--mpi", "off", "--no-progress"], "'t_mni'",
                 "did you mean 't_min'", "c.toml:3")
    assert err.startswith("swapmc temper: error:")
    cfg = _toml(tmp_path, "[library]\nsample = 3\n", name="l.toml")
    _fails(capsys, ["library", "build", cfg, "--mpi", "off"], "'sample'",
           "did you mean 'samples'", "l.toml:3")


# --------------------------------------------------------------- item 5: NaN and infinity
@pytest.mark.parametrize("table,key,value", [
    ("state", "temperature", "nan"), ("state", "temperature", "inf"),
    ("state", "pressure", "nan"), ("state", "density", "inf"), ("state", "density", "nan"),
    ("moves", "displacement", "nan"), ("moves", "lnv_step", "inf"),
    ("run", "skin", "nan"), ("system", "melt_temperature", "inf"),
    ("system", "min_distance", "nan"),
])
def test_non_finite_numbers_are_refused_naming_the_key(tmp_path, capsys, table, key, value):
    cfg = _toml(tmp_path, f"[{table}]\n{key} = {value}\n")
    _fails(capsys, ["run", cfg, "--no-progress"], f"{key} must be a finite number",
           "c.toml:3")


@pytest.mark.parametrize("option", [["-T", "nan"], ["-T", "inf"], ["--temperature=-inf"],
                                    ["-P", "nan"]])
def test_non_finite_command_line_values_are_refused(capsys, option):
    _fails(capsys, ["run", *option, "--no-progress", "-o", "never-written"],
           "must be a finite number", "command line")
    assert not os.path.exists("never-written")


def test_nan_certification_threshold_is_refused(tmp_path, capsys):
    # min_decays = nan used to pass "<= 0" and certify any chain (NaN compares False).
    for key in ("min_decays", "max_fs_final", "max_drift_z", "max_crystalline_fraction"):
        cfg = _toml(tmp_path, f"[library]\n{key} = nan\n")
        _fails(capsys, ["library", "build", cfg, "--mpi", "off"],
               f"[library] {key} must be a finite number", "c.toml:3")


def test_nan_ladder_is_refused(capsys, tmp_path):
    _fails(capsys, ["temper", "--t-min", "nan", "--mpi", "off", "-o", str(tmp_path / "pt")],
           "t_min must be a finite temperature")
    _fails(capsys, ["temper", "--temperatures", "0.5,inf", "--mpi", "off",
                    "-o", str(tmp_path / "pt")], "temperatures must be a list of finite")


def test_move_settings_reject_nan_and_wrong_types():
    for kw in ({"displacement": float("nan")}, {"lnv_step": float("inf")},
               {"p_swap": float("nan")}, {"p_volume": float("nan")},
               {"displacement": "0.1"}):
        with pytest.raises(ConfigError, match="must be a finite number"):
            MoveSettings(**kw)
    with pytest.raises(ConfigError, match="class_weights"):
        MoveSettings(p_swap=0.1, swap_classes=[("A", "C")], class_weights=[float("nan")])


# -------------------------------------------------------------- item 9: types, files, ranges
@pytest.mark.parametrize("body,needles", [
    ('[state]\ntemperature = "0.5"\n', ["[state] temperature", "string '0.5'", "c.toml:3"]),
    ("[run]\nseed = 1.5\n", ["[run] seed must be an integer >= 0", "c.toml:3"]),
    ("[run]\nseed = -1\n", ["[run] seed must be an integer >= 0"]),
    ('[output]\ndirectory = ""\n', ["[output] directory must name a directory", "c.toml:3"]),
    ("[system]\nmin_distance = -1\n", ["[system] min_distance", "c.toml:3"]),
    ("[moves]\ndisplacement = nan\n", ["displacement", "c.toml:3"]),
    ("[output]\nprogress = 1\n", ["[output] progress must be true or false"]),
    ("[system]\nn = 100\n[state]\ndensity = 1e-9\n", ["[state] density = 1e-09 is too low",
                                                      "c.toml:5"]),
])
def test_bad_values_in_a_config_are_one_line_errors(tmp_path, capsys, body, needles):
    cfg = _toml(tmp_path, body)
    _fails(capsys, ["run", cfg], *needles)


def test_seed_minus_one_on_the_command_line(capsys):
    _fails(capsys, ["run", "--seed", "-1", "--no-progress", "-o", "never-written"],
           "[run] seed must be an integer >= 0, got -1")


def test_non_utf8_config_names_file_and_line(tmp_path, capsys):
    p = tmp_path / "latin1.toml"
    p.write_bytes('preset = "ka"\n# T in \u00b0C\n[state]\n'.encode("latin-1"))
    _fails(capsys, ["run", str(p)], "latin1.toml:2", "not UTF-8")


def test_dms_and_relax_options_checked_before_any_md(tmp_path, capsys):
    x = _xyz(tmp_path)
    common = ["--preset", "ka", "-T", "0.5", "-o", str(tmp_path / "o")]
    _fails(capsys, ["dms", x, *common, "--periods", "0"], "--periods must be > 0")
    _fails(capsys, ["dms", x, *common, "--periods", "10", "--amplitude", "nan"],
           "--amplitude must be a finite number")
    _fails(capsys, ["dms", x, "--preset", "ka", "-T", "inf", "--periods", "10"],
           "-T/--temperature must be a finite number")
    _fails(capsys, ["relax", x, *common, "--duration", "-1"], "--duration must be > 0")
    _fails(capsys, ["minimize", x, "--preset", "ka", "--fmax", "nan"],
           "--fmax must be a finite number")
    assert not (tmp_path / "o").exists()


def test_overlapping_particles_in_minimize_and_analyze(tmp_path, capsys):
    x = _xyz(tmp_path, overlap=True)
    _fails(capsys, ["minimize", x, "--preset", "ka", "-o", str(tmp_path / "m")],
           "x.xyz", "particles 3 and 7 overlap")
    _fails(capsys, ["analyze", x], "x.xyz", "particles 3 and 7 overlap")


def test_truncated_thermo_csv_in_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    d = tmp_path / "r"
    d.mkdir()
    (d / "thermo.csv").write_text(
        "# log\nsweep,phase,temperature,energy_per_particle,pressure,volume,density,"
        "acc_displacement,acc_swap,acc_volume,displacement_step\n"
        "50,melt,2.0,-4.6,19.3,416.6,1.2,0.4,nan,nan,0.1\n100,melt,2.0,-4.")
    _fails(capsys, ["plot", str(d)], "thermo.csv:4", "truncated")
    (d / "thermo.csv").write_text("")
    _fails(capsys, ["plot", str(d)], "thermo.csv", "no header")


def test_missing_configuration_file_for_analyze(tmp_path, capsys):
    _fails(capsys, ["analyze", str(tmp_path / "absent.xyz")], "absent.xyz")


def test_usage_errors_keep_exit_code_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "-N", "many"])
    assert info.value.code == 2


# ------------------------------------------------------------- item 11: output path spelling
def test_output_directory_spelling_does_not_change_the_fingerprint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spellings = ["r", "r/", "./r", "r//", str(tmp_path / "r")]
    cfgs = [resolve(None, {"output": {"directory": d}}) for d in spellings]
    assert {fingerprint_hash(c) for c in cfgs} == {fingerprint_hash(cfgs[0])}
    assert not differences(fingerprint(cfgs[1]), fingerprint(cfgs[4]))
    assert cfgs[1]["output"]["directory"] == "r"


def test_rerun_with_other_spelling_resumes_and_refusal_keeps_data(tmp_path, capsys,
                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["run", "ka2-x01", "-N", "200", "-s", "20", "--equilibration-sweeps", "10",
            "--no-progress"]
    assert main([*base, "-o", "r/"]) == 0
    capsys.readouterr()
    # Same run spelled differently, with a different output cadence: resumed, not refused.
    assert main([*base, "-o", "./r", "--trajectory-every", "10"]) == 0
    assert "(resumed)" in capsys.readouterr().out
    assert main([*base, "-o", str(tmp_path / "r")]) == 0
    assert "(resumed)" in capsys.readouterr().out
    err = _fails(capsys, [*base, "-o", "r", "-T", "0.9"], "belongs to a different run",
                 "state.temperature")
    assert "delete" not in err.lower()
    assert (tmp_path / "r" / "checkpoint.npz").exists()


# --------------------------------------------------------------- item 15: NumPy scalars out
def test_numpy_scalars_are_written_as_plain_toml():
    text = dumps_toml({"state": {"temperature": np.float64(0.6), "n": np.int64(3),
                                 "flag": np.bool_(True), "list": [np.float32(0.5)],
                                 "array": np.array([1.0, 2.0])}})
    assert "np." not in text
    assert loads_toml(text) == {"state": {"temperature": 0.6, "n": 3, "flag": True,
                                          "list": [0.5], "array": [1.0, 2.0]}}


def test_python_caller_with_numpy_temperature_gets_a_loadable_config(tmp_path):
    from swapmc.run import run

    out = tmp_path / "o"
    run(None, {"state": {"temperature": np.float64(0.9)}, "system": {"n": 200},
               "run": {"equilibration_sweeps": 5, "production_sweeps": 5},
               "output": {"directory": str(out), "progress": False}}, log=lambda *a: None)
    cfg = load_toml_file(out / "config.toml")
    assert cfg["state"]["temperature"] == 0.9
    assert resolve(str(out / "config.toml"))["state"]["temperature"] == 0.9


def test_analyze_csv_holds_plain_numbers(tmp_path, capsys):
    x = _xyz(tmp_path)
    out = tmp_path / "s.csv"
    assert main(["analyze", x, "-o", str(out)]) == 0
    with open(out) as fh:
        rows = list(csv.reader(ln for ln in fh if not ln.startswith("#")))
    assert rows[0] == ["pair", "kind", "x", "y"]
    values = [float(v) for r in rows[1:] for v in r[2:]]
    assert len(values) > 100 and all(math.isfinite(v) for v in values)


# ---------------------------------------------------------------- item 17: help and seams
def test_swapmc_alone_prints_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: swapmc" in out and "run" in out and "temper" in out


@pytest.mark.parametrize("command,needles", [
    ("run", ["production sweeps (default: 5000)", "number of particles (default: 500)",
             "epsilon_AA/k_B (LJ) or K (EAM)", "GPa", "(default: swapmc-run)"]),
    ("temper", ["(default: 8)", "(default: 10)", "GPa"]),
    ("minimize", ["(default: 1e-06)", "eV/Å", "(default: 100000)"]),
    ("dms", ["(default: 0.01)", "(default: 7)", "tau_LJ or ps"]),
    ("relax", ["(default: 0.02)", "(default: 4)", "tau_LJ or ps"]),
    ("analyze", ["inverse length"]),
])
def test_help_gives_defaults_and_units(capsys, command, needles):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for needle in needles:
        assert needle in out, (needle, out)


def test_library_build_help_gives_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["library", "build", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "[library] samples; default: 4)" in out and "default: glasses.sqlite)" in out


def test_output_cadence_may_change_on_restart():
    a = resolve(None)
    b = resolve(None, {"output": {"thermo_every": 10, "trajectory_every": 100,
                                  "checkpoint_every": 50, "progress": False}})
    assert fingerprint_hash(a) == fingerprint_hash(b)
    c = resolve(None, {"run": {"energy_check_every": 7}})
    assert fingerprint_hash(a) != fingerprint_hash(c)


def test_md_commands_take_the_model_of_the_run_that_wrote_the_file(tmp_path):
    from swapmc.md.cli import load_preset_of

    d = tmp_path / "cuzr-run"
    d.mkdir()
    x = _xyz(d, preset="cu64zr36", n=256, density=0.0627, name="final.xyz")
    (d / "config.toml").write_text('preset = "cu64zr36"\n[system]\nn = 256\n')
    pre, label = load_preset_of(None, None, [x])
    assert label == "cu64zr36" and pre.model.kind == "eam"
    # Without a config.toml beside it, the default preset as before.
    y = _xyz(tmp_path)
    assert load_preset_of(None, None, [y])[1] == "ka2-x10"
    assert load_preset_of("ka", None, [x])[1] == "ka"


def test_relative_init_is_taken_from_the_config_folder(tmp_path, monkeypatch):
    sub = tmp_path / "project"
    sub.mkdir()
    x = _xyz(sub, name="start.xyz")
    cfg = sub / "c.toml"
    cfg.write_text('preset = "ka"\n[system]\ninit = "start.xyz"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    resolved = resolve(str(cfg))
    assert os.path.samefile(resolved["system"]["init"], x)
    # A command-line --init stays relative to the working directory.
    assert resolve(str(cfg), {"system": {"init": "here.xyz"}})["system"]["init"] == "here.xyz"


def test_relative_potential_file_is_taken_from_the_config_folder(tmp_path, monkeypatch):
    from swapmc.io.setfl import write_setfl
    from swapmc.models.eam import zjw_potential
    from swapmc.models.presets import load_preset_file

    sub = tmp_path / "project"
    sub.mkdir()
    write_setfl(sub / "cuzr.eam.alloy", zjw_potential().setfl)
    text = ('preset = "cu64zr36"\n[model]\nkind = "eam"\nfile = "cuzr.eam.alloy"\n')
    (sub / "c.toml").write_text(text)
    (sub / "p.toml").write_text('base = "cu64zr36"\n' + text.split("\n", 1)[1])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    resolved = resolve(str(sub / "c.toml"))
    assert os.path.samefile(resolved["model"]["file"], sub / "cuzr.eam.alloy")
    preset = load_preset_file(str(sub / "p.toml"))
    assert preset.model.n_species == 2
    # Not found next to the file: the message names the path it looked at.
    (sub / "cuzr.eam.alloy").unlink()
    rc = main(["run", str(sub / "c.toml"), "--sweeps", "10", "-o", "r"])
    assert rc == 1


@pytest.mark.parametrize("field,value", [("min_decays", math.nan), ("max_drift_z", math.inf),
                                         ("max_fs_final", 1.5), ("drift_blocks", 1),
                                         ("max_crystalline_fraction", -0.1)])
def test_certification_criteria_check_themselves(field, value):
    # Python callers bypass the [library] table's checks; a NaN threshold certifies anything.
    from swapmc.library import Criteria

    with pytest.raises(ValueError, match=field):
        Criteria(**{field: value})


def test_library_fraction_thresholds_above_one_name_the_line(tmp_path, capsys):
    cfg = tmp_path / "lib.toml"
    cfg.write_text('preset = "ka2-x10"\n[library]\nsamples = 1\nmax_fs_final = 2.0\n')
    assert main(["library", "build", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "lib.toml:4" in err and "max_fs_final" in err and "Traceback" not in err
