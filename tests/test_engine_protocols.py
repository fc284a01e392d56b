"""The MD protocols (NPT, DMS, step strain, static modulus) on the Engine interface.

1. On a force field the protocols run :class:`NativeEngine` in continuous mode and must
   reproduce, bit for bit, what they give when written directly on :class:`~swapmc.md.MD`
   (``legacy_protocols.py``: one MD object per stage): same seeds, same KA2 configurations,
   compared in the same process, so the comparison holds whatever the platform's floating
   point does to both.
2. A pure-Python engine (a viscoelastic continuum, no particles interacting) runs the same
   protocols and AQS: they use only the Engine interface, and return the moduli known
   analytically for it.
"""

import math

import legacy_protocols as legacy
import numpy as np
import pytest

from swapmc.analysis.yielding import aqs_summary
from swapmc.box import Box
from swapmc.build import composition_counts, lattice_configuration, random_configuration
from swapmc.md import ForceField, fire
from swapmc.md.engine import (
    Engine,
    MinimizeInfo,
    NativeEngine,
    RunSamples,
    deformed_cell,
    strained_cell,
)
from swapmc.md.protocols import (
    dms_sweep,
    npt_equilibrate,
    oscillatory_strain,
    static_modulus,
    step_strain_relaxation,
)
from swapmc.md.shear import AQS
from swapmc.models import load_preset
from swapmc.system import System


@pytest.fixture(scope="module")
def ka():
    pre = load_preset("ka2-x10")
    counts = composition_counts(pre.composition, 250, pre.model.species)
    ff = ForceField(pre.model)
    glasses = [fire(random_configuration(counts, pre.model.species, 1.2, seed=seed,
                                         min_distance=0.75), ff, fmax=1e-2,
                    max_steps=3000).system for seed in (3, 4)]
    return ff, glasses


def same(a, b) -> None:
    """Bit-identical arrays (NaN equal to NaN)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=True), np.max(np.abs(a - b))


# ----------------------------------------------------------------------------- identity
def test_npt_bit_identical(ka):
    ff, (s, _) = ka
    kw = dict(temperature=1.0, pressure=2.0, steps=200)
    a = npt_equilibrate(s, ff, rng=np.random.default_rng(11), **kw)
    b = legacy.npt_equilibrate(s, ff, rng=np.random.default_rng(11), **kw)
    for name in ("positions", "velocities", "images"):
        same(getattr(a.system, name), getattr(b.system, name))
    same(a.system.box.matrix, b.system.box.matrix)
    assert a.as_dict() == b.as_dict()


@pytest.mark.parametrize("kw", [
    dict(temperature=0.8, period=0.5, strain_amplitude=0.02, n_cycles=3,
         equilibration_steps=30, pressure=2.0, npt_steps=40, remap_velocities=True,
         sample_every=3),
    dict(temperature=0.8, period=0.4, strain_amplitude=0.02, n_cycles=3, mode="uniaxial",
         thermostat="langevin", equilibration_steps=25),
    dict(temperature=0.8, period=0.4, strain_amplitude=0.02, n_cycles=3, thermostat="none",
         redraw_velocities=True),
], ids=["npt-sllod", "uniaxial-langevin", "nve"])
def test_oscillation_bit_identical(ka, kw):
    ff, (s, _) = ka
    a = oscillatory_strain(s, ff, rng=np.random.default_rng(12), **kw)
    b = legacy.oscillatory_strain(s, ff, rng=np.random.default_rng(12), **kw)
    for name in ("t", "strain", "stress"):
        same(getattr(a, name), getattr(b, name))
    same(a.system.positions, b.system.positions)
    same(a.system.velocities, b.system.velocities)
    assert a.temperature == b.temperature
    assert a.result.as_dict() == b.result.as_dict()


def test_dms_sweep_bit_identical(ka):
    ff, glasses = ka
    kw = dict(omegas=[2 * math.pi / 0.4, 2 * math.pi / 0.6], temperatures=[0.8, 1.0],
              n_cycles=3, equilibration_steps=20, pressure=1.0, npt_steps=20)
    a = dms_sweep(glasses, ff, rng=np.random.default_rng(14), **kw)
    b = legacy.dms_sweep(glasses, ff, rng=np.random.default_rng(14), **kw)
    assert [r.as_dict() for r in a] == [r.as_dict() for r in b]
    for ra, rb in zip(a, b):
        for x, y in zip(ra.runs, rb.runs):
            same(x.stress, y.stress)


@pytest.mark.parametrize("kw", [
    dict(strain=0.02, duration=0.2, repeats=2, equilibration_steps=30,
         decorrelation_steps=10, sample_every=2, fit=False, pressure=1.0, npt_steps=30),
    dict(strain=0.02, mode="uniaxial", duration=0.1, repeats=1, equilibration_steps=20,
         decorrelation_steps=10, symmetric=False, fit=False, thermostat="langevin"),
], ids=["symmetric-npt", "uniaxial-langevin"])
def test_step_strain_bit_identical(ka, kw):
    ff, glasses = ka
    a = step_strain_relaxation(glasses, ff, temperature=1.0, rng=np.random.default_rng(15),
                               **kw)
    b = legacy.step_strain_relaxation(glasses, ff, temperature=1.0,
                                      rng=np.random.default_rng(15), **kw)
    for name in ("t", "curves", "stress", "stress_sem", "glass_curves"):
        same(getattr(a, name), getattr(b, name))
    assert a.density == b.density


@pytest.mark.parametrize("mode", ["shear", "uniaxial"])
def test_static_modulus_bit_identical(ka, mode):
    ff, (s, s2) = ka
    system = s if mode == "shear" else s2
    a = static_modulus(system, ff, 0.01, mode, fmax=1e-7)
    b = legacy.static_modulus(system, ff, 0.01, mode, fmax=1e-7)
    assert a.__dict__ == b.__dict__


def test_protocols_accept_a_native_engine(ka):
    """An engine in place of the force field: the same numbers as the force field gives
    when the engine has the same settings (here the defaults, continuous)."""
    ff, (s, _) = ka
    kw = dict(temperature=0.8, period=0.5, strain_amplitude=0.02, n_cycles=3,
              equilibration_steps=10)
    a = oscillatory_strain(s, ff, rng=np.random.default_rng(3), **kw)
    b = oscillatory_strain(s, NativeEngine(s, ff, continuous=True),
                           rng=np.random.default_rng(3), **kw)
    np.testing.assert_array_equal(a.stress, b.stress)
    with pytest.raises(ValueError, match="setting of the engine"):
        oscillatory_strain(s, NativeEngine(s, ff), dt=0.002, **kw)
    with pytest.raises(TypeError, match="ForceField or an Engine"):
        oscillatory_strain(s, object(), **kw)


# ----------------------------------------------------------------------------- mock engine
G0, G1, TAU, BULK = 5.0, 3.0, 0.2, 40.0


class ViscoelasticEngine:
    """A standard linear solid (Zener) continuum behind the Engine interface, in pure Python.

    Small-strain measures: eps = sym(F) - 1 with F = h h_ref^-1; Cauchy stress
    sigma = B tr(eps) 1 + 2 G0 dev(eps) + 2 G1 (dev(eps) - e_v), with the internal strain
    relaxing as d e_v / dt = (dev(eps) - e_v) / tau (exact update for a strain linear in
    time over each step). Particles only follow the cell affinely. Minimisation relaxes e_v
    fully (the quasistatic limit: modulus G0); a new engine (spawn) starts with e_v = 0.
    The barostat relaxes the volume exponentially (time tau_p) to the volume of the imposed
    pressure. Shear modulus: G0 + G1 instantaneous, G0 relaxed; G*(omega) =
    G0 + G1 i omega tau / (1 + i omega tau); uniaxial at constant volume: 3 G.
    """

    units = "lj"
    kB = 1.0

    def __init__(self, system, h_ref=None, dt=0.01):
        self.dt = dt
        self.n = system.n
        self.species = system.species.copy()
        self.names = system.species_names
        self.h = system.box.matrix.copy()
        self.h_ref = self.h.copy() if h_ref is None else np.array(h_ref)
        self.x = system.positions + system.images @ self.h.T
        self.ev = np.zeros((3, 3))
        self.temp = 0.0
        self.calls = []

    # ------------------------------------------------------------------ state
    def _strain(self, h=None):
        f = (self.h if h is None else h) @ np.linalg.inv(self.h_ref)
        return 0.5 * (f + f.T) - np.eye(3)

    @staticmethod
    def _dev(e):
        return e - np.trace(e) / 3.0 * np.eye(3)

    def positions(self):
        return self.x.copy()

    def set_positions(self, positions):
        self.x = np.array(positions, dtype=float)

    def cell(self):
        return self.h.copy()

    def set_cell(self, h, remap=True):
        h = np.array(h, dtype=float)
        if remap:
            self.x = self.x @ (h @ np.linalg.inv(self.h)).T
        self.h = h

    def check_cell(self, h):
        if np.linalg.det(np.asarray(h)) <= 0:
            raise ValueError("bad cell")

    def stress(self):
        e = self._strain()
        d = self._dev(e)
        return BULK * np.trace(e) * np.eye(3) + 2 * G0 * d + 2 * G1 * (d - self.ev)

    def energy(self):
        e = self._strain()
        d = self._dev(e)
        vol = np.linalg.det(self.h)
        return float(vol * (0.5 * BULK * np.trace(e) ** 2 + G0 * np.sum(d * d)
                            + G1 * np.sum((d - self.ev) ** 2)))

    def forces(self):
        return np.zeros((self.n, 3))

    def minimize(self, ftol, max_iter):
        self.calls.append("minimize")
        self.ev = self._dev(self._strain())
        return MinimizeInfo(self.energy(), 0.0, 0, True)

    def thermalize(self, temperature):
        self.temp = float(temperature)

    def system(self):
        s = System.from_unwrapped(self.x, self.species, self.names, Box.from_matrix(self.h))
        s.velocities = np.zeros((self.n, 3))
        return s

    def get_state(self):
        return {"x": self.x.copy(), "h": self.h.copy(), "ev": self.ev.copy()}

    def set_state(self, state):
        self.x, self.h, self.ev = (np.array(state[k]) for k in ("x", "h", "ev"))

    def close(self):
        self.calls.append("close")

    def spawn(self, system, rng):
        self.calls.append("spawn")
        child = ViscoelasticEngine(system, self.h_ref, self.dt)
        child.calls = self.calls
        return child

    # ------------------------------------------------------------------ dynamics
    def _step(self, h_new):
        """Advance dt with the cell moving linearly to h_new: exact e_v for a linear ramp."""
        a, b = self._dev(self._strain()), self._dev(self._strain(h_new))
        slope = (b - a) / self.dt
        u0 = a - self.ev
        u = slope * TAU + (u0 - slope * TAU) * math.exp(-self.dt / TAU)
        self.ev = b - u
        self.set_cell(h_new)

    def _sample(self, rows, t):
        rows.append((t, self.stress(), self.energy(), self.temp, np.linalg.det(self.h)))

    @staticmethod
    def _samples(rows):
        t, s, e, temp, v = (np.array(c) for c in zip(*rows)) if rows else [np.empty(0)] * 5
        return RunSamples(t, np.asarray(s).reshape(-1, 3, 3), e, temp, v)

    def _loop(self, steps, sample_every, progress, cell_at, rows):
        if progress is not None:
            progress(0)
        for k in range(1, int(steps) + 1):
            self._step(cell_at(k * self.dt))
            if k % sample_every == 0:
                self._sample(rows, k * self.dt)
            if progress is not None and (k % 10 == 0 or k == steps):
                progress(k)
        return self._samples(rows)

    def run(self, steps, *, temperature=None, mode=None, rate=0.0, sample_every=1,
            progress=None):
        self.calls.append("run")
        self.temp = temperature or 0.0
        h0 = self.h.copy()

        def cell_at(t):
            return deformed_cell(h0, rate * t, mode) if rate else h0

        return self._loop(steps, sample_every, progress, cell_at, [])

    def npt(self, steps, *, temperature, pressure, tau_p=None, compressibility=None,
            sample_every=1, progress=None):
        self.calls.append("npt")
        self.temp = temperature
        tau_p = 10 * self.dt if tau_p is None else tau_p
        target = 1.0 - pressure / (3 * BULK)  # isotropic stretch of zero mean pressure error
        s0 = self.h[0, 0] / self.h_ref[0, 0]
        h_unit = self.h / s0

        def cell_at(t):
            return h_unit * (target + (s0 - target) * math.exp(-t / tau_p))

        return self._loop(steps, sample_every, progress, cell_at, [])

    def scale_cell(self, factor):
        self.calls.append("scale_cell")
        self.set_cell(self.h * factor)

    def wiggle(self, steps, *, amplitude, omega, mode="shear", temperature=None,
               remap_velocities=True, sample_every=1, progress=None):
        self.calls.append("wiggle")
        self.temp = temperature or 0.0
        h0 = self.h.copy()
        rows = []
        self._sample(rows, 0.0)
        return self._loop(steps, sample_every, progress,
                          lambda t: strained_cell(h0, amplitude * math.sin(omega * t), mode),
                          rows)


@pytest.fixture
def solid():
    s = lattice_configuration([32], ("A",), 1.0, seed=0)
    return s, ViscoelasticEngine(s)


def test_mock_is_an_engine(solid):
    _, eng = solid
    assert isinstance(eng, Engine)


@pytest.mark.parametrize("mode, factor", [("shear", 1.0), ("uniaxial", 3.0)])
def test_dms_on_the_mock_engine(solid, mode, factor):
    """M' and M'' of the Zener solid at omega tau = 0.63, in shear and uniaxially (3 G)."""
    s, eng = solid
    period = 2.0
    omega = 2 * math.pi / period
    wt = omega * TAU
    calls = []
    run = oscillatory_strain(s, eng, temperature=0.1, period=period, strain_amplitude=0.001,
                             n_cycles=4, mode=mode, rng=np.random.default_rng(0),
                             step_progress=lambda *a: calls.append(a))
    r = run.result
    assert r.m_storage == pytest.approx(factor * (G0 + G1 * wt**2 / (1 + wt**2)), rel=2e-3)
    assert r.m_loss == pytest.approx(factor * G1 * wt / (1 + wt**2), rel=2e-3)
    assert "wiggle" in eng.calls and calls[-1][0] == calls[-1][1]
    rows = dms_sweep([s, s.copy()], eng, omegas=[omega], temperatures=[0.1, 0.2],
                     n_cycles=3, equilibration_steps=10, mode=mode)
    assert [r.n_samples for r in rows] == [2, 2]
    for row in rows:
        assert row.m_storage == pytest.approx(factor * (G0 + G1 * wt**2 / (1 + wt**2)),
                                              rel=2e-3)


def test_step_strain_on_the_mock_engine(solid):
    """M(t) = G0 + G1 exp(-t / tau): a KWW fit gives beta = 1, tau, Delta M = G1, M_r = G0."""
    s, eng = solid
    r = step_strain_relaxation([s, s.copy()], eng, temperature=0.1, strain=0.01,
                               duration=2.0, equilibration_steps=20, decorrelation_steps=10,
                               repeats=2, fit_from=0.0, rng=np.random.default_rng(1))
    expected = G0 + G1 * np.exp(-r.t / TAU)
    np.testing.assert_allclose(r.modulus, expected, rtol=1e-9)
    k = r.kww
    assert k is not None, r.kww_error
    assert k.beta == pytest.approx(1.0, rel=1e-4) and k.tau == pytest.approx(TAU, rel=1e-4)
    assert k.delta_modulus == pytest.approx(G1, rel=1e-4)
    assert k.residual_modulus == pytest.approx(G0, rel=1e-4)


def test_npt_and_static_modulus_on_the_mock_engine(solid):
    s, eng = solid
    v_ref = s.box.volume
    npt = npt_equilibrate(s, eng, temperature=0.1, pressure=1.2, steps=400,
                          barostat_tau=0.1, rng=np.random.default_rng(2))
    stretch = 1.0 - 1.2 / (3 * BULK)
    assert npt.volume == pytest.approx(v_ref * stretch**3, rel=1e-9)
    assert npt.density == pytest.approx(s.n / (v_ref * stretch**3), rel=1e-9)
    assert npt.pressure == pytest.approx(1.2, rel=1e-9)
    assert npt.system.box.volume == pytest.approx(npt.volume, rel=1e-12)
    assert eng.calls.count("npt") == 2 and "scale_cell" in eng.calls
    # Affine (unrelaxed) G0 + G1, relaxed G0; uniaxial 3 x.
    sm = static_modulus(s, eng, 0.001, "shear")
    assert sm.affine == pytest.approx(G0 + G1, rel=1e-9)
    assert sm.relaxed == pytest.approx(G0, rel=1e-9) and sm.converged
    sm = static_modulus(s, eng, 0.001, "uniaxial")
    assert sm.affine == pytest.approx(3 * (G0 + G1), rel=1e-3)
    assert sm.relaxed == pytest.approx(3 * G0, rel=1e-3)


def test_aqs_on_the_mock_engine(solid):
    """AQS is quasistatic: the relaxed modulus G0, no drops; the yielding summary's
    small-strain slope recovers it."""
    _, eng = solid
    res = AQS(eng, max_strain=0.01, step=1e-3).run()
    assert res.drops == []
    np.testing.assert_allclose(res.stress, G0 * res.strain, rtol=1e-9, atol=1e-12)
    # A stress rising to the end: the yield point (stress maximum) is the last state.
    assert res.peak.strain == pytest.approx(0.01) and res.peak.stress == res.stress[-1]
    summary = aqs_summary(res.strain, res.stress, res.energy, drops=res.drops,
                          steady_window=0.002, modulus_strain=0.005)
    assert summary.modulus == pytest.approx(G0, rel=1e-9)
    assert summary.modulus_elastic == pytest.approx(G0, rel=1e-9)
    assert summary.n_drops == 0 and math.isnan(summary.largest_drop_stress)
