"""Thermostats as half-step velocity operators around velocity Verlet.

Each thermostat acts on the velocities over a time ``dt`` and returns the kinetic energy it
added, so that the integrator can report the conserved "effective energy" (total energy minus
the heat exchanged with the bath). The integrator applies it for dt/2 before the first kick
and after the last one (Bussi & Parrinello, PRE 75, 056707 (2007), the O-B-A-B-O splitting).
"""

from __future__ import annotations

import numpy as np

from .velocities import kinetic_energy


class BussiThermostat:
    """Stochastic velocity rescaling (Bussi, Donadio & Parrinello, JCP 126, 014101 (2007)).

    The kinetic energy K follows dK = (K_bar - K) dt / tau + 2 sqrt(K K_bar / (N_f tau)) dW
    with K_bar = N_f k_B T / 2; its exact propagator over dt is sampled and the velocities are
    scaled by sqrt(K' / K). The stationary K distribution is the canonical one (Gamma with
    shape N_f / 2) and the total momentum stays zero.

    Parameters
    ----------
    temperature : float
        Target temperature (temperature units of the force field).
    tau : float
        Relaxation time of K (time units: tau_LJ or ps); tau -> 0 redraws K every call.
    rng : numpy.random.Generator
    dof : int, optional
        Degrees of freedom N_f; default 3N - 3 (velocities with zero total momentum).
    """

    def __init__(self, temperature: float, tau: float, rng: np.random.Generator,
                 dof: int | None = None):
        if temperature <= 0 or tau < 0:
            raise ValueError(f"need temperature > 0 and tau >= 0, got {temperature}, {tau}")
        self.temperature = float(temperature)
        self.tau = float(tau)
        self.rng = rng
        self.dof = dof

    def degrees_of_freedom(self, n: int) -> int:
        return 3 * n - 3 if self.dof is None else int(self.dof)

    def apply(self, md, dt: float) -> float:
        """Rescale ``md.velocities`` in place over a time dt; returns the added energy."""
        v = md.velocities
        nf = self.degrees_of_freedom(v.shape[0])
        k = kinetic_energy(md.masses, v, md.forcefield.mvv2e)
        if k <= 0.0:
            return 0.0
        k_bar = 0.5 * nf * md.forcefield.kB * self.temperature
        c = np.exp(-dt / self.tau) if self.tau > 0 else 0.0
        r1 = self.rng.standard_normal()
        rest = self.rng.chisquare(nf - 1) if nf > 1 else 0.0
        k_new = (
            c * k
            + (1.0 - c) * k_bar * (r1 * r1 + rest) / nf
            + 2.0 * r1 * np.sqrt(c * (1.0 - c) * k * k_bar / nf)
        )
        v *= np.sqrt(k_new / k)
        return k_new - k


class LangevinThermostat:
    """Langevin friction and noise, exact Ornstein-Uhlenbeck step on each velocity component.

    v <- c v + sqrt((1 - c^2) k_B T / (m mvv2e)) xi with c = exp(-gamma dt). The total
    momentum is not conserved, so the kinetic temperature has N_f = 3N degrees of freedom.

    Parameters
    ----------
    temperature : float
    friction : float
        gamma (1 / time units).
    rng : numpy.random.Generator
    """

    def __init__(self, temperature: float, friction: float, rng: np.random.Generator):
        if temperature <= 0 or friction <= 0:
            raise ValueError(f"need temperature > 0 and friction > 0, got {temperature}, "
                             f"{friction}")
        self.temperature = float(temperature)
        self.friction = float(friction)
        self.rng = rng

    def degrees_of_freedom(self, n: int) -> int:
        return 3 * n

    def apply(self, md, dt: float) -> float:
        v = md.velocities
        ff = md.forcefield
        k_old = kinetic_energy(md.masses, v, ff.mvv2e)
        c = np.exp(-self.friction * dt)
        sd = np.sqrt((1.0 - c * c) * ff.kB * self.temperature / (md.masses * ff.mvv2e))
        v *= c
        v += self.rng.standard_normal(v.shape) * sd[:, None]
        return kinetic_energy(md.masses, v, ff.mvv2e) - k_old
