"""Embedded-atom (EAM) alloys, evaluated exactly as LAMMPS ``pair_style eam/alloy`` and ``eam/fs``.

E = sum_i [ F_{t_i}(rho_i) + 1/2 sum_{j != i} phi_{t_i t_j}(r_ij) ],
rho_i = sum_{j != i} f_{t_j -> t_i}(r_ij),

where f_{n -> c} is the density that a neighbour of species n contributes at a centre atom of
species c (eam/alloy: f_{n -> c} = f_n for every c). Units are LAMMPS ``metal``: Angstrom,
eV, amu (the electron density is in the arbitrary units of the potential file).

Every potential, whether read from a setfl file or generated (the built-in Zhou-Johnson-
Wadley Cu-Zr, the doped potentials), is held as setfl tables (:class:`SetflData`) and
evaluated through the *same* cubic splines that LAMMPS builds from those tables
(``PairEAM::interpolate``, ``compute``), so swapmc and LAMMPS agree to rounding on any
configuration. Table layout and lookup rules for the kernels (checked against
``src/MANYBODY/pair_eam.cpp``, ``pair_eam_alloy.cpp`` and ``pair_eam_fs.cpp``):

* ``spline_coefficients(values, delta)`` returns rows 1..n of 7 coefficients (row 0
  unused, LAMMPS's 1-based layout); grid point k (0-based in :class:`SetflData`) is row k+1;
* pair at distance r, only when r^2 < cutoff^2::

      p = r * rdr + 1.0;  m = int(p);  m = min(m, nr - 1);  p -= m;  p = min(p, 1.0)
      c = table[..., m, :]
      value = ((c[3] p + c[4]) p + c[5]) p + c[6];   derivative = (c[0] p + c[1]) p + c[2]

  (the derivative is per unit r: the 1/dr factor is folded into c[0..2]);
  phi = z2r_value / r and phi' = z2r_derivative / r - phi / r;
* embedding::

      p = rho * rdrho + 1.0;  m = int(p);  m = max(1, min(m, nrho - 1));  p -= m;  p = min(p, 1.0)
      F = cubic, F' = derivative;  if rho > rhomax: F += F' * (rho - rhomax)

  with rhomax = (nrho - 1) * drho, i.e. F continues linearly beyond the table, which keeps
  energy and force continuous for close approaches.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from ..io.setfl import SetflData, read_setfl, write_setfl
from .dopant import add_pair_value, add_species_value
from .lj import ModelError

__all__ = [
    "ZJW_PARAMETERS",
    "EAMPotential",
    "doped",
    "smooth_taper",
    "spline_coefficients",
    "zjw_density",
    "zjw_embedding",
    "zjw_pair",
    "zjw_potential",
]


# ----------------------------------------------------------------------------- splines
def spline_coefficients(values, delta: float) -> np.ndarray:
    """Cubic-spline coefficients of tabulated values, bit-identical to ``PairEAM::interpolate``.

    On each grid interval the function is the cubic Hermite polynomial through the two end
    values, with end slopes (in grid units) from the fourth-order central difference
    (f[m-2] - 8 f[m-1] + 8 f[m+1] - f[m+2]) / 12, falling back to (f[m+1] - f[m-1]) / 2 at
    the second and second-to-last points and to one-sided differences at the two ends. The
    operations are done in LAMMPS's order so that the coefficients match to the last bit.

    Parameters
    ----------
    values : array_like, shape (..., n)
        Function values on a uniform grid x_k = k * delta, k = 0..n-1 (n >= 3). Leading
        axes are independent tables.
    delta : float
        Grid spacing (units of x).

    Returns
    -------
    ndarray, shape (..., n + 1, 7)
        Row m = 1..n holds the coefficients of grid point m-1 (LAMMPS's 1-based layout; row
        0 is zero and unused). For p in [0, 1] on interval m (x = (m - 1 + p) delta):
        value = ((c[3] p + c[4]) p + c[5]) p + c[6], d value / dx = (c[0] p + c[1]) p + c[2].
        Columns 5 and 6 hold the slope (grid units) and the value at the grid point.
    """
    f = np.asarray(values, dtype=np.float64)
    n = f.shape[-1]
    if n < 3:
        raise ValueError(f"need at least 3 grid points for the spline, got {n}")
    delta = float(delta)
    out = np.zeros(f.shape[:-1] + (n + 1, 7))
    s6 = out[..., 6]
    s5 = out[..., 5]
    s4 = out[..., 4]
    s3 = out[..., 3]
    s6[..., 1:] = f
    s5[..., 1] = s6[..., 2] - s6[..., 1]
    s5[..., 2] = 0.5 * (s6[..., 3] - s6[..., 1])
    s5[..., n - 1] = 0.5 * (s6[..., n] - s6[..., n - 2])
    s5[..., n] = s6[..., n] - s6[..., n - 1]
    # m = 3 .. n-2: slices [m-2], [m+2], [m+1], [m-1].
    s5[..., 3 : n - 1] = (
        (s6[..., 1 : n - 3] - s6[..., 5 : n + 1]) + 8.0 * (s6[..., 4:n] - s6[..., 2 : n - 2])
    ) / 12.0
    diff = s6[..., 2 : n + 1] - s6[..., 1:n]  # f[m+1] - f[m], m = 1 .. n-1
    s4[..., 1:n] = 3.0 * diff - 2.0 * s5[..., 1:n] - s5[..., 2 : n + 1]
    s3[..., 1:n] = s5[..., 1:n] + s5[..., 2 : n + 1] - 2.0 * diff
    s4[..., n] = 0.0
    s3[..., n] = 0.0
    out[..., 1:, 2] = s5[..., 1:] / delta
    out[..., 1:, 1] = 2.0 * s4[..., 1:] / delta
    out[..., 1:, 0] = 3.0 * s3[..., 1:] / delta
    return out


def _cubic(c: np.ndarray, p: np.ndarray):
    """Value and derivative of gathered spline rows ``c`` (..., 7) at fractions ``p``."""
    value = ((c[..., 3] * p + c[..., 4]) * p + c[..., 5]) * p + c[..., 6]
    deriv = (c[..., 0] * p + c[..., 1]) * p + c[..., 2]
    return value, deriv


def _scalar_or_array(x: np.ndarray):
    return x[()] if x.ndim == 0 else x


# ----------------------------------------------------------------------------- potential
@dataclass(frozen=True, eq=False)
class EAMPotential:
    """A tabulated EAM potential (LAMMPS ``eam/alloy`` or ``eam/fs``), in metal units.

    Build it with :meth:`from_file`, :meth:`from_setfl`, :func:`zjw_potential` or
    :func:`doped`; the kernels get plain arrays from :meth:`kernel_tables`.

    Parameters
    ----------
    setfl : SetflData
        The tables, in setfl layout (``rhor[neighbour, centre]``).
    source : str
        Where the tables come from: a file path with its sha256 hash, "built-in ZJW ...",
        or a description of a derived (doped) potential.
    sha256 : str or None
        Hex digest of the file the tables were read from (None if generated).
    units : str
        Always ``"metal"`` (Angstrom, eV, amu, K).
    """

    setfl: SetflData
    source: str
    sha256: str | None = None
    units: str = "metal"

    kind = "eam"
    # Verlet skin (Å) for Monte Carlo. Cu50Zr50 at N = 2000 with p_swap = 0.2, attempts per
    # CPU second against 1.0 Å (medians of 6 interleaved rounds): 1.5 Å gives 1.20x, 1.11x,
    # 1.07x (Mendelev; 1500, 1000, 700 K) and 1.14x, 1.05x, 1.00x (ZJW). A moved atom is
    # refreshed once it is skin / 2 from its reference, and a refresh rescans 27 cells, which
    # costs more than the longer rows (1.5 Å lists ~19 % more neighbours than 1.0 Å).
    default_skin = 1.5

    def __post_init__(self):
        if not isinstance(self.setfl, SetflData):
            raise ModelError(f"setfl must be a SetflData, got {type(self.setfl).__name__}")
        if self.units != "metal":
            raise ModelError(f"EAM potentials use LAMMPS metal units, got units={self.units!r}")

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_setfl(cls, data: SetflData, source: str = "setfl data (in memory)") -> EAMPotential:
        """Wrap setfl tables (no copy: :class:`SetflData` is immutable)."""
        return cls(data, source)

    @classmethod
    def from_file(cls, path, kind: str | None = None) -> EAMPotential:
        """Read a ``*.eam.alloy`` / ``*.eam.fs`` file (see :func:`swapmc.io.setfl.read_setfl`).

        The source records the absolute path and the file's sha256, so that a run can be
        tied to the exact potential it used.
        """
        path = os.path.abspath(os.fspath(path))
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        data = read_setfl(path, kind)
        return cls(data, f"{path} (sha256 {digest})", sha256=digest)

    def to_setfl(self) -> SetflData:
        """The tables as setfl data (write them with :func:`swapmc.io.setfl.write_setfl`)."""
        return self.setfl

    def write(self, path) -> None:
        """Write the potential as a setfl file LAMMPS can read (``pair_style eam/<kind>``)."""
        write_setfl(path, self.setfl)

    def with_dopant(self, name: str, between: tuple, weight: float = 0.5) -> EAMPotential:
        """Same as :func:`doped` (mirrors :meth:`LJMixture.with_dopant`)."""
        return doped(self, name, between, weight)

    # ------------------------------------------------------------------ properties
    @property
    def species(self) -> tuple:
        """Species (element) names, in file order; species index k is LAMMPS type k+1."""
        return self.setfl.elements

    @property
    def masses(self) -> tuple:
        """Masses (amu)."""
        return self.setfl.masses

    @property
    def setfl_kind(self) -> str:
        """``"alloy"`` or ``"fs"``: the LAMMPS pair style is ``eam/<setfl_kind>``."""
        return self.setfl.kind

    @property
    def n_species(self) -> int:
        return len(self.species)

    @property
    def cutoff(self) -> float:
        """Global cut-off (Angstrom): pairs with r^2 < cutoff^2 interact."""
        return self.setfl.cutoff

    @property
    def max_cutoff(self) -> float:
        return self.cutoff

    @property
    def overlap_distance(self) -> float:
        """Two atoms closer than this (1.0 Angstrom) are treated as an input error.

        At 1 Angstrom every pair function of the Cu-Zr potentials swapmc ships or targets
        is strongly repulsive (ZJW: Cu-Cu 48, Cu-Zr 86, Zr-Zr 138 eV; Mendelev's
        CuZr_mm.eam.fs: 135-183 eV), i.e. more than 1e5 k_B T at 2000 K: such a pair is
        never sampled and means a broken configuration. The tables are also least
        trustworthy there (potentials are not fitted that close).
        """
        return 1.0

    def describe(self) -> dict:
        """Plain-data summary with units, for logs and run metadata."""
        return {
            "kind": self.kind,
            "setfl_kind": self.setfl_kind,
            "units": self.units,
            "species": list(self.species),
            "masses_amu": list(self.masses),
            "cutoff_angstrom": self.cutoff,
            "source": self.source,
            "sha256": self.sha256,
        }

    # ------------------------------------------------------------------ kernel views
    def kernel_tables(self) -> dict:
        """Spline tables and grid scalars for the kernels (computed once, read-only).

        Returns
        -------
        dict
            ``frho`` : ndarray, shape (S, nrho + 1, 7) -- F_k splines;
            ``rhor`` : ndarray, shape (S, S, nr + 1, 7) -- density splines indexed
            [neighbour species, centre species];
            ``z2r`` : ndarray, shape (S, S, nr + 1, 7) -- r*phi splines, symmetric;
            ``rdr`` = 1/dr (1/Angstrom), ``rdrho`` = 1/drho, ``nr``, ``nrho`` (int),
            ``rhomax`` = (nrho - 1) drho, ``cutoff`` (Angstrom), ``cutforcesq`` = cutoff^2.
            See the module docstring for the lookup rules.
        """
        tables = self.__dict__.get("_kernel_tables")
        if tables is None:
            d = self.setfl
            frho = spline_coefficients(d.frho, d.drho)
            rhor = spline_coefficients(d.rhor, d.dr)
            z2r = spline_coefficients(d.z2r, d.dr)
            for arr in (frho, rhor, z2r):
                arr.setflags(write=False)
            tables = {
                "frho": frho,
                "rhor": rhor,
                "z2r": z2r,
                "rdr": 1.0 / d.dr,
                "rdrho": 1.0 / d.drho,
                "nr": d.nr,
                "nrho": d.nrho,
                "rhomax": (d.nrho - 1) * d.drho,
                "cutoff": d.cutoff,
                "cutforcesq": d.cutoff * d.cutoff,
            }
            # A cache on a frozen dataclass: written to __dict__ directly, never part of
            # the dataclass fields.
            self.__dict__["_kernel_tables"] = tables
        return dict(tables)

    def _locate_r(self, r: np.ndarray):
        t = self.kernel_tables()
        p = r * t["rdr"] + 1.0
        # Clip before the integer conversion only to keep huge or negative r from
        # overflowing; the clamp to nr - 1 below gives LAMMPS's index for any r >= 0.
        m = np.minimum(np.clip(p, 0.0, t["nr"]).astype(np.int64), t["nr"] - 1)
        p = np.minimum(p - m, 1.0)
        return m, p

    def eval_pair(self, r, a, b):
        """Pair potential phi_ab(r) and its derivative, as LAMMPS evaluates them.

        Parameters
        ----------
        r : array_like
            Distances (Angstrom), > 0.
        a, b : int or array_like of int
            Species indices, broadcastable with ``r``.

        Returns
        -------
        phi, dphi_dr : ndarray (or float for scalar input)
            eV and eV/Angstrom; both zero for r >= cutoff.
        """
        r, a, b = np.broadcast_arrays(np.asarray(r, np.float64), np.asarray(a), np.asarray(b))
        m, p = self._locate_r(r)
        z2, z2p = _cubic(self.kernel_tables()["z2r"][a, b, m], p)
        with np.errstate(divide="ignore", invalid="ignore"):
            recip = 1.0 / r
            phi = z2 * recip
            phip = z2p * recip - phi * recip
        inside = r < self.cutoff
        return (
            _scalar_or_array(np.where(inside, phi, 0.0)),
            _scalar_or_array(np.where(inside, phip, 0.0)),
        )

    def eval_density(self, r, neighbour_type, centre_type):
        """Density f_{n -> c}(r) a neighbour of species n contributes at a centre of species c.

        Parameters
        ----------
        r : array_like
            Distances (Angstrom).
        neighbour_type, centre_type : int or array_like of int
            Species indices, broadcastable with ``r``.

        Returns
        -------
        f, df_dr : ndarray (or float for scalar input)
            Density units and density units per Angstrom; zero for r >= cutoff.
        """
        r, n, c = np.broadcast_arrays(
            np.asarray(r, np.float64), np.asarray(neighbour_type), np.asarray(centre_type)
        )
        m, p = self._locate_r(r)
        f, fp = _cubic(self.kernel_tables()["rhor"][n, c, m], p)
        inside = r < self.cutoff
        return (
            _scalar_or_array(np.where(inside, f, 0.0)),
            _scalar_or_array(np.where(inside, fp, 0.0)),
        )

    def eval_embedding(self, rho, a):
        """Embedding energy F_a(rho) and dF/drho, with LAMMPS's linear continuation.

        Parameters
        ----------
        rho : array_like
            Host electron densities (density units of the potential).
        a : int or array_like of int
            Species indices, broadcastable with ``rho``.

        Returns
        -------
        F, dF_drho : ndarray (or float for scalar input)
            eV and eV per density unit.
        """
        t = self.kernel_tables()
        rho, a = np.broadcast_arrays(np.asarray(rho, np.float64), np.asarray(a))
        p = rho * t["rdrho"] + 1.0
        m = np.clip(p, 0.0, t["nrho"]).astype(np.int64)
        m = np.maximum(1, np.minimum(m, t["nrho"] - 1))
        p = np.minimum(p - m, 1.0)
        f, fp = _cubic(t["frho"][a, m], p)
        f = np.where(rho > t["rhomax"], f + fp * (rho - t["rhomax"]), f)
        return _scalar_or_array(f), _scalar_or_array(fp)


# ----------------------------------------------------------------------------- ZJW Cu-Zr
# Zhou, Johnson & Wadley, PRB 69, 144113 (2004), Table III (spec models.md section 4.1;
# identical to the LAMMPS tools/eam_database values). Keys: r_e (Angstrom), f_e, rho_e,
# rho_s, alpha, beta, A, B (eV), kappa, lambda, F_n0..F_n3, F_0..F_3 (F_3 for rho < rho_e,
# F_3p for rho >= rho_e), eta, F_e (eV), beta1, lambda1, rho_l, rho_h, Z, mass (amu).
ZJW_PARAMETERS = {
    "Cu": {
        "re": 2.556162, "fe": 1.554485, "rhoe": 21.175871, "rhos": 21.175395,
        "alpha": 8.127620, "beta": 4.334731, "A": 0.396620, "B": 0.548085,
        "kappa": 0.308782, "lambda": 0.756515,
        "Fn": (-2.170269, -0.263788, 1.088878, -0.817603),
        "F": (-2.19, 0.0, 0.561830, -2.100595), "F3p": -2.100595,
        "eta": 0.310490, "Fe": -2.186568, "beta1": 4.334731, "lambda1": 0.756515,
        "rhol": 0.85, "rhoh": 1.15, "Z": 29, "mass": 63.546,
        "lattice": "fcc",
    },
    "Zr": {
        "re": 3.199978, "fe": 2.230909, "rhoe": 30.879991, "rhos": 30.879991,
        "alpha": 8.559190, "beta": 4.564902, "A": 0.424667, "B": 0.640054,
        "kappa": 0.5, "lambda": 1.0,
        "Fn": (-4.485793, -0.293129, 0.990148, -3.202516),
        "F": (-4.51, 0.0, 0.928602, -0.981870), "F3p": -0.981870,
        "eta": 0.597133, "Fe": -4.509025, "beta1": 4.564902, "lambda1": 1.0,
        "rhol": 0.85, "rhoh": 1.15, "Z": 40, "mass": 91.224,
        "lattice": "hcp",
    },
}  # fmt: skip


def _zjw(element: str) -> dict:
    try:
        return ZJW_PARAMETERS[element]
    except KeyError:
        raise ModelError(
            f"no built-in ZJW parameters for {element!r}; available: {sorted(ZJW_PARAMETERS)}"
        ) from None


def zjw_density(r, element: str) -> np.ndarray:
    """ZJW density f(r) = f_e exp[-beta1 (x - 1)] / (1 + (x - lambda1)^20), x = r / r_e.

    Parameters
    ----------
    r : array_like
        Distances (Angstrom).
    element : str
        "Cu" or "Zr".

    Returns
    -------
    ndarray
        Untruncated analytic density (no cut-off, no taper).
    """
    q = _zjw(element)
    x = np.asarray(r, dtype=np.float64) / q["re"]
    return q["fe"] * np.exp(-q["beta1"] * (x - 1.0)) / (1.0 + (x - q["lambda1"]) ** 20)


def _zjw_pair_same(r, element: str) -> np.ndarray:
    q = _zjw(element)
    x = np.asarray(r, dtype=np.float64) / q["re"]
    rep = q["A"] * np.exp(-q["alpha"] * (x - 1.0)) / (1.0 + (x - q["kappa"]) ** 20)
    att = q["B"] * np.exp(-q["beta"] * (x - 1.0)) / (1.0 + (x - q["lambda"]) ** 20)
    return rep - att


def zjw_pair(r, a: str, b: str) -> np.ndarray:
    """ZJW pair potential phi_ab(r) (eV), untruncated.

    Same element: A exp[-alpha (x-1)] / (1 + (x-kappa)^20) - B exp[-beta (x-1)] /
    (1 + (x-lambda)^20). Different elements: phi_ab = 1/2 [f_b/f_a phi_aa + f_a/f_b phi_bb].
    """
    if a == b:
        return _zjw_pair_same(r, a)
    fa = zjw_density(r, a)
    fb = zjw_density(r, b)
    return 0.5 * (fb / fa * _zjw_pair_same(r, a) + fa / fb * _zjw_pair_same(r, b))


def zjw_embedding(rho, element: str) -> np.ndarray:
    """ZJW embedding energy F(rho) (eV), the three-piece form of the paper.

    rho < rho_n = rho_l rho_e: sum_i F_ni (rho/rho_n - 1)^i; rho_n <= rho < rho_o = rho_h
    rho_e: sum_i F_i (rho/rho_e - 1)^i (cubic coefficient F_3 below rho_e, F_3' above);
    rho >= rho_o: F_e [1 - eta ln(rho/rho_s)] (rho/rho_s)^eta.
    """
    q = _zjw(element)
    rho = np.asarray(rho, dtype=np.float64)
    rho_n = q["rhol"] * q["rhoe"]
    rho_o = q["rhoh"] * q["rhoe"]
    u = rho / rho_n - 1.0
    low = sum(c * u**i for i, c in enumerate(q["Fn"]))
    v = rho / q["rhoe"] - 1.0
    f3 = np.where(rho < q["rhoe"], q["F"][3], q["F3p"])
    mid = q["F"][0] + q["F"][1] * v + q["F"][2] * v**2 + f3 * v**3
    with np.errstate(divide="ignore", invalid="ignore"):
        s = rho / q["rhos"]
        high = q["Fe"] * (1.0 - q["eta"] * np.log(s)) * s ** q["eta"]
    return np.where(rho < rho_n, low, np.where(rho < rho_o, mid, high))


def smooth_taper(r, r_start: float, r_cut: float) -> np.ndarray:
    """1 below ``r_start``, 0 above ``r_cut``, the quintic smoothstep 1 - 10t^3 + 15t^4 - 6t^5
    (t = (r - r_start) / (r_cut - r_start)) in between.

    Value, first and second derivative are continuous everywhere, so multiplying a function
    by it makes the function, its force and the force's derivative vanish continuously at
    ``r_cut`` (no energy jump and no impulsive force when a neighbour crosses the cut-off).
    """
    t = np.clip((np.asarray(r, dtype=np.float64) - r_start) / (r_cut - r_start), 0.0, 1.0)
    return 1.0 - t**3 * (10.0 - 15.0 * t + 6.0 * t * t)


# Default grid of the built-in potential; see zjw_potential for the measured accuracy.
ZJW_NR = 5000
ZJW_NRHO = 5000
ZJW_TAPER_WIDTH = 0.5  # Angstrom
ZJW_RHOMAX_FACTOR = 5.0  # rho_max = 5 * max rho_e


def zjw_potential(
    elements=("Cu", "Zr"),
    nr: int = ZJW_NR,
    nrho: int = ZJW_NRHO,
    cutoff: float | None = None,
    taper_width: float = ZJW_TAPER_WIDTH,
    rhomax: float | None = None,
) -> EAMPotential:
    """The built-in Zhou-Johnson-Wadley (PRB 69, 144113 (2004)) EAM, tabulated as eam/alloy.

    The analytic functions (:func:`zjw_density`, :func:`zjw_pair`, :func:`zjw_embedding`)
    are tabulated on setfl grids and then go through exactly the code path of a setfl file
    (LAMMPS splines), so ``zjw_potential().write("CuZr.eam.alloy")`` is a file LAMMPS
    ``pair_style eam/alloy`` evaluates identically.

    Choices (defaults):

    * cut-off r_c = sqrt(5) * max r_e (7.1554 Angstrom for Cu-Zr), the value of the
      reference tabulation tool (LAMMPS ``tools/eam_database``: sqrt(10)/2 times the fcc
      lattice constant sqrt(2) r_e), so that swapmc's ZJW matches the Cu-Zr ZJW files in use.
      At r_c the untruncated Zr density and Zr-Zr pair have decayed to 5e-5 and 1.5e-4 of
      their values at r_e (Cu: 3e-10 and 1e-9), so a cut there must be smoothed;
    * taper: f and phi are multiplied by the quintic :func:`smooth_taper` over the 0.5
      Angstrom that end two grid cells before r_c, [r_c - 2 dr - 0.5, r_c - 2 dr], so energy
      and force go to zero continuously (the reference tool's files jump there). Ending it
      2 dr early makes the last three table values zero, and with them every coefficient of
      the last spline cell (its end slopes are (f[n] - f[n-2]) / 2 and f[n] - f[n-1]): the
      tabulated f, phi and their derivatives are then *exactly* zero as r -> r_c, instead of
      carrying the O(f(r_c - dr) / dr) ~ 1e-8 eV/Angstrom slope a taper ending at r_c
      leaves in the spline. Effect on energies (measured): cohesive energies of Cu fcc and Zr
      hcp change by < 2e-4 eV/atom relative to the untruncated functions (Zr: 1.6e-4, all
      of it from the cut-off, no hcp neighbour lies in the taper shell); in a Cu50Zr50
      liquid at 0.062 per cubic Angstrom (g(r) = 1 beyond 6.6 Angstrom) the taper adds
      +0.15 (Cu) / +0.4 (Zr) meV per atom to the pair energy and lowers rho by 2e-3
      (6e-5 relative; F'(rho_e) = 0 in ZJW, so the embedding energy hardly moves);
    * grids: nr = 5000 points on [0, r_c] (dr = 1.43e-3 Angstrom), nrho = 5000 points on
      [0, 5 max rho_e] (= [0, 154.4] for Cu-Zr, drho = 0.031); beyond rho_max F continues
      linearly (LAMMPS rule). Measured spline-vs-analytic error on random off-grid points:
      |df| < 3e-11 f_e and |dphi| < 5e-11 eV for r >= 1 Angstrom (< 7e-10 eV down to
      0.5 Angstrom); |dF| < 5e-9 eV except (i) within 3 cells of the two joins of the
      piecewise F (rho_n, rho_o), where the published form itself jumps by 3-5e-7 eV (rounded
      parameters) and the spline error is <= 4e-7 eV, and (ii) in the first cell
      rho < drho (one-sided end slope; 2e-6 eV, an isolated atom). The tests check these.

    Parameters
    ----------
    elements : sequence of str
        Any ordered subset of ("Cu", "Zr"); species index k is element ``elements[k]``.
    nr, nrho : int
        Grid sizes.
    cutoff : float, optional
        Cut-off (Angstrom); default sqrt(5) * max r_e of ``elements``.
    taper_width : float
        Width (Angstrom) of the taper that ends 2 dr before the cut-off; 0 disables it
        (hard cut at r_c, as the reference tool does).
    rhomax : float, optional
        End of the rho grid; default 5 * max rho_e.

    Returns
    -------
    EAMPotential
        ``setfl_kind == "alloy"``.
    """
    elements = tuple(elements)
    if not elements or len(set(elements)) != len(elements):
        raise ModelError(f"need distinct elements, got {elements}")
    params = [_zjw(e) for e in elements]
    if cutoff is None:
        cutoff = np.sqrt(5.0) * max(q["re"] for q in params)
    cutoff = float(cutoff)
    if not 0.0 <= taper_width < 0.5 * cutoff:
        raise ModelError(f"taper width must be in [0, cutoff / 2), got {taper_width}")
    if rhomax is None:
        rhomax = ZJW_RHOMAX_FACTOR * max(q["rhoe"] for q in params)
    nr, nrho = int(nr), int(nrho)
    dr = cutoff / (nr - 1)
    drho = float(rhomax) / (nrho - 1)
    r = np.arange(nr) * dr
    rho = np.arange(nrho) * drho
    if taper_width > 0:
        taper_end = cutoff - 2.0 * dr
        taper = smooth_taper(r, taper_end - taper_width, taper_end)
    else:
        taper = np.ones(nr)
    taper[r >= cutoff] = 0.0
    s = len(elements)
    frho = np.array([zjw_embedding(rho, e) for e in elements])
    dens = np.array([zjw_density(r, e) * taper for e in elements])
    rhor = np.repeat(dens[:, None, :], s, axis=1)
    z2r = np.empty((s, s, nr))
    for i in range(s):
        for j in range(i + 1):
            z2r[i, j] = z2r[j, i] = r * zjw_pair(r, elements[i], elements[j]) * taper
    lattice_constants = tuple(
        q["re"] * (np.sqrt(2.0) if q["lattice"] == "fcc" else 1.0) for q in params
    )
    data = SetflData(
        kind="alloy",
        comments=(
            "Zhou, Johnson & Wadley EAM, PRB 69, 144113 (2004): "
            + " ".join(elements)
            + " (built into swapmc)",
            f"cutoff {cutoff:.6f} A; f and phi times a quintic smoothstep taper over "
            f"{taper_width:g} A ending 2 dr before the cutoff",
            f"grid nr {nr} dr {dr:.6g} A, nrho {nrho} drho {drho:.6g}; units metal",
        ),
        elements=elements,
        atomic_numbers=tuple(q["Z"] for q in params),
        masses=tuple(q["mass"] for q in params),
        lattice_constants=lattice_constants,
        lattice_types=tuple(q["lattice"] for q in params),
        nrho=nrho,
        drho=drho,
        nr=nr,
        dr=dr,
        cutoff=cutoff,
        frho=frho,
        rhor=rhor,
        z2r=z2r,
    )
    source = (
        "built-in ZJW (Zhou, Johnson & Wadley, PRB 69, 144113 (2004)) "
        f"{'-'.join(elements)}, cutoff {cutoff:.6f} A, taper {taper_width:g} A, "
        f"nr {nr}, nrho {nrho}, rhomax {float(rhomax):g}"
    )
    return EAMPotential(data, source)


# ----------------------------------------------------------------------------- doping
def doped(
    potential: EAMPotential,
    dopant: str = "X",
    between: tuple = ("Cu", "Zr"),
    weight: float = 0.5,
) -> EAMPotential:
    """Add a dopant species X whose functions interpolate between two hosts (spec section 5).

    With hosts a, b and weight l (X = a at l = 0, X = b at l = 1), every function is mixed
    linearly, following the KA2 rule for pairs (:mod:`swapmc.models.dopant`):

    * F_X = (1-l) F_a + l F_b;  mass_X = (1-l) m_a + l m_b;
    * eam/alloy density: f_X = (1-l) f_a + l f_b;
    * eam/fs density, writing f_{n->c} for a neighbour n at a centre c (the file order,
      ``rhor[n, c]``): f_{X->t} = (1-l) f_{a->t} + l f_{b->t} (X as neighbour),
      f_{t->X} = (1-l) f_{t->a} + l f_{t->b} (X as centre), and
      f_{X->X} = (1-l) f_{a->a} + l f_{b->b}. Both axes are mixed, each with its own
      host functions, so an asymmetric base file gives an asymmetric dopant;
    * pairs, stored as r*phi (r is common to all pairs, so r*phi mixes exactly like phi):
      phi_XX = (1-l) phi_aa + l phi_bb, phi_Xt = (1-l) phi_at + l phi_bt, hence
      phi_Xa = (1-l) phi_aa + l phi_ab and phi_Xb = (1-l) phi_ab + l phi_bb.

    The result keeps the base's setfl kind (a doped eam/alloy potential is still eam/alloy)
    and grids, so it can be written out for LAMMPS with :meth:`EAMPotential.write`.

    Parameters
    ----------
    potential : EAMPotential
        Base potential with at least the two hosts.
    dopant : str
        Name of the new species (a setfl element name: one word, not yet used).
    between : (str, str)
        Host species a and b.
    weight : float
        l in [0, 1].

    Returns
    -------
    EAMPotential
        S + 1 species, the dopant last.
    """
    base = potential.setfl
    names = base.elements
    a_name, b_name = between
    if dopant in names:
        raise ModelError(f"dopant name {dopant!r} is already a species of the potential")
    for h in (a_name, b_name):
        if h not in names:
            raise ModelError(f"dopant host {h!r} is not a species of {names}")
    if a_name == b_name:
        raise ModelError("a dopant needs two different host species")
    weight = float(weight)
    if not 0.0 <= weight <= 1.0:
        raise ModelError(f"dopant weight must be in [0, 1], got {weight}")
    a, b = names.index(a_name), names.index(b_name)
    s = len(names)

    frho = add_species_value(base.frho, a, b, weight)
    masses = tuple(add_species_value(np.array(base.masses), a, b, weight).tolist())
    alat = tuple(add_species_value(np.array(base.lattice_constants), a, b, weight).tolist())
    if base.kind == "alloy":
        # One function per neighbour species; mixing it directly keeps rhor[n, c]
        # independent of c bit for bit (the fs construction below would agree only to
        # rounding, and the file could then no longer be written as eam/alloy).
        dens = add_species_value(base.rhor[:, 0], a, b, weight)
        rhor = np.repeat(dens[:, None, :], s + 1, axis=1)
    else:
        # add_pair_value fills row and column of the dopant from the hosts' *rows*
        # (table[a, c], table[b, c]); it assumes a symmetric table. rhor[n, c] is not
        # symmetric, so take the dopant row (X as neighbour) from rhor and the dopant
        # column (X as centre) from the transposed table, whose rows are rhor[:, c].
        as_neighbour = add_pair_value(base.rhor, a, b, weight)
        as_centre = add_pair_value(base.rhor.transpose(1, 0, 2), a, b, weight)
        rhor = as_neighbour.copy()
        rhor[:, s] = as_centre[s, :]
    z2r = add_pair_value(base.z2r, a, b, weight)

    comment = (
        f"swapmc doped EAM: {dopant} = (1-l) {a_name} + l {b_name}, l = {weight!r} "
        "(every function mixed linearly; spec models.md section 5)"
    )
    data = SetflData(
        kind=base.kind,
        comments=(comment, f"base: {potential.source}", base.comments[0]),
        elements=names + (dopant,),
        atomic_numbers=base.atomic_numbers + (0,),  # Z = 0: not a chemical element
        masses=masses,
        lattice_constants=alat,
        lattice_types=base.lattice_types + ("none",),
        nrho=base.nrho,
        drho=base.drho,
        nr=base.nr,
        dr=base.dr,
        cutoff=base.cutoff,
        frho=frho,
        rhor=rhor,
        z2r=z2r,
    )
    source = f"doped({potential.source}; {dopant} between {a_name} and {b_name}, l={weight!r})"
    return EAMPotential(data, source)
