"""Literature reference points (validation tier, marked ``physics``; CI runs it).

KA, rho = 1.2, cut-and-shift at 2.5 sigma_ab; equilibrium U/N and W/N from the RUMD3
reference data shipped with gamdpy (N = 4000 at T = 2.0; gamdpy's KA example at T = 0.8, whose
own tolerance is +-0.01 in U/N). Pressure P = rho (T + W/N).

Tolerance: 4 standard errors of the mean (blocking over 20 blocks, each much longer than the
energy autocorrelation time) plus a finite-size allowance of 0.005 in U/N (N = 500 vs 4000:
1/N corrections of the potential energy of dense LJ liquids are of order 1/N per particle)
and 0.03 in P.
"""

import numpy as np
import pytest

from swapmc.build import composition_counts, random_configuration
from swapmc.mc import MonteCarlo, MoveSettings
from swapmc.models import load_preset

pytestmark = pytest.mark.physics

REFERENCE = {  # T: (U/N, W/N)
    2.0: (-4.654, 14.098),
    0.8: (-6.346, 5.534),
}


def _blocked_mean(x, n_blocks=20):
    blocks = np.array([b.mean() for b in np.array_split(np.asarray(x), n_blocks)])
    return blocks.mean(), blocks.std(ddof=1) / np.sqrt(n_blocks)


@pytest.mark.parametrize("temperature", [2.0, 0.8])
def test_ka_energy_and_pressure_match_literature(temperature):
    ka = load_preset("ka")
    n = 500
    counts = composition_counts(ka.composition, n, ka.model.species)
    system = random_configuration(counts, ka.model.species, ka.density, seed=21)
    mc = MonteCarlo(system, ka.model, 2.0, seed=22)
    mc.equilibrate(300)
    mc.temperature = temperature
    mc.equilibrate(2000 if temperature < 1 else 500)
    n_samples = 12_000 if temperature < 1 else 4000
    u = np.empty(n_samples)
    p = np.empty(n_samples)
    for k in range(n_samples):
        mc.sweep(1)
        u[k] = mc.energy / n
        if k % 5 == 0:
            p[k] = mc.pressure()
    p = p[::5]
    u_ref, w_ref = REFERENCE[temperature]
    p_ref = ka.density * (temperature + w_ref)
    u_mean, u_err = _blocked_mean(u)
    p_mean, p_err = _blocked_mean(p)
    assert abs(u_mean - u_ref) < 4 * u_err + 0.005, (u_mean, u_err, u_ref)
    assert abs(p_mean - p_ref) < 4 * p_err + 0.03, (p_mean, p_err, p_ref)


def test_npt_density_matches_nvt_pressure():
    """NPT at the pressure measured in NVT at rho = 1.2 returns rho = 1.2 (volume moves and
    the virial agree with each other)."""
    ka = load_preset("ka")
    n, temperature = 300, 2.0
    counts = composition_counts(ka.composition, n, ka.model.species)
    system = random_configuration(counts, ka.model.species, ka.density, seed=31)
    pressure = ka.density * (temperature + REFERENCE[2.0][1])
    mc = MonteCarlo(system, ka.model, temperature, pressure=pressure,
                    moves=MoveSettings(lnv_step=0.01), seed=32)
    mc.equilibrate(1000)
    rho = np.empty(4000)
    for k in range(rho.size):
        mc.sweep(1)
        rho[k] = n / mc.volume
    mean, err = _blocked_mean(rho)
    assert abs(mean - ka.density) < 4 * err + 0.003, (mean, err)
