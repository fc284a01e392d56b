"""scripts/speedup_curve.py: the analysis on synthetic results with known laws, exact resume
of an interrupted stage, and the --quick run end to end."""

import importlib.util
import json
import math
import os
import sys

import numpy as np
import pytest

from swapmc.analysis import FsTracker, default_wavenumber
from swapmc.analysis.tau_fits import MODELS
from swapmc.build import composition_counts, random_configuration
from swapmc.mc import MonteCarlo, MoveSettings
from swapmc.models import load_preset

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts",
                      "speedup_curve.py")


@pytest.fixture(scope="module")
def sc():
    spec = importlib.util.spec_from_file_location("speedup_curve", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["speedup_curve"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("speedup_curve", None)


def _row(mode, T, tau, rel_err):
    return {"T": T, "mode": mode, "tau": tau, "tau_err": rel_err * tau, "groups": 3,
            "bound": math.nan, "equil_sweeps": int(20 * tau), "prod_sweeps": int(10 * tau),
            "every": 1, "energy": -7.0, "energy_halves": [-7.0, -7.0], "acc_displacement": 0.4,
            "acc_swap": 0.001, "delta": 0.07, "wall": 1.0, "solid_fraction": 0.0,
            "fs_t": [0, 1], "fs": [1.0, 0.9]}


def test_analysis_recovers_known_laws(sc, tmp_path):
    # No-swap tau from an exact VFT law down to 0.45, swap tau from an exact Arrhenius law
    # down to 0.33, 1 % errors: the fits must return the laws and the speed-ups the ratios.
    vft = np.array([3.5, 1.5, 0.3])
    arr = np.array([4.0, 2.0])
    temps = [1.0, 0.7, 0.6, 0.5, 0.47, 0.45, 0.4, 0.36, 0.33]
    out = tmp_path / "res"
    out.mkdir()
    for T in temps:
        tau_s = math.exp(MODELS["arrhenius"][0](T, arr))
        (out / (sc._tag("swap", T) + ".json")).write_text(
            json.dumps(_row("swap", T, tau_s, 0.01)))
        if T >= 0.45:
            tau_n = math.exp(MODELS["vft"][0](T, vft))
            (out / (sc._tag("noswap", T) + ".json")).write_text(
                json.dumps(_row("noswap", T, tau_n, 0.01)))
    js = tmp_path / "r.json"
    assert sc.main(["--analyze-only", "--out", str(out), "--json", str(js),
                    "--temperatures", *map(str, temps), "--figure",
                    str(tmp_path / "f.png")]) == 0
    res = json.loads(js.read_text())
    vf = res["fits"]["noswap"]["vft"]["params"]
    np.testing.assert_allclose([vf["ln_tau_inf"], vf["A"], vf["T0"]], vft, rtol=1e-5)
    for row in res["table"]:
        T = row["T"]
        true = math.exp(MODELS["vft"][0](T, vft) - MODELS["arrhenius"][0](T, arr))
        if T >= 0.45:
            assert row["measured"]["speedup"] == pytest.approx(true, rel=1e-9)
            assert row["measured"]["ln_err"] == pytest.approx(0.01 * math.sqrt(2), rel=1e-6)
        else:
            assert row["measured"] is None
            assert row["extrapolated"]["vft"]["speedup"] == pytest.approx(true, rel=1e-4)
    tau0 = math.exp(MODELS["vft"][0](1.0, vft))
    t_g = vft[2] + vft[1] / (math.log(tau0 * 1e12) - vft[0])
    at = res["speedup_at_tg"]["vft"]["arrhenius"]
    assert at["T_g"] == pytest.approx(t_g, rel=1e-5)
    assert at["speedup"] == pytest.approx(
        tau0 * 1e12 / math.exp(MODELS["arrhenius"][0](t_g, arr)), rel=1e-3)
    assert "power_law" not in res["speedup_at_tg"]  # diverges at T_MCT: no T_g
    assert os.path.getsize(tmp_path / "f.png") > 10_000


def test_interrupted_stage_resumes_exactly(sc, tmp_path):
    preset = load_preset("ka2-x10")
    model = preset.model
    counts = composition_counts(preset.composition, 200, model.species)
    start = random_configuration(counts, model.species, preset.density, seed=5)
    q = default_wavenumber(preset.density)

    def stage(path, seed=7):
        mc = MonteCarlo(start, model, 1.0, moves=MoveSettings(**preset.moves), seed=seed)
        tracker = FsTracker(q, 5, model.n_species, model.species.index("A"))
        # window 1e9: the run ends at max_sweeps; checkpoint after every block.
        return sc.Stage(str(path), mc, 100, tracker, 1e9, 400, 0.0)

    whole = stage(tmp_path / "a.npz").run()

    broken = stage(tmp_path / "b.npz")
    calls = {"n": 0}
    original = broken.mc.sweep

    def dying_sweep(n):
        calls["n"] += 1
        if calls["n"] > 40:  # inside the production, after several checkpoints
            raise KeyboardInterrupt
        original(n)

    broken.mc.sweep = dying_sweep
    with pytest.raises(KeyboardInterrupt):
        broken.run()
    resumed = stage(tmp_path / "b.npz", seed=99).run()  # the stream comes from the file
    for key in ("prod_sweeps", "fs_t", "fs", "energy", "energy_halves", "delta"):
        assert resumed[key] == whole[key], key


def test_quick_run_end_to_end(sc, tmp_path, capsys):
    out, js = tmp_path / "run", tmp_path / "r.json"
    args = ["--quick", "--out", str(out), "--json", str(js), "--figure",
            str(tmp_path / "f.png")]
    assert sc.main(args) == 0
    text = capsys.readouterr().out
    assert text.startswith("# command: python scripts/speedup_curve.py --quick")
    res = json.loads(js.read_text())
    assert [r["T"] for r in res["swap"]] == list(sc.QUICK_TEMPERATURES)
    assert [r["T"] for r in res["noswap"]] == list(sc.QUICK_TEMPERATURES)
    for r in res["swap"] + res["noswap"]:
        assert r["tau"] > 0 and r["tau_err"] > 0 and r["prod_sweeps"] >= 6 * r["tau"]
    for r in res["swap"]:
        assert r["solid_fraction"] < 0.05
    # Swap relaxes at least as fast at the lowest quick temperature (1.5 combined sd).
    lo = [r for r in res["table"] if r["T"] == min(sc.QUICK_TEMPERATURES)][0]
    assert math.log(lo["measured"]["speedup"]) > -1.5 * lo["measured"]["ln_err"]
    # A second invocation finds every stage stored and reproduces the results.
    assert sc.main([*args[:-2]]) == 0
    assert json.loads(js.read_text())["table"] == res["table"]


def test_short_equilibration_repeats_the_production(sc, tmp_path):
    # Demanding 1000 tau of equilibration makes every swap stage "short": the production
    # must be repeated once from its final configuration, the first one counted as
    # equilibration and kept on file, and never repeated again.
    out = tmp_path / "run"
    args = ["--quick", "--temperatures", "1.5", "--min-equil-taus", "1000", "--out", str(out),
            "--measure-only"]
    assert sc.main(args) == 0
    first = json.loads((out / (sc._tag("swap", 1.5) + ".first.json")).read_text())
    second = json.loads((out / (sc._tag("swap", 1.5) + ".json")).read_text())
    assert second["repeated"] and not first.get("repeated")
    assert second["equil_sweeps"] == first["equil_sweeps"] + first["prod_sweeps"]
    assert second["first"]["tau"] == first["tau"] and second["tau"] > 0
    assert second["fs"] != first["fs"]
    assert sc.main(args) == 0  # stored and already repeated: nothing runs again
    assert json.loads((out / (sc._tag("swap", 1.5) + ".json")).read_text()) == second


def test_independent_runs_are_pooled_per_temperature(sc, tmp_path):
    # Two directories measure the same law at overlapping temperatures: the table pools them
    # (inverse-variance mean of ln tau), the fits use every run, the second adds new T.
    arr = np.array([4.0, 2.0])
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for d, temps, rel, scale in ((a, [1.0, 0.7, 0.5], 0.02, 1.0),
                                 (b, [0.7, 0.5, 0.45], 0.01, 1.03)):
        for T in temps:
            tau = scale * math.exp(MODELS["arrhenius"][0](T, arr))
            for mode in ("swap", "noswap"):
                (d / (sc._tag(mode, T) + ".json")).write_text(
                    json.dumps(_row(mode, T, (2.0 if mode == "noswap" else 1.0) * tau, rel)))
    (b / (sc._tag("swap", 0.7) + ".first.json")).write_text("{not read")
    js = tmp_path / "r.json"
    assert sc.main(["--analyze-only", "--out", str(a), "--more", str(b), "--json", str(js),
                    "--temperatures", "1.0", "0.7", "0.5", "--t-onset", "1.0",
                    "--arrhenius-max", "1.0"]) == 0
    res = json.loads(js.read_text())
    table = {r["T"]: r for r in res["table"]}
    assert sorted(table) == [0.45, 0.5, 0.7, 1.0]
    assert table[0.7]["runs_swap"] == 2 and table[1.0]["runs_swap"] == 1
    # Weights 1/0.02^2 and 1/0.01^2: mean ln tau = ln tau0 + (0 * 1 + ln 1.03 * 4) / 5.
    tau0 = math.exp(MODELS["arrhenius"][0](0.7, arr))
    assert table[0.7]["tau_swap"] == pytest.approx(tau0 * math.exp(0.8 * math.log(1.03)),
                                                   rel=1e-12)
    # Consistent within errors (a 3 % offset, sigma_ln 0.022): no chi2 inflation.
    assert table[0.7]["tau_swap_err"] / table[0.7]["tau_swap"] == pytest.approx(
        1 / math.sqrt(1 / 0.02 ** 2 + 1 / 0.01 ** 2), rel=1e-9)
    assert table[0.7]["measured"]["speedup"] == pytest.approx(2.0, rel=1e-9)
    assert len(res["swap"]) == 6 and len(res["noswap"]) == 6
