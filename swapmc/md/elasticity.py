"""Exact T = 0 elasticity of an energy minimum: Hessian, Born term, non-affine correction.

For an inherent structure (a local minimum of the potential energy U at fixed cell), the
relaxed elastic constants follow from derivatives at the minimum, without finite strains
(Lutsko, J. Appl. Phys. 65, 2991 (1989); Lemaître & Maloney, J. Stat. Phys. 123, 415
(2006); Maloney & Lemaître, PRE 74, 016118 (2006)):

    C_IJ = C^Born_IJ + C^NA_IJ,    C^Born_IJ = (1/V) d2U / d eta_I d eta_J  (affine),
    C^NA_IJ = -(1/V) Xi_I^T H^+ Xi_J,    Xi_{i,I} = d2U / dx_i d eta_I,    H = d2U / dx dx.

eta is the Lagrangian strain (Voigt order xx, yy, zz, yz, xz, xy, engineering shears
eta_4 = 2 eta_yz, ...), applied to the cell and, affinely, to the particles; H^+ is the
pseudo-inverse on the space orthogonal to the three rigid translations. The non-affine term
is the stiffness lost when the particles relax after the affine strain: u = -H^+ Xi eta.

**Which tensor is returned.** ``C`` (above) is the second derivative of the relaxed energy
per reference volume with respect to the Lagrangian strain. In a stressed state (pressure,
residual shear stress) the slopes of the Cauchy stress sigma (positive in tension, as in
:mod:`swapmc.md.stress`) under a small deformation gradient F = 1 + D t are not C itself:

    d sigma_ab / dt = A_abcd D_cd + (sigma D^T)_ab - tr(D) sigma_ab,
    A_abcd = C_abcd + delta_ac sigma_bd              (A = (1/V) d2U / dF dF),

so for a symmetric strain eps (D = eps) the stress-strain coefficients are (Wallace)

    B_abcd = C_abcd + (delta_ac sigma_bd + delta_ad sigma_bc + sigma_ac delta_bd
                       + sigma_ad delta_bc) / 2 - sigma_ab delta_cd,

and for the simple shear of :func:`swapmc.md.protocols.strained_cell` (tilt xy -> xy +
gamma ly, x -> x + gamma y; D = e_x e_y^T) the slope is

    G_xy = d sigma_xy / d gamma = C_66 + sigma_yy.

(That D holds for reference cells with yz = 0, which is every cell swapmc builds; from a
cell with yz != 0, ``strained_cell`` keeps xz fixed, i.e. D = e_x (0, 1, -yz/lz), and
:meth:`ElasticConstants.stress_rate` gives that slope.)

All coincide with C when the state is stress-free. The isotropic shear modulus is the Voigt
average over B (symmetrised), G_iso = (2/5) <(B_aa + B_bb - 2 B_ab) / 4> + (3/5) <B_44-type>:
the weights of the two deviatoric normal and three shear modes. For an isotropic solid
G_iso = G_xy; a single glass of finite N is anisotropic, so the two differ by sample noise.

Units: internal quantities are in energy / length^k (``hessian``: energy/length^2,
``strain_derivatives``: Xi energy/length, Born energy/length^3). :func:`elastic_constants`
returns moduli and stresses in the user's unit (epsilon/sigma^3 for ``lj``, GPa for
``metal``, :mod:`swapmc.units`).

Cost. H is assembled as 3 x 3 block-sparse rows from the pair terms (``kernels/hessian*.py``):
LJ rows couple the neighbours within r_c; EAM rows couple every two atoms with a common
neighbour (the F'' term), i.e. all atoms within 2 r_c. The linear solve is either a sparse LU
factorisation of H with one particle pinned (``"direct"``: SuperLU, exact to round-off) or
conjugate gradients with a 3 x 3 block-Jacobi preconditioner on the translation-free
subspace (``"cg"``, relative residual ``rtol``). CG's error in a diagonal entry
Xi_I^T H^+ Xi_I is |H^1/2 (x - x_k)|^2 <= rtol^2 kappa relative (kappa the condition number,
~10^4-10^5 for glasses), in an off-diagonal one ~rtol kappa^1/2; the default rtol = 1e-8
gives ~1e-6 or better. The LU factor grows as ~N^4/3 and its time as ~N^2 (KA2, N = 4000:
6.4e7 entries, 1.6 GB, 40-50 s, against 2-3 s and 0.25 GB by CG; recorded by
``scripts/bench_elasticity.py``), so the default (``"auto"``) is LU up to N = 1000 and CG
above (KA2, N = 32000: 20-35 s, 0.5 GB, on a shared 2-core machine).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..kernels.hessian import (
    assemble_hessian,
    bsr_matmul,
    density_gradients,
    incidences,
    strain_terms,
)
from ..kernels.hessian_eam import eam_pair_terms
from ..kernels.hessian_lj import lj_pair_terms
from ..system import System
from .forcefield import ForceField
from .stress import MVV2E, to_user_pressure

VOIGT = ("xx", "yy", "zz", "yz", "xz", "xy")
# Tensor indices (a, b) of each Voigt index.
VOIGT_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
_VA, _VB = (tuple(c) for c in zip(*VOIGT_PAIRS))
_VOIGT_INDEX = np.array([[0, 5, 4], [5, 1, 3], [4, 3, 2]])
# Above this many particles the default solver is CG (see ``solve_translation_free``).
DIRECT_MAX_N = 1000
STRESS_UNIT = {"lj": "epsilon/sigma^3", "metal": "GPa"}


# ----------------------------------------------------------------------------- pair terms
@dataclass
class _Terms:
    """Pair terms of a configuration and their incidence structure (internal)."""

    n: int
    volume: float
    d: np.ndarray
    g: np.ndarray
    s: np.ndarray
    pi: np.ndarray
    pj: np.ndarray
    fpp: np.ndarray
    start: np.ndarray
    pair: np.ndarray
    other: np.ndarray
    rev: np.ndarray
    vself: np.ndarray
    vnb: np.ndarray
    w: np.ndarray


def _pair_terms(system: System, forcefield: ForceField) -> _Terms:
    forcefield.check_system(system)
    pos = system.positions.copy()
    h = system.box.matrix
    nlist = forcefield.new_list()
    nlist.build(pos, h, np.zeros(pos.shape, np.int64), system.species)
    shifts = nlist.shifts(h)
    gathered = nlist.gather(pos)
    model = forcefield.model
    n = system.n
    if forcefield.kind == "lj":
        table = np.ascontiguousarray(model.kernel_table())
        pi, pj, d, g, s = lj_pair_terms(gathered, nlist.species, table, shifts, nlist.row_atom,
                                        nlist.row_start, nlist.packed)
        fpp = np.empty(0)
        a_i = a_j = None
    else:
        t = model.kernel_tables()
        sc = np.array([t["rdr"], t["rdrho"], t["rhomax"], t["cutforcesq"]])
        pi, pj, d, g, s, a_i, a_j, fpp_sorted = eam_pair_terms(
            gathered, nlist.species, t["frho"], t["rhor"], t["z2r"], sc, int(t["nr"]),
            int(t["nrho"]), shifts, nlist.row_atom, nlist.row_start, nlist.packed)
        fpp = np.empty(n)
        fpp[nlist.perm if nlist.perm is not None else slice(None)] = fpp_sorted
    if nlist.perm is not None:
        pi = nlist.perm[pi]
        pj = nlist.perm[pj]
    start, pair, other, sign, rev = incidences(n, pi, pj)
    if fpp.shape[0]:
        # d rho_k / d r_p for each incidence: the slope of the partner's density at k.
        a_inc = np.where(sign < 0, a_i[pair], a_j[pair])
        vself, vnb, w = density_gradients(n, d, start, pair, sign, a_inc)
    else:
        vself = vnb = np.empty((0, 3))
        w = np.empty((0, 6))
    return _Terms(n, system.box.volume, d, g, s, pi, pj, fpp, start, pair, other, rev, vself,
                  vnb, w)


def _bsr(terms: _Terms) -> sp.bsr_matrix:
    indptr, indices, data = assemble_hessian(terms.n, terms.d, terms.g, terms.s, terms.start,
                                             terms.pair, terms.other, terms.rev, terms.fpp,
                                             terms.vself, terms.vnb)
    n3 = 3 * terms.n
    return sp.bsr_matrix((data, indices.astype(np.int32) if n3 < 2**31 else indices, indptr),
                         shape=(n3, n3))


def hessian(system: System, forcefield: ForceField) -> sp.bsr_matrix:
    """Hessian of the potential energy, d2U / dx_i,a dx_j,b.

    Parameters
    ----------
    system : System
        Any configuration (orthorhombic or triclinic cell); not modified.
    forcefield : ForceField
        LJ mixture (cut and shifted) or EAM alloy (eam/alloy or eam/fs tables).

    Returns
    -------
    scipy.sparse.bsr_matrix, shape (3N, 3N)
        Row/column 3 i + a is coordinate a of particle i (the system's order); 3 x 3 blocks,
        sorted column indices, energy / length^2. Symmetric; H times a uniform translation
        is zero. LJ couples pairs within r_c,ab; EAM couples all atoms within 2 r_c (the
        embedding term). ``.tocsr()`` gives CSR.
    """
    return _bsr(_pair_terms(system, forcefield))


def _strain_parts(terms: _Terms):
    xi, born, de, forces = strain_terms(terms.n, terms.pi, terms.pj, terms.d, terms.g,
                                        terms.s, terms.start, terms.other, terms.fpp,
                                        terms.vself, terms.vnb, terms.w)
    return xi.reshape(3 * terms.n, 6), born, de, forces


def strain_derivatives(system: System, forcefield: ForceField):
    """Mixed derivatives Xi, the Born term and the stress, in internal units.

    Parameters
    ----------
    system : System
    forcefield : ForceField

    Returns
    -------
    xi : ndarray, shape (3N, 6)
        Xi_{3i+c, I} = d2U / du_i,c d eta_I (energy / length), u reference-frame
        displacements, eta the Lagrangian strain (Voigt, engineering shears). Equivalently
        minus the derivative, at eta = 0, of F^T f_i (f_i the force, F = (1 + 2 eta)^1/2 the
        symmetric deformation of cell and positions).
    born : ndarray, shape (6, 6)
        C^Born_IJ = (1/V) d2U / d eta_I d eta_J under affine deformation (energy / length^3).
    stress : ndarray, shape (3, 3)
        Cauchy stress, potential part, positive in tension (energy / length^3); equal to
        -W / V of :mod:`swapmc.md.stress`.
    """
    terms = _pair_terms(system, forcefield)
    xi, born, de, _ = _strain_parts(terms)
    return xi, born / terms.volume, _voigt_to_tensor2(de) / terms.volume


def _voigt_to_tensor2(v) -> np.ndarray:
    return np.asarray(v)[_VOIGT_INDEX]


def _voigt_to_tensor4(c) -> np.ndarray:
    c = np.asarray(c)
    return c[_VOIGT_INDEX[:, :, None, None], _VOIGT_INDEX[None, None, :, :]]


def _tensor4_to_voigt(t) -> np.ndarray:
    a, b = np.array(_VA), np.array(_VB)
    return t[a[:, None], b[:, None], a[None, :], b[None, :]]


# ----------------------------------------------------------------------------- solve
@dataclass
class SolveInfo:
    """How the non-affine term was solved.

    Attributes
    ----------
    method : str
        ``"direct"`` or ``"cg"``.
    residual : float
        Largest relative residual |H x - Xi_I| / |Xi_I| over the six columns.
    iterations : int
        CG iterations; the columns advance together, so this is the count of the slowest
        one (0 for ``"direct"``).
    factor_nnz : int
        Non-zeros of the L and U factors (0 for ``"cg"``).
    seconds : float
        Wall time of the solve.
    """

    method: str
    residual: float
    iterations: int
    factor_nnz: int
    seconds: float


def _translation_free(x: np.ndarray) -> np.ndarray:
    """x (3N, k) minus its mean over particles for each Cartesian component."""
    y = x.reshape(-1, 3, x.shape[1])
    return (y - y.mean(axis=0)).reshape(x.shape)


def _block_jacobi(hess) -> np.ndarray:
    """Inverse 3 x 3 diagonal blocks of a Hessian, shape (N, 3, 3)."""
    hess = sp.bsr_matrix(hess, blocksize=(3, 3))
    n = hess.shape[0] // 3
    rows = np.repeat(np.arange(n), np.diff(hess.indptr))
    diag = np.zeros((n, 3, 3))
    on_diag = hess.indices == rows
    diag[rows[on_diag]] = hess.data[on_diag]
    return np.linalg.inv(diag)


def _pcg(hess, b, inv, rtol, maxiter):
    """Conjugate gradients for the columns of b at once (one pass over H per iteration).

    Each column is an independent PCG (its own step lengths) with the preconditioner
    z = P M^-1 r, M^-1 the inverse 3 x 3 diagonal blocks and P the projection off the
    translations; a column stops when |r| <= rtol |b|. Returns (x, iterations).
    """
    n = inv.shape[0]
    k = b.shape[1]
    bsr = sp.bsr_matrix(hess, blocksize=(3, 3))
    bsr.sort_indices()
    work = np.empty((n, 3, k))

    def apply(v):
        return bsr_matmul(bsr.indptr, bsr.indices, bsr.data, v.reshape(n, 3, k),
                          work).reshape(v.shape).copy()

    def precondition(r):
        z = np.matmul(inv, r.reshape(n, 3, k))
        return (z - z.mean(axis=0)).reshape(r.shape)

    x = np.zeros_like(b)
    r = b.copy()
    stop = rtol * np.linalg.norm(b, axis=0)
    active = np.linalg.norm(r, axis=0) > stop
    z = precondition(r)
    p = z.copy()
    rz = np.einsum("ij,ij->j", r, z)
    it = 0
    while active.any():
        if it >= maxiter:
            raise RuntimeError(
                f"CG did not reach rtol = {rtol:g} in {maxiter} iterations; the configuration "
                "may not be a minimum (check max_force), or use method='direct'")
        q = apply(p)
        pq = np.einsum("ij,ij->j", p, q)
        if np.any(pq[active] <= 0.0):
            raise RuntimeError(
                "the Hessian is not positive definite off the translations (the "
                "configuration is not a minimum); minimise it, or use method='direct'")
        alpha = np.where(active, rz / np.where(active, pq, 1.0), 0.0)
        x += alpha * p
        r -= alpha * q
        it += 1
        active &= np.linalg.norm(r, axis=0) > stop
        z = precondition(r)
        rz_new = np.einsum("ij,ij->j", r, z)
        beta = np.where(active, rz_new / np.where(rz != 0.0, rz, 1.0), 0.0)
        p = z + beta * p
        rz = rz_new
    return x, it


def solve_translation_free(hess: sp.spmatrix, rhs: np.ndarray, method: str = "auto",
                           rtol: float = 1e-8, maxiter: int | None = None):
    """x = H^+ b for right-hand sides orthogonal to the rigid translations.

    Parameters
    ----------
    hess : scipy sparse matrix, shape (3N, 3N)
        A Hessian (symmetric, positive semi-definite at a minimum, with the three uniform
        translations as null space).
    rhs : ndarray, shape (3N, k)
        Right-hand sides, each summing to zero over particles per Cartesian component
        (true of Xi); their translation part is removed first.
    method : {"auto", "direct", "cg"}
        ``"direct"``: particle 0 is pinned (its three rows and columns removed, which makes
        the rest non-singular for a mechanically stable state) and the reduced matrix is
        factorised by SuperLU (minimum-degree ordering on A^T + A, symmetric mode); since the
        right-hand sides sum to zero the pinned rows hold automatically, so this is an exact
        solution, then projected onto the translation-free subspace. ``"cg"``: preconditioned
        conjugate gradients on the translation-free subspace, preconditioner the inverse
        3 x 3 diagonal blocks (projected), stopping at |H x - b| <= rtol |b|; it needs H
        positive definite on that subspace (a minimum) and raises otherwise. ``"auto"``:
        direct up to N = 1000 (``DIRECT_MAX_N``), CG above.
    rtol : float
        CG tolerance (relative residual).
    maxiter : int, optional
        CG iteration limit per column (default 20 N).

    Returns
    -------
    x : ndarray, shape (3N, k)
        Translation-free solutions (length units per unit of b / H).
    info : SolveInfo
    """
    n3 = hess.shape[0]
    n = n3 // 3
    b = _translation_free(np.asarray(rhs, dtype=np.float64).reshape(n3, -1))
    if method == "auto":
        method = "direct" if n <= DIRECT_MAX_N else "cg"
    t0 = time.perf_counter()
    x = np.zeros_like(b)
    iterations = 0
    factor_nnz = 0
    if method == "direct":
        reduced = sp.csc_matrix(hess.tocsr()[3:, 3:])
        lu = spla.splu(reduced, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                       options={"SymmetricMode": True})
        factor_nnz = int(lu.L.nnz + lu.U.nnz)
        x[3:] = lu.solve(b[3:])
        del lu
    elif method == "cg":
        maxiter = 20 * n if maxiter is None else int(maxiter)
        x, iterations = _pcg(hess, b, _block_jacobi(hess), rtol, maxiter)
    else:
        raise ValueError(f"unknown method {method!r} (known: auto, direct, cg)")
    x = _translation_free(x)
    seconds = time.perf_counter() - t0
    res = hess @ x - b
    norms = np.linalg.norm(b, axis=0)
    ok = norms > 0
    residual = float(np.max(np.linalg.norm(res, axis=0)[ok] / norms[ok])) if ok.any() else 0.0
    return x, SolveInfo(method, residual, iterations, factor_nnz, seconds)


def nonaffine_term(hess: sp.spmatrix, xi: np.ndarray, method: str = "auto",
                   rtol: float = 1e-8):
    """Xi^T H^+ Xi and the non-affine displacement fields.

    Parameters
    ----------
    hess : scipy sparse matrix, shape (3N, 3N)
    xi : ndarray, shape (3N, 6)
    method, rtol
        See :func:`solve_translation_free`.

    Returns
    -------
    xhx : ndarray, shape (6, 6)
        Xi^T H^+ Xi (energy units); C^NA = -xhx / V. Symmetrised.
    fields : ndarray, shape (3N, 6)
        u_I = -H^+ Xi_I: the particles' relaxation per unit strain eta_I after the affine
        deformation (length units).
    info : SolveInfo
    """
    x, info = solve_translation_free(hess, xi, method, rtol)
    xhx = xi.T @ x
    return 0.5 * (xhx + xhx.T), -x, info


# ----------------------------------------------------------------------------- result
@dataclass
class ElasticConstants:
    """Relaxed (T = 0) elastic constants of a configuration; see the module docstring.

    Tensors are Voigt 6 x 6 (order xx, yy, zz, yz, xz, xy; engineering shears) in the user's
    stress unit ``unit`` (epsilon/sigma^3 for ``lj``, GPa for ``metal``).

    Attributes
    ----------
    C : ndarray, shape (6, 6)
        Relaxed elastic constants, C = born + nonaffine (Lagrangian strain, symmetric).
    born : ndarray, shape (6, 6)
        Affine (Born) part C^Born.
    nonaffine : ndarray, shape (6, 6)
        C^NA = -(1/V) Xi^T H^+ Xi (negative semi-definite at a minimum).
    B : ndarray, shape (6, 6)
        Relaxed stress-strain coefficients d sigma_I / d eps_J for F = 1 + eps, eps
        symmetric (Wallace; equal to C when the state is stress-free; not symmetric under
        a non-hydrostatic stress).
    stress : ndarray, shape (3, 3)
        Cauchy stress at the configuration (potential part; T = 0), positive in tension.
    G_xy : float
        Relaxed simple-shear modulus d sigma_xy / d gamma = C_66 + sigma_yy: the slope of
        ``strained_cell(h0, gamma, "shear")`` with positions remapped and relaxed (for h0
        with yz = 0, see the module docstring).
    G_iso : float
        Voigt average shear modulus of B (relaxed).
    K : float
        Bulk modulus -V dP/dV = (1/9) sum_{a,b} B_aabb (relaxed).
    G_xy_born, G_iso_born, K_born : float
        The same from the affine (Born) constants only.
    max_force : float
        Largest residual force |f_i| (energy / length, internal units): the formulas hold at
        mechanical equilibrium, with errors of first order in it.
    volume : float
        Cell volume (length^3).
    n : int
    units, unit : str
        Unit system (``lj`` / ``metal``) and the stress unit.
    solve : SolveInfo
    seconds : dict
        Wall times of the stages: ``pairs``, ``hessian``, ``strain``, ``solve``.
    fields : ndarray, shape (3N, 6), optional
        Non-affine displacement per unit strain (length units) when requested.
    """

    C: np.ndarray
    born: np.ndarray
    nonaffine: np.ndarray
    B: np.ndarray
    stress: np.ndarray
    G_xy: float
    G_iso: float
    K: float
    G_xy_born: float
    G_iso_born: float
    K_born: float
    max_force: float
    volume: float
    n: int
    units: str
    unit: str
    solve: SolveInfo
    seconds: dict = field(default_factory=dict)
    fields: np.ndarray | None = None

    def stress_rate(self, D, relaxed: bool = True) -> np.ndarray:
        """Slope of the Cauchy stress along the deformation F = 1 + D t.

        Parameters
        ----------
        D : array_like, shape (3, 3)
            Velocity gradient (any, not necessarily symmetric); D = e_x e_y^T is the simple
            shear of ``strained_cell``, diag(1, -1/2, -1/2) its constant-volume uniaxial mode.
        relaxed : bool
            Relaxed (C) or affine (Born) constants.

        Returns
        -------
        ndarray, shape (3, 3)
            d sigma / dt at t = 0 (stress unit ``unit``).
        """
        D = np.asarray(D, dtype=np.float64)
        return stress_rate(self.C if relaxed else self.born, self.stress, D)

    def as_dict(self) -> dict:
        """Plain-data summary (JSON friendly), stress unit ``unit``."""
        return {
            "units": self.units, "unit": self.unit, "n": self.n, "volume": self.volume,
            "C": self.C.tolist(), "born": self.born.tolist(),
            "nonaffine": self.nonaffine.tolist(), "B": self.B.tolist(),
            "stress": self.stress.tolist(), "G_xy": self.G_xy, "G_iso": self.G_iso,
            "K": self.K, "G_xy_born": self.G_xy_born, "G_iso_born": self.G_iso_born,
            "K_born": self.K_born, "max_force": self.max_force,
            "solve": vars(self.solve).copy(), "seconds": dict(self.seconds),
        }


def stress_rate(C, stress, D) -> np.ndarray:
    """d sigma / dt along F = 1 + D t from Lagrangian constants and the stress.

    d sigma_ab / dt = A_abcd D_cd + (sigma D^T)_ab - tr(D) sigma_ab with
    A_abcd = C_abcd + delta_ac sigma_bd.

    Parameters
    ----------
    C : ndarray, shape (6, 6)
        Voigt constants (any stress unit).
    stress : ndarray, shape (3, 3)
        Cauchy stress (same unit), positive in tension.
    D : ndarray, shape (3, 3)

    Returns
    -------
    ndarray, shape (3, 3)
    """
    c4 = _voigt_to_tensor4(C)
    s = np.asarray(stress, dtype=np.float64)
    a4 = c4 + np.einsum("ac,bd->abcd", np.eye(3), s)
    return np.einsum("abcd,cd->ab", a4, D) + s @ D.T - np.trace(D) * s


def stress_strain_coefficients(C, stress) -> np.ndarray:
    """Wallace's B_IJ = d sigma_I / d eps_J (F = 1 + eps, eps symmetric), Voigt 6 x 6.

    B_abcd = C_abcd + (delta_ac sigma_bd + delta_ad sigma_bc + sigma_ac delta_bd
    + sigma_ad delta_bc) / 2 - sigma_ab delta_cd.
    """
    c4 = _voigt_to_tensor4(C)
    s = np.asarray(stress, dtype=np.float64)
    e = np.eye(3)
    b4 = (c4 + 0.5 * (np.einsum("ac,bd->abcd", e, s) + np.einsum("ad,bc->abcd", e, s)
                      + np.einsum("ac,bd->abcd", s, e) + np.einsum("ad,bc->abcd", s, e))
          - np.einsum("ab,cd->abcd", s, e))
    return _tensor4_to_voigt(b4)


def isotropic_shear_modulus(B) -> float:
    """Voigt average shear modulus of a 6 x 6 stiffness (symmetrised first).

    G = [(B11 + B22 + B33) - (B12 + B13 + B23) + 3 (B44 + B55 + B66)] / 15.
    """
    b = 0.5 * (np.asarray(B) + np.asarray(B).T)
    return float((b[0, 0] + b[1, 1] + b[2, 2] - b[0, 1] - b[0, 2] - b[1, 2]
                  + 3.0 * (b[3, 3] + b[4, 4] + b[5, 5])) / 15.0)


def bulk_modulus(B) -> float:
    """K = (1/9) sum_{a, b <= 3} B_ab (Voigt), -V dP/dV under isotropic compression."""
    return float(np.asarray(B)[:3, :3].sum() / 9.0)


def elastic_constants(system: System, forcefield: ForceField, method: str = "auto",
                      rtol: float = 1e-8, keep_fields: bool = False) -> ElasticConstants:
    """Relaxed elastic constants of an energy minimum from the Hessian.

    Parameters
    ----------
    system : System
        An inherent structure (minimise it first, e.g. :func:`swapmc.md.fire` with a tight
        ``fmax``: the result is exact at equilibrium, with errors of first order in the
        residual forces, reported as ``max_force``).
    forcefield : ForceField
    method : {"auto", "direct", "cg"}
        Linear solver of the non-affine term (see :func:`solve_translation_free`).
    rtol : float
        CG tolerance on the relative residual.
    keep_fields : bool
        Keep the non-affine displacement fields (3N, 6) in the result.

    Returns
    -------
    ElasticConstants
    """
    times = {}
    t0 = time.perf_counter()
    terms = _pair_terms(system, forcefield)
    times["pairs"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    hess = _bsr(terms)
    times["hessian"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    xi, born_v, de, forces = _strain_parts(terms)
    times["strain"] = time.perf_counter() - t0
    xhx, fields, info = nonaffine_term(hess, xi, method, rtol)
    times["solve"] = info.seconds
    units = forcefield.units
    vol = terms.volume

    def user(x):
        return to_user_pressure(np.asarray(x) / vol, units)

    born = user(born_v)
    born = 0.5 * (born + born.T)
    nonaffine = -user(xhx)
    C = born + nonaffine
    stress = user(_voigt_to_tensor2(de))
    B = stress_strain_coefficients(C, stress)
    B_born = stress_strain_coefficients(born, stress)
    return ElasticConstants(
        C=C, born=born, nonaffine=nonaffine, B=B, stress=stress,
        G_xy=float(C[5, 5] + stress[1, 1]), G_iso=isotropic_shear_modulus(B), K=bulk_modulus(B),
        G_xy_born=float(born[5, 5] + stress[1, 1]), G_iso_born=isotropic_shear_modulus(B_born),
        K_born=bulk_modulus(B_born),
        max_force=float(np.sqrt((forces**2).sum(axis=1)).max()) if system.n else 0.0,
        volume=vol, n=system.n, units=units, unit=STRESS_UNIT[units], solve=info,
        seconds=times, fields=fields if keep_fields else None,
    )


# ----------------------------------------------------------------------------- vibrations
def vibrational_frequencies(system: System, forcefield: ForceField,
                            hess: sp.spmatrix | None = None) -> np.ndarray:
    """All normal-mode angular frequencies from the dense mass-weighted Hessian.

    Dense diagonalisation: memory 8 (3N)^2 bytes and time ~ (3N)^3, so meant for N up to a
    few thousand.

    Parameters
    ----------
    system : System
    forcefield : ForceField
    hess : sparse matrix, optional
        The Hessian, if already computed.

    Returns
    -------
    ndarray, shape (3N,)
        omega (rad / tau_LJ for ``lj``, rad / ps for ``metal``), ascending; unstable
        directions (negative eigenvalues) come out as negative omega = -sqrt(|lambda|).
        The first three are the translations (~0).
    """
    if hess is None:
        hess = hessian(system, forcefield)
    m = np.repeat(forcefield.masses(system.species), 3) * MVV2E[forcefield.units]
    w = 1.0 / np.sqrt(m)
    dyn = hess.toarray()
    dyn *= w[:, None]
    dyn *= w[None, :]
    lam = np.linalg.eigvalsh(dyn)
    return np.sign(lam) * np.sqrt(np.abs(lam))


def vibrational_dos(omega, bins: int = 100, omega_max: float | None = None, skip: int = 3):
    """Normalised density of states g(omega) and the reduced g(omega) / omega^2.

    Parameters
    ----------
    omega : ndarray
        Frequencies from :func:`vibrational_frequencies`.
    bins : int
    omega_max : float, optional
        Upper edge (default: largest omega).
    skip : int
        Lowest modes left out (the three translations).

    Returns
    -------
    centres, g, reduced : ndarray, shape (bins,)
        Bin centres (frequency units), g normalised to unit integral over the kept modes,
        and g / omega^2 (the boson-peak plot).
    """
    w = np.sort(np.asarray(omega))[skip:]
    top = float(w.max()) if omega_max is None else float(omega_max)
    hist, edges = np.histogram(w, bins=bins, range=(0.0, top))
    width = edges[1] - edges[0]
    g = hist / (w.size * width)
    centres = 0.5 * (edges[:-1] + edges[1:])
    return centres, g, g / centres**2
