"""``Engine.close()``: an engine releases what it holds when its owner says so, not when the
garbage collector gets to it. NativeEngine's close is a no-op; LammpsEngine's ends its LAMMPS
instance (on every rank); both are context managers; the protocols close every stage engine
they spawn, also when a stage fails."""

from __future__ import annotations

import numpy as np
import pytest

from swapmc.build import lattice_configuration
from swapmc.md import ForceField
from swapmc.md.engine import Engine, NativeEngine
from swapmc.md.protocols import (
    dms_sweep,
    npt_equilibrate,
    oscillatory_strain,
    static_modulus,
    step_strain_relaxation,
)
from swapmc.models import LJMixture


@pytest.fixture(scope="module")
def crystal():
    ff = ForceField(LJMixture(("A",), np.ones((1, 1)), np.ones((1, 1)),
                              np.full((1, 1), 2.5), (1.0,)))
    return ff, lattice_configuration([256], ("A",), 1.09, seed=0)


class SpyEngine(NativeEngine):
    """A native engine that records the engines spawned from it and their closes."""

    def __init__(self, *args, log=None, **kw):
        super().__init__(*args, **kw)
        self.log = [] if log is None else log
        self.closes = 0

    def spawn(self, system, rng):
        child = SpyEngine(system, self.forcefield, dt=self.dt, seed=rng, log=self.log)
        self.log.append(child)
        return child

    def close(self):
        self.closes += 1


def test_native_close_is_a_no_op_and_a_context_manager(crystal):
    ff, s = crystal
    engine = NativeEngine(s, ff)
    assert isinstance(engine, Engine)
    with engine as e:
        assert e is engine
        e0 = e.energy()
    engine.close()  # twice: harmless, and the engine still answers
    assert engine.energy() == e0


def _assert_all_closed_once(template):
    assert template.log, "the protocol spawned no engine"
    assert [e.closes for e in template.log] == [1] * len(template.log)
    assert template.closes == 0  # the caller's engine is the caller's to close


def test_protocols_close_every_stage_engine(crystal):
    ff, s = crystal
    rng = np.random.default_rng(0)
    t = SpyEngine(s, ff)
    dms_sweep([s, s], t, omegas=[2 * np.pi / 0.5], temperatures=[0.01], n_cycles=3,
              equilibration_steps=5, pressure=0.0, npt_steps=20, rng=rng)
    # Per glass: NPT, NVT, one oscillation.
    assert len(t.log) == 6
    _assert_all_closed_once(t)
    for run in (
        lambda e: step_strain_relaxation(s, e, temperature=0.01, duration=0.1, repeats=2,
                                         equilibration_steps=5, decorrelation_steps=5,
                                         fit=False, rng=rng),
        lambda e: npt_equilibrate(s, e, temperature=0.01, pressure=0.0, steps=10, rng=rng),
        lambda e: static_modulus(s, e, strain=0.01, fmax=1e-6),
    ):
        t = SpyEngine(s, ff)
        run(t)
        _assert_all_closed_once(t)


def test_a_failing_stage_still_closes_its_engine(crystal):
    """A strain beyond the tilt limit fails inside the oscillation stage: its engine (and
    the NPT stage's before it) are closed all the same."""
    ff, s = crystal
    t = SpyEngine(s, ff)
    with pytest.raises(ValueError, match="tilt"):
        oscillatory_strain(s, t, temperature=0.01, period=0.5, strain_amplitude=0.9,
                           pressure=0.0, npt_steps=10, rng=np.random.default_rng(1))
    assert len(t.log) == 2
    _assert_all_closed_once(t)


# ----------------------------------------------------------------------------- LAMMPS
def _need_lammps():
    from swapmc.md.engine_lammps import require_lammps

    try:
        require_lammps()
    except ImportError as err:
        pytest.skip(str(err))


@pytest.mark.lammps
def test_lammps_engine_closes_deterministically(crystal):
    """``with LammpsEngine(...)`` ends the LAMMPS instance on leaving; afterwards every
    call says the engine is closed; closing again is harmless."""
    _need_lammps()
    from swapmc.md.engine_lammps import LammpsEngine

    ff, s = crystal
    with LammpsEngine(s, ff) as engine:
        assert isinstance(engine, Engine)
        assert engine.energy() == pytest.approx(NativeEngine(s, ff).energy(), rel=1e-12)
        session = engine._session
        assert session.lmp is not None
    assert session.lmp is None
    with pytest.raises(ValueError, match="closed"):
        engine.energy()
    engine.close()


@pytest.mark.lammps
def test_protocols_close_their_lammps_stages(crystal, monkeypatch):
    """Every LAMMPS instance a protocol spawns is closed when its stage ends: after a DMS
    sweep with NPT and a relaxation only the caller's template instance is open."""
    _need_lammps()
    from swapmc.md.engine_lammps import LammpsEngine

    ff, s = crystal
    spawned = []
    spawn = LammpsEngine.spawn

    def spying(self, system, rng):
        child = spawn(self, system, rng)
        spawned.append(child)
        return child

    monkeypatch.setattr(LammpsEngine, "spawn", spying)
    with LammpsEngine(s, ff) as template:
        rng = np.random.default_rng(0)
        dms_sweep(s, template, omegas=[2 * np.pi / 0.5], temperatures=[0.01], n_cycles=3,
                  equilibration_steps=5, pressure=0.0, npt_steps=20, rng=rng)
        step_strain_relaxation(s, template, temperature=0.01, duration=0.1, repeats=1,
                               equilibration_steps=5, decorrelation_steps=5, fit=False,
                               rng=rng)
        assert len(spawned) == 3 + 4
        assert all(e._session.lmp is None for e in spawned)
        assert template._session.lmp is not None
    assert template._session.lmp is None
