"""Analysis: equilibration diagnostics and mechanical-response fits.

Static structure (g(r), S(q), bond-orientational order for the crystallisation guard),
relaxation (F_s, MSD, tau_alpha; time in MC sweeps) and the fits of the MD measurements:
dynamic mechanical spectroscopy (storage/loss moduli) and stress relaxation (KWW); the
analysis of spectra (loss-peak positions, Arrhenius activation energies, time-temperature
superposition) and their models (Havriliak-Negami, the KWW loss spectrum, the step-strain /
DMS cross-check). Pure functions over arrays plus :class:`FsTracker`, a bounded-memory,
checkpointable accumulator of F_s(q, t) and the MSD.
"""

from .beta_relaxation import BetaFeature, detect_beta_isochronal, detect_beta_isothermal
from .dynamics import (
    FsTracker,
    default_wavenumber,
    msd,
    self_intermediate_scattering,
    tau_alpha,
)
from .loss_models import (
    DMSComparison,
    DMSPrediction,
    SpectrumFit,
    compare_dms,
    dms_arrays,
    dms_from_kww,
    fit_havriliak_negami,
    fit_kww_spectrum,
    hn_peak_omega_tau,
    hn_susceptibility,
    kww_susceptibility,
)
from .master_curve import MasterCurve, ShiftFactorFit, fit_shift_factors, superpose
from .mechanics import (
    DMSMean,
    DMSResult,
    KWWResult,
    average_curves,
    combine_dms,
    debye_modulus,
    fit_kww,
    fit_kww_glasses,
    fit_oscillation,
    kww,
    t_factor68,
)
from .nonaffine import (
    DEFAULT_D2MIN_CUTOFF,
    Localization,
    affine_map,
    d2min,
    localization,
    neighbour_bonds,
    nonaffine_displacement,
)
from .order import crystalline_fraction, first_shell_cutoff, solid_like
from .spectroscopy import (
    ActivationFit,
    LossPeak,
    fit_arrhenius,
    fit_peak_arrhenius,
    locate_peak,
    spectrum_peak,
)
from .stability import (
    EquilibriumFit,
    RateFit,
    fit_equilibrium_eis,
    fit_rate_law,
    group_mean_sem,
)
from .structure import first_peak, peak_window, radial_distribution, structure_factor
from .tau_fits import (
    TauFit,
    fit_tau,
    glass_temperature,
    measured_speedup,
    speedup,
    speedup_at_tg,
)
from .yielding import (
    FamilyStat,
    FamilySummary,
    YieldSummary,
    aqs_summary,
    family_summary,
    mean_over_glasses,
)

__all__ = [
    "DEFAULT_D2MIN_CUTOFF",
    "DMSMean",
    "DMSResult",
    "EquilibriumFit",
    "FamilyStat",
    "FamilySummary",
    "FsTracker",
    "KWWResult",
    "Localization",
    "RateFit",
    "TauFit",
    "YieldSummary",
    "affine_map",
    "aqs_summary",
    "average_curves",
    "combine_dms",
    "crystalline_fraction",
    "d2min",
    "debye_modulus",
    "default_wavenumber",
    "first_peak",
    "family_summary",
    "first_shell_cutoff",
    "fit_kww",
    "fit_kww_glasses",
    "fit_equilibrium_eis",
    "fit_oscillation",
    "fit_rate_law",
    "fit_tau",
    "glass_temperature",
    "group_mean_sem",
    "measured_speedup",
    "kww",
    "localization",
    "mean_over_glasses",
    "t_factor68",
    "msd",
    "neighbour_bonds",
    "nonaffine_displacement",
    "peak_window",
    "radial_distribution",
    "self_intermediate_scattering",
    "solid_like",
    "speedup",
    "speedup_at_tg",
    "structure_factor",
    "tau_alpha",
    # spectra: peaks, activation energies, master curves, loss models
    "ActivationFit",
    "BetaFeature",
    "DMSComparison",
    "DMSPrediction",
    "LossPeak",
    "MasterCurve",
    "ShiftFactorFit",
    "SpectrumFit",
    "compare_dms",
    "detect_beta_isochronal",
    "detect_beta_isothermal",
    "dms_arrays",
    "dms_from_kww",
    "fit_arrhenius",
    "fit_havriliak_negami",
    "fit_kww_spectrum",
    "fit_peak_arrhenius",
    "fit_shift_factors",
    "hn_peak_omega_tau",
    "hn_susceptibility",
    "kww_susceptibility",
    "locate_peak",
    "spectrum_peak",
    "superpose",
]
