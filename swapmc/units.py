"""Unit systems: what a number printed or stored by swapmc means.

``lj``: reduced units of the A-A interaction (epsilon_AA, sigma_AA, m_A, k_B = 1).
``metal``: LAMMPS metal units (Å, eV, amu, ps, K); pressures are *entered and reported in
GPa*; internally the samplers use eV/Å^3.
"""

BOLTZMANN = {"lj": 1.0, "metal": 8.617333262e-5}  # energy per temperature unit

# Factor from the user's pressure unit to the internal energy/length^3.
PRESSURE_TO_INTERNAL = {"lj": 1.0, "metal": 1.0 / 160.21766208}  # GPa -> eV/Å^3

LABELS = {
    "lj": {"energy": "epsilon_AA", "length": "sigma_AA", "temperature": "epsilon_AA/k_B",
           "pressure": "epsilon_AA/sigma_AA^3", "time": "MC sweeps"},
    "metal": {"energy": "eV", "length": "Angstrom", "temperature": "K", "pressure": "GPa",
              "time": "MC sweeps"},
}
