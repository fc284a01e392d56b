"""Analysis: equilibration diagnostics and mechanical-response fits.

Static structure (g(r), S(q), bond-orientational order for the crystallisation guard),
relaxation (F_s, MSD, tau_alpha; time in MC sweeps) and the fits of the MD measurements:
dynamic mechanical spectroscopy (storage/loss moduli) and stress relaxation (KWW); the
analysis of spectra (loss-peak positions, Arrhenius activation energies, time-temperature
superposition) and their models (Havriliak-Negami, the KWW loss spectrum, the step-strain /
DMS cross-check). Pure functions over arrays plus :class:`FsTracker`, a bounded-memory,
checkpointable accumulator of F_s(q, t) and the MSD.
"""

from .._lazy import lazy_exports

# Public names and the submodule that defines each, imported on first use (PEP 562): the
# library's certificate imports this package at every command-line start-up, and loading
# scipy.stats and scipy.optimize there would double the time of `swapmc --help`.
_EXPORTS = {
    "BetaFeature": "beta_relaxation",
    "detect_beta_isochronal": "beta_relaxation",
    "detect_beta_isothermal": "beta_relaxation",
    "FsTracker": "dynamics",
    "default_wavenumber": "dynamics",
    "msd": "dynamics",
    "self_intermediate_scattering": "dynamics",
    "tau_alpha": "dynamics",
    "DMSComparison": "loss_models",
    "DMSPrediction": "loss_models",
    "SpectrumFit": "loss_models",
    "compare_dms": "loss_models",
    "dms_arrays": "loss_models",
    "dms_from_kww": "loss_models",
    "fit_havriliak_negami": "loss_models",
    "fit_kww_spectrum": "loss_models",
    "hn_peak_omega_tau": "loss_models",
    "hn_susceptibility": "loss_models",
    "kww_susceptibility": "loss_models",
    "MasterCurve": "master_curve",
    "ShiftFactorFit": "master_curve",
    "fit_shift_factors": "master_curve",
    "superpose": "master_curve",
    "DMSMean": "mechanics",
    "DMSResult": "mechanics",
    "KWWResult": "mechanics",
    "average_curves": "mechanics",
    "combine_dms": "mechanics",
    "debye_modulus": "mechanics",
    "fit_kww": "mechanics",
    "fit_kww_glasses": "mechanics",
    "fit_oscillation": "mechanics",
    "kww": "mechanics",
    "t_factor68": "mechanics",
    "DEFAULT_D2MIN_CUTOFF": "nonaffine",
    "Localization": "nonaffine",
    "affine_map": "nonaffine",
    "d2min": "nonaffine",
    "localization": "nonaffine",
    "neighbour_bonds": "nonaffine",
    "nonaffine_displacement": "nonaffine",
    "crystalline_fraction": "order",
    "first_shell_cutoff": "order",
    "solid_like": "order",
    "ActivationFit": "spectroscopy",
    "LossPeak": "spectroscopy",
    "fit_arrhenius": "spectroscopy",
    "fit_peak_arrhenius": "spectroscopy",
    "locate_peak": "spectroscopy",
    "spectrum_peak": "spectroscopy",
    "EquilibriumFit": "stability",
    "RateFit": "stability",
    "compare_groups": "stability",
    "fit_equilibrium_eis": "stability",
    "fit_rate_law": "stability",
    "group_mean_sem": "stability",
    "first_peak": "structure",
    "peak_window": "structure",
    "radial_distribution": "structure",
    "structure_factor": "structure",
    "TauFit": "tau_fits",
    "fit_tau": "tau_fits",
    "glass_temperature": "tau_fits",
    "measured_speedup": "tau_fits",
    "speedup": "tau_fits",
    "speedup_at_tg": "tau_fits",
    "FamilyStat": "yielding",
    "FamilySummary": "yielding",
    "YieldSummary": "yielding",
    "aqs_summary": "yielding",
    "family_summary": "yielding",
    "mean_over_glasses": "yielding",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
