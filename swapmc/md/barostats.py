"""Isotropic stochastic cell rescaling (Bernetti & Bussi, JCP 153, 114107 (2020)).

The log-volume eps = ln V follows the first-order stochastic equation

    d eps = -(beta_T / tau_p) (P_0 - P_int - k_B T / V) dt + sqrt(2 k_B T beta_T / (V tau_p)) dW,

with P_int = (2 K + tr W) / (3 V) the instantaneous pressure. Cell, positions (affinely) and
velocities (by the inverse factor) are scaled by mu = exp(d eps / 3). Without noise this is
Berendsen's barostat; with it, and a canonical thermostat, the volume samples the
isothermal-isobaric distribution (the k_B T / V term is the Jacobian of eps = ln V). The
update is an Euler-Maruyama step: its error is O(dt / tau_p), negligible for tau_p >> dt.
beta_T only sets the relaxation rate together with tau_p (the sampled distribution does not
depend on it); a value near the true compressibility gives a relaxation time close to tau_p.
"""

from __future__ import annotations

import numpy as np

from .stress import from_user_pressure
from .velocities import kinetic_energy

# Rough isothermal compressibilities (1 / user pressure unit) used as defaults: a dense LJ
# liquid (bulk modulus ~ 50 epsilon/sigma^3) and a metal (~ 100 GPa).
DEFAULT_COMPRESSIBILITY = {"lj": 0.02, "metal": 0.01}


class StochasticCellRescale:
    """Isotropic barostat at pressure P_0 (all cell vectors scaled together).

    Parameters
    ----------
    pressure : float
        Target pressure in the user's unit (epsilon/sigma^3 for lj, GPa for metal).
    temperature : float
        Temperature of the bath (the thermostat's).
    tau : float
        Relaxation time tau_p (time units); should be >> dt (e.g. 100 dt).
    rng : numpy.random.Generator
    compressibility : float, optional
        beta_T in 1 / user pressure unit; default 0.02 (lj) or 0.01 GPa^-1 (metal).
    """

    def __init__(self, pressure: float, temperature: float, tau: float,
                 rng: np.random.Generator, compressibility: float | None = None):
        if tau <= 0 or temperature <= 0:
            raise ValueError(f"need tau > 0 and temperature > 0, got {tau}, {temperature}")
        self.pressure = float(pressure)
        self.temperature = float(temperature)
        self.tau = float(tau)
        self.rng = rng
        self.compressibility = compressibility

    def apply(self, md, dt: float) -> None:
        """One Euler-Maruyama step of ln V over dt; rescales ``md`` in place."""
        ff = md.forcefield
        units = ff.units
        beta = self.compressibility
        if beta is None:
            beta = DEFAULT_COMPRESSIBILITY[units]
        # beta in 1/(user unit) -> 1/(internal unit): P_int = P_user * c  =>  beta / c.
        beta_int = beta / from_user_pressure(1.0, units)
        p0 = from_user_pressure(self.pressure, units)
        vol = md.volume
        kt = ff.kB * self.temperature
        k = kinetic_energy(md.masses, md.velocities, ff.mvv2e)
        p_int = (2.0 * k + np.trace(md.virial)) / (3.0 * vol)
        deps = -(beta_int / self.tau) * (p0 - p_int - kt / vol) * dt + np.sqrt(
            2.0 * kt * beta_int * dt / (vol * self.tau)
        ) * self.rng.standard_normal()
        md.scale_cell(np.exp(deps / 3.0))
