"""LAMMPS input lines for a swapmc model: the interaction as LAMMPS commands.

One function turns a model into the commands that make LAMMPS evaluate exactly swapmc's
energy, one command per line (LAMMPS reads one command per line; ``;`` is not a separator):

* **LJ mixtures** (:class:`swapmc.models.LJMixture`, cut and shifted)::

      pair_style lj/cut 2.5                 <- the largest r_c of the model
      pair_coeff 1 1 1.0 1.0 2.5  # A A     <- eps sigma r_c of every pair, types i <= j
      pair_coeff 1 2 1.5 0.8 2.0  # A B
      ...
      pair_modify shift yes
      mass 1 1.0  # A

* **EAM** (:class:`swapmc.models.EAMPotential`) from the setfl file the model was written to
  (:meth:`~swapmc.models.EAMPotential.write`)::

      pair_style eam/fs
      pair_coeff * * potential.eam.fs Cu Zr X
      mass 1 63.546  # Cu

Type ``t`` is species ``t - 1`` of the model, the numbering of every data file swapmc writes
(:func:`swapmc.io.write_lammps_data`), so the lines apply to those files directly; the
species names follow as comments (they are also the data file's type labels). Numbers are
written with Python's ``repr``, so LAMMPS reads the very float64 values swapmc uses.

:func:`lammps_protocol_script` goes further: a ready-to-run input of one of swapmc's MD
protocols (NPT, DMS, stress relaxation, AQS and finite-rate shear) for users who run LAMMPS
themselves, every parameter a LAMMPS ``index`` variable (``lmp -in in.dms.lammps -var T 0.3
-var period 100``); ``swapmc run`` writes them next to ``in.lammps`` and ``swapmc library
export`` next to each model's ``in-<hash12>.lammps`` (:func:`write_lammps_protocols`).
"""

from __future__ import annotations

import os

from .atomic import atomic_write

__all__ = ["PROTOCOLS", "check_protocol_parameters", "lammps_input_script",
           "lammps_pair_lines", "lammps_protocol_script", "protocol_parameters",
           "write_lammps_input", "write_lammps_protocols"]

# LAMMPS unit style of each swapmc unit system.
_LAMMPS_UNITS = {"lj": "lj", "metal": "metal"}


def _num(x) -> str:
    return repr(float(x))


def lammps_pair_lines(model, potential_file: str | None = None) -> list[str]:
    """LAMMPS commands that define the model's interaction and masses, one per entry.

    Parameters
    ----------
    model : LJMixture or EAMPotential
        The model (``kind`` ``"lj"`` or ``"eam"``).
    potential_file : str, optional
        EAM only, required there: the setfl file as LAMMPS should open it (a path relative
        to the directory LAMMPS runs in, or absolute), holding this potential (e.g. written
        by ``model.write(potential_file)``).

    Returns
    -------
    list of str
        ``pair_style``, ``pair_coeff`` (LJ: one per pair i <= j with ε, σ, r_c in the
        model's energy and length units; EAM: ``* * file`` and the element of each type),
        ``pair_modify shift yes`` (LJ) and ``mass`` (mass units) commands. Types are the
        data-file types of swapmc (species index + 1).

    Raises
    ------
    ValueError
        For EAM without ``potential_file``, or a file name containing whitespace (LAMMPS
        would split it).
    NotImplementedError
        For another model kind.
    """
    species = list(model.species)
    if model.kind == "lj":
        lines = [f"pair_style lj/cut {_num(model.max_cutoff)}"]
        for a in range(len(species)):
            for b in range(a, len(species)):
                # LAMMPS rejects "pair_coeff 2 1": the first type must not exceed the second.
                lines.append(
                    f"pair_coeff {a + 1} {b + 1} {_num(model.epsilon[a, b])} "
                    f"{_num(model.sigma[a, b])} {_num(model.cutoff[a, b])}"
                    f"  # {species[a]} {species[b]}"
                )
        # swapmc's LJ energy is shifted to zero at each pair's r_c (forces are not).
        lines.append("pair_modify shift yes")
    elif model.kind == "eam":
        if not potential_file:
            raise ValueError("an EAM model needs potential_file (the setfl file LAMMPS reads)")
        potential_file = os.fspath(potential_file)
        if potential_file.split() != [potential_file]:
            raise ValueError(f"potential file name {potential_file!r} contains whitespace")
        lines = [
            f"pair_style eam/{model.setfl_kind}",
            f"pair_coeff * * {potential_file} {' '.join(species)}",
        ]
    else:
        raise NotImplementedError(f"no LAMMPS pair style for model kind {model.kind!r}")
    lines += [f"mass {t + 1} {_num(m)}  # {name}"
              for t, (m, name) in enumerate(zip(model.masses, species, strict=True))]
    return lines


def lammps_input_script(model, data_file: str, potential_file: str | None = None,
                        comment: str = "") -> str:
    """A complete LAMMPS input that reads a swapmc data file and sets up the model.

    Parameters
    ----------
    model : LJMixture or EAMPotential
        The model.
    data_file : str
        The data file as LAMMPS should open it, e.g. ``"final.data"``, or ``"${data}"`` for
        a file named on the command line (``lmp -in in.lammps -var data sample.data``).
    potential_file : str, optional
        EAM: see :func:`lammps_pair_lines`.
    comment : str
        A first comment line (without ``#``).

    Returns
    -------
    str
        ``units``, ``atom_style atomic``, ``boundary p p p``, ``read_data`` and the lines of
        :func:`lammps_pair_lines`, newline-terminated. Append ``run 0`` to get the energy of
        the configuration, which equals swapmc's.
    """
    units = _LAMMPS_UNITS.get(model.units)
    if units is None:
        raise ValueError(f"no LAMMPS unit style for swapmc units {model.units!r}")
    if data_file.split() != [data_file]:
        raise ValueError(f"data file name {data_file!r} contains whitespace")
    if "\n" in comment or "\r" in comment:
        raise ValueError("comment must be a single line")
    lines = [f"# {comment.strip()}"] if comment.strip() else []
    lines += [f"units {units}", "atom_style atomic", "boundary p p p", f"read_data {data_file}"]
    lines += lammps_pair_lines(model, potential_file)
    return "\n".join(lines) + "\n"


def write_lammps_input(path: str | os.PathLike, model, data_file: str,
                       potential_file: str | None = None, comment: str = "") -> None:
    """Write :func:`lammps_input_script` to ``path`` atomically (parameters as there)."""
    text = lammps_input_script(model, data_file, potential_file, comment)
    with atomic_write(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


# ============================================================================ hand-off inputs
# Ready-to-run LAMMPS inputs of swapmc's MD protocols, for users who run LAMMPS themselves
# (no Python): each file loads the configuration and the model as lammps_input_script does
# and runs one protocol with the conventions of swapmc's engines (swapmc.md.engine):
#
#   in.npt.lammps         NPT at (T, P), then the cell fixed at the mean volume -> npt.data
#   in.dms.lammps         [NPT] + NVT, then eps(t) = eps_A sin(omega t)         -> dms.txt
#   in.relax.lammps       [NPT] + NVT, then per repeat +eps and -eps steps held  -> relax.txt
#   in.shear_aqs.lammps   FIRE, then AQS steps (affine step + FIRE)             -> shear_aqs.txt
#   in.shear_rate.lammps  NVT, then shear at a constant rate (SLLOD, remap v)    -> shear_rate.txt
#
# Every parameter is a LAMMPS index variable with swapmc's command default: ``lmp -in
# in.dms.lammps -var T 0.3 -var period 100`` changes it on the command line; a parameter
# without a default (the temperature of a library export, the DMS period, the relaxation's
# duration, the shear rate) must be given that way, or the input stops saying so.
# The numbers follow md/: defaults of md/engine.py, md/minimize.py, md/protocols.py,
# md/cli.py and md/shear.py, repeated here because io/ sits below md/ (tests check them).

#: Protocols of :func:`lammps_protocol_script`, in the order files are written.
PROTOCOLS = ("npt", "dms", "relax", "shear_aqs", "shear_rate")
#: MD time step (tau_LJ; ps) and FIRE's initial step, as md/engine.py and md/minimize.py.
DEFAULT_DT = {"lj": 0.005, "metal": 0.002}
FIRE_DT = {"lj": 0.005, "metal": 0.002}
#: amu Å^2/ps^2 in eV (md/stress.py MVV2E): the force-to-velocity factor is its inverse.
MVV2E = {"lj": 1.0, "metal": 1.0364269e-4}
#: LAMMPS pressure unit -> swapmc's stress unit (metal: bar -> GPa; 1 bar = 1e-4 GPa).
STRESS_FROM_LAMMPS = {"lj": 1.0, "metal": 1e-4}
#: NPT steps of a pre-equilibration when a pressure is set (md/protocols.py).
DEFAULT_NPT_STEPS = 5000
_FIRE_MAX_MOVE = 0.1  # largest FIRE displacement per iteration, as swapmc.md.fire
_TILT_TOLERANCE = 1e-9  # as md/engine.py: flips happen beyond half the edge (1 + this)

# name -> (default or None: required, protocols that read it, help). A default of "<P>" is
# the model's pressure when it has one (else required where used).
_PARAMETERS = {
    "data": (None, PROTOCOLS, "the configuration (LAMMPS data file written by swapmc)"),
    "seed": ("1", ("npt", "dms", "relax", "shear_rate"),
             "random seed (> 0) of velocities and thermostat; each stage adds its own offset"),
    "T": (None, ("npt", "dms", "relax", "shear_rate"), "temperature (epsilon/k_B or K)"),
    "dt": ("<dt>", ("npt", "dms", "relax", "shear_rate"), "MD time step (tau_LJ or ps)"),
    "tau_t": ("<100dt>", ("npt", "dms", "relax", "shear_rate"),
              "thermostat time constant (tau_LJ or ps)"),
    "thermostat": ("csvr", ("npt", "dms", "relax", "shear_rate"),
                   "csvr (fix temp/csvr: swapmc's Bussi), langevin, or none (NVE; NPT keeps "
                   "csvr)"),
    "velocities": ("create", ("npt", "dms", "relax", "shear_rate"),
                   "create: Maxwell-Boltzmann at T (fresh for each repeat of relax); keep: "
                   "those of the data file"),
    "P": ("<P>", ("npt", "dms", "relax"),
          "pressure of the NPT stage (epsilon/sigma^3 or GPa)"),
    "npt_steps": ("<npt>", ("npt", "dms", "relax"),
                  "NPT steps (isotropic fix nph + thermostat); the cell is then fixed at the "
                  "mean volume of the second half; 0 skips the stage"),
    "tau_p": ("<100dt>", ("npt", "dms", "relax"), "barostat time constant (tau_LJ or ps)"),
    "equilibration_steps": ("2000", ("dms", "relax", "shear_rate"),
                            "NVT steps at the fixed cell before deforming (after NPT)"),
    "mode": ("shear", ("dms", "relax", "shear_aqs", "shear_rate"),
             "dms/relax: shear (xy, sigma_xy) or uniaxial (constant volume, sigma_xx - "
             "(sigma_yy + sigma_zz)/2); shear_*: shear or pure (sigma_xx - sigma_yy)/2"),
    "amplitude": ("0.01", ("dms",), "strain amplitude eps_A"),
    "period": (None, ("dms",), "period 2 pi / omega (tau_LJ or ps)"),
    "cycles": ("7", ("dms",), "cycles simulated (swapmc drops the first in its fit)"),
    "sample_every": ("0", ("dms", "relax", "shear_rate"),
                     "MD steps between samples (dms: 0 gives about 100 per cycle)"),
    "strain": ("0.02", ("relax",), "step strain eps_0"),
    "duration": (None, ("relax",), "hold time after each step (tau_LJ or ps)"),
    "repeats": ("4", ("relax",), "repeats (each +eps and -eps from the same state)"),
    "decorrelation_steps": ("200", ("relax",), "NVT steps before each repeat"),
    "step": ("1e-4", ("shear_aqs",), "strain increment per AQS step"),
    "max_strain": ("0.2", ("shear_aqs", "shear_rate"), "last strain"),
    "ftol": ("1e-8", ("shear_aqs",),
             "FIRE tolerance on every particle's |F| (min_modify norm max)"),
    "max_iter": ("100000", ("shear_aqs",), "FIRE iterations per step at most"),
    "rate": (None, ("shear_rate",), "strain rate (1/tau_LJ or 1/ps; pure: true rate)"),
    "thermo": ("1000", PROTOCOLS, "steps between LAMMPS thermo lines"),
}
# Where a protocol's command has another default (swapmc shear --protocol rate; relax).
_PROTOCOL_DEFAULTS = {"relax": {"sample_every": "1"},
                      "shear_rate": {"equilibration_steps": "1000", "sample_every": "10"}}
_CHOICES = {"thermostat": ("csvr", "langevin", "none"), "velocities": ("create", "keep")}
_MODES = {"dms": ("shear", "uniaxial"), "relax": ("shear", "uniaxial"),
          "shear_aqs": ("shear", "pure"), "shear_rate": ("shear", "pure")}
_OUTPUT = {"npt": "npt.data", "dms": "dms.txt", "relax": "relax.txt",
           "shear_aqs": "shear_aqs.txt", "shear_rate": "shear_rate.txt"}


def protocol_parameters(protocol: str) -> list[str]:
    """The parameters (LAMMPS variable names) a protocol's input reads, in file order."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    return [k for k, (_, where, _) in _PARAMETERS.items() if protocol in where]


def check_protocol_parameters(params) -> dict:
    """``params`` (name -> value) as LAMMPS variable texts, checked: known names, one word,
    numbers where numbers are read and the allowed choices elsewhere.

    Raises
    ------
    ValueError
        Naming the parameter and what is allowed.
    """
    out = {}
    for name, value in dict(params or {}).items():
        if name not in _PARAMETERS:
            raise ValueError(f"unknown LAMMPS input parameter {name!r} (known: "
                             f"{', '.join(_PARAMETERS)})")
        text = str(value).strip()
        if not text or text.split() != [text] or any(c in text for c in "\"'$#&{}"):
            raise ValueError(f"LAMMPS input parameter {name}: {value!r} must be one word "
                             "without quotes, $, #, &, braces")
        if name in _CHOICES:
            if text not in _CHOICES[name]:
                raise ValueError(f"LAMMPS input parameter {name} must be one of "
                                 f"{', '.join(_CHOICES[name])}, got {text!r}")
        elif name == "mode":
            if text not in ("shear", "uniaxial", "pure"):
                raise ValueError(f"LAMMPS input parameter mode must be shear, uniaxial or "
                                 f"pure, got {text!r}")
        elif name != "data":
            try:
                number = float(text)
            except ValueError:
                raise ValueError(f"LAMMPS input parameter {name} must be a number, got "
                                 f"{text!r}") from None
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError(f"LAMMPS input parameter {name} must be finite, got {text}")
        out[name] = text
    return out


def _defaults(units: str, pressure, protocol: str) -> dict:
    dt = DEFAULT_DT[units]
    values = {}
    for name in protocol_parameters(protocol):
        default = _PARAMETERS[name][0]
        if default == "<dt>":
            default = repr(dt)
        elif default == "<100dt>":
            default = repr(100.0 * dt)
        elif default == "<P>":
            default = None if pressure is None else repr(float(pressure))
        elif default == "<npt>":
            default = str(DEFAULT_NPT_STEPS if (pressure is not None or protocol == "npt")
                          else 0)
        values[name] = _PROTOCOL_DEFAULTS.get(protocol, {}).get(name, default)
    return values


class _Script:
    """Lines of one input, with the blocks the protocols share."""

    def __init__(self, units: str):
        self.units = units
        self.lines: list[str] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def comment(self, text: str) -> None:
        self.lines += ["", f"# ---- {text}"]

    def stop(self, condition: str, message: str) -> None:
        """Print ``message`` and stop when the Boolean ``condition`` holds."""
        self.add(f"if \"{condition}\" then \"print 'swapmc input: {message}'\" \"quit 1\"")

    def skip_unless(self, condition: str, label: str) -> None:
        """Jump forward to ``label`` (its line is added by the caller) unless
        ``condition``."""
        self.add(f"if \"!({condition})\" then \"jump SELF {label}\"")

    def capture(self, name: str, expression: str) -> None:
        """``variable name equal <the value of expression now>`` (a number, full
        precision)."""
        self.add(f"variable {name} equal $({expression}:%.17g)")

    def velocities(self, seed: str) -> None:
        """Maxwell-Boltzmann velocities at T (zero momentum) unless ``velocities keep``;
        ``seed`` a formula."""
        self.add("if \"${velocities} == create\" then \"velocity all create ${T} "
                 f"$({seed}:%.0f) dist gaussian mom yes rot no\"")

    def thermostat(self, temp_id: str, seed: str, kind: str = "${thermostat}") -> None:
        """``fix swapmc_int all nve`` and the thermostat ``swapmc_th`` on ``temp_id``
        (none when ``kind`` is none); ``seed`` a formula."""
        self.add("fix swapmc_int all nve")
        for style, fix in (("csvr", "temp/csvr ${T} ${T} ${tau_t}"),
                           ("langevin", "langevin ${T} ${T} ${tau_t}")):
            self.add(f"if \"{kind} == {style}\" then \"fix swapmc_th all {fix} "
                     f"$({seed}:%.0f)\" \"fix_modify swapmc_th temp {temp_id}\"")

    def thermostat_off(self, kind: str = "${thermostat}") -> None:
        self.add(f"if \"{kind} != none\" then \"unfix swapmc_th\"", "unfix swapmc_int")

    def nvt(self, steps: str, seed: str, label: str) -> None:
        """``steps`` NVT steps at the fixed cell (skipped when 0)."""
        self.skip_unless(f"{steps} > 0", label)
        self.thermostat("swapmc_temp", seed)
        self.add(f"run {steps}")
        self.thermostat_off()
        self.add(f"label {label}")

    def box_ahead(self, change: str) -> None:
        """The cell of the first step before a deformation run (``change``: a change_box
        command), the velocities corrected so that LAMMPS's first half-kick uses the forces
        of the current cell, as LammpsEngine._box_ahead does."""
        kick = 0.5 / MVV2E[self.units]  # F / (m mvv2e) is the acceleration
        self.add("run 0", "fix swapmc_f0 all store/state 0 fx fy fz", change, "run 0")
        for k, c in enumerate("xyz", start=1):
            self.add(f"variable swapmc_k{c} atom v{c}+{kick!r}*dt*(f_swapmc_f0[{k}]-f{c})"
                     "/mass")
        self.add("velocity all set v_swapmc_kx v_swapmc_ky v_swapmc_kz", "unfix swapmc_f0",
                 "variable swapmc_kx delete", "variable swapmc_ky delete",
                 "variable swapmc_kz delete")

    def every(self, fallback: str) -> None:
        """``swapmc_every``: ``sample_every``, or ``fallback`` (a formula) when it is 0;
        ``swapmc_next``: the next sampled step."""
        self.add("variable swapmc_every equal ${sample_every}",
                 "if \"${sample_every} == 0\" then \"variable swapmc_every delete\" "
                 f"\"variable swapmc_every equal {fallback}\"",
                 "variable swapmc_every0 equal ${swapmc_every}",
                 "variable swapmc_next equal step+${swapmc_every0}")


def _sample(names) -> str:
    """Values of formulas at full precision, separated by spaces (print text)."""
    return " ".join(f"$({n}:%.17g)" for n in names)


def _stress_variable(mode: str, press: str) -> str:
    """The conjugate stress (swapmc's unit, positive in tension) of a mode as a LAMMPS
    formula of the pressure compute ``press``."""
    p = f"c_{press}"
    if mode == "shear":
        return f"-{p}[4]*v_swapmc_conv"
    if mode == "uniaxial":
        return f"-({p}[1]-0.5*({p}[2]+{p}[3]))*v_swapmc_conv"
    return f"-0.5*({p}[1]-{p}[2])*v_swapmc_conv"  # pure


def _box_numbers(s: _Script, tag: str) -> None:
    """The current cell as numbers ``swapmc_<tag>_<entry>`` (lo, lengths, tilts)."""
    for entry in ("xlo", "ylo", "zlo", "lx", "ly", "lz", "xy", "xz", "yz"):
        s.capture(f"swapmc_{tag}_{entry}", entry)


def _scaled_box(tag: str, first: str, rest: str, remap: bool) -> str:
    """change_box to the cell ``tag`` with its first row scaled by ``first`` and the others
    by ``rest`` (formulas), origin kept."""
    v = {e: f"v_swapmc_{tag}_{e}" for e in ("xlo", "ylo", "zlo", "lx", "ly", "lz", "xy",
                                            "xz", "yz")}
    return (f"change_box all x final ${{swapmc_{tag}_xlo}} $({v['xlo']}+{v['lx']}*{first}"
            f":%.17g) y final ${{swapmc_{tag}_ylo}} $({v['ylo']}+{v['ly']}*{rest}:%.17g) "
            f"z final ${{swapmc_{tag}_zlo}} $({v['zlo']}+{v['lz']}*{rest}:%.17g) "
            f"xy final $({v['xy']}*{first}:%.17g) xz final $({v['xz']}*{first}:%.17g) "
            f"yz final $({v['yz']}*{rest}:%.17g)" + (" remap" if remap else "")
            + " units box")


def lammps_protocol_script(model, protocol: str, data_file: str | None = None,
                           potential_file: str | None = None, *, params=None,
                           pressure: float | None = None, comment: str = "") -> str:
    """A ready-to-run LAMMPS input of one of swapmc's MD protocols.

    Parameters
    ----------
    model : LJMixture or EAMPotential
    protocol : {"npt", "dms", "relax", "shear_aqs", "shear_rate"}
        See :data:`PROTOCOLS` and the comment block of the file written.
    data_file : str, optional
        Default of the ``data`` variable (e.g. ``"final.data"``); None makes ``-var data
        FILE`` required.
    potential_file : str, optional
        EAM: the setfl file, as in :func:`lammps_pair_lines`.
    params : dict, optional
        Defaults to write instead of swapmc's (name -> value; see
        :func:`protocol_parameters` and :func:`check_protocol_parameters`); a parameter a
        protocol does not read is ignored there.
    pressure : float, optional
        The model's pressure (user unit), the default of ``P``; with it the DMS and
        relaxation inputs start with the NPT stage, as ``swapmc dms``/``relax`` do.
    comment : str
        A first comment line.

    Returns
    -------
    str
        The input, newline-terminated. Run it as ``lmp -in FILE [-var NAME VALUE ...]``
        from the directory holding the data (and potential) file: ``jump SELF`` needs a
        file, not standard input.
    """
    units = _LAMMPS_UNITS.get(model.units)
    if units is None:
        raise ValueError(f"no LAMMPS unit style for swapmc units {model.units!r}")
    if "\n" in comment or "\r" in comment:
        raise ValueError("comment must be a single line")
    values = _defaults(model.units, pressure, protocol)
    if data_file is not None:
        if data_file.split() != [data_file]:
            raise ValueError(f"data file name {data_file!r} contains whitespace")
        values["data"] = data_file
    given = check_protocol_parameters(params)
    values.update({k: v for k, v in given.items() if k in values})
    if "mode" in values and values["mode"] not in _MODES[protocol]:
        raise ValueError(f"mode of {protocol} must be one of {', '.join(_MODES[protocol])}, "
                         f"got {values['mode']!r}")
    s = _Script(model.units)
    _header(s, model, protocol, values, comment)
    _model(s, model, potential_file, values)
    {"npt": _npt, "dms": _dms, "relax": _relax, "shear_aqs": _aqs,
     "shear_rate": _rate}[protocol](s, values)
    s.add("", f"print \"swapmc input: {protocol} done, see {_OUTPUT[protocol]}\"")
    return "\n".join(s.lines) + "\n"


_DESCRIPTION = {
    "npt": "NPT pre-equilibration (swapmc.md.protocols.npt_equilibrate): fix nph iso at P "
           "with the thermostat for npt_steps, the second half averaged, then the cell "
           "scaled to the mean volume (velocities divided by the length factor) and written "
           "to npt.data with the velocities, for the other inputs (-var data npt.data -var "
           "velocities keep -var npt_steps 0).",
    "dms": "dynamic mechanical spectroscopy (swapmc dms): [NPT at P,] NVT at T, then eps(t) "
           "= amplitude sin(2 pi t / period) for cycles periods by fix deform ... variable "
           "with remap x, the box kept one step ahead as swapmc's LAMMPS engine does (the "
           "stress of step n is that of the strain of step n). dms.txt: t, strain, "
           "conjugate stress, potential energy, temperature; the first row is t = 0. Fit "
           "sigma = s0 + eps_A (M' sin + M'' cos) over the cycles after the first, e.g. "
           "with swapmc.analysis.mechanics.fit_oscillation.",
    "relax": "stress relaxation (swapmc relax): [NPT at P,] NVT at T, then per repeat fresh "
             "velocities, decorrelation_steps NVT, and from that state a step +strain and a "
             "step -strain (affine, change_box remap), each held for duration with the same "
             "thermostat seed. relax.txt: repeat, sign, t, conjugate stress; swapmc's "
             "curve is (stress(+) - stress(-)) / 2, averaged over repeats, over strain.",
    "shear_aqs": "athermal quasistatic shear (swapmc shear): FIRE (min_style fire, "
                 "min_modify norm max) to the inherent structure, then steps of the affine "
                 "strain (change_box remap; a tilt beyond half the box flipped as swapmc "
                 "does) each followed by FIRE to max |F_i| < ftol. shear_aqs.txt: strain, "
                 "conjugate stress, energy per particle, max |F_i|, FIRE iterations.",
    "shear_rate": "finite-rate shear (swapmc shear --protocol rate): NVT at T, then fix "
                  "deform at rate with remap v, the streaming velocity added at the start, "
                  "the thermostat on the peculiar velocities (compute temp/deform), the box "
                  "one step ahead as in swapmc's LAMMPS engine. shear_rate.txt: t, strain, "
                  "conjugate stress, energy per particle, temperature every sample_every "
                  "steps (swapmc averages them in blocks).",
}


def _wrap(text: str, width: int = 96) -> list[str]:
    import textwrap

    return ["# " + line for line in textwrap.wrap(text, width - 2)]


def _header(s: _Script, model, protocol, values, comment) -> None:
    if comment.strip():
        s.add(f"# {comment.strip()}")
    s.add(*_wrap(f"swapmc hand-off input ({protocol}): {_DESCRIPTION[protocol]}"))
    s.add(*_wrap(f"Units: LAMMPS {_LAMMPS_UNITS[model.units]}; stresses written are swapmc's "
                 f"({'epsilon/sigma^3' if model.units == 'lj' else 'GPa'}, positive in "
                 "tension: sigma = -P)."))
    required = " ".join(f"-var {k} <{k}>" for k, v in values.items()
                        if v is None and not (k == "P" and protocol in ("dms", "relax")))
    s.add(f"# Run: lmp -in <this file> {required + ' ' if required else ''}"
          "[-var NAME VALUE ...] (in the directory of the data file)")
    s.comment("parameters: index variables, so -var NAME VALUE on the command line wins")
    # P is needed only by an NPT stage (checked there): optional in dms and relax.
    optional = {"P"} if protocol in ("dms", "relax") else set()
    for name, value in values.items():
        help_ = _PARAMETERS[name][2]
        if value is None:
            s.add(f"# {name} ({'with npt_steps > 0' if name in optional else 'required'}): "
                  f"{help_}")
        else:
            s.add(f"variable {name} index {value}  # {help_}")
    for name, value in values.items():
        if value is None and name not in optional:
            s.stop(f"$(is_defined(variable,{name})) == 0",
                   f"give -var {name} <value>: {_PARAMETERS[name][2]}")
    for name in ("thermostat", "velocities"):
        if name in values:
            s.stop(" && ".join(f"${{{name}}} != {c}" for c in _CHOICES[name]),
                   f"{name} must be one of {', '.join(_CHOICES[name])}")
    if "mode" in values:
        s.stop(" && ".join(f"${{mode}} != {c}" for c in _MODES[protocol]),
               f"mode must be one of {', '.join(_MODES[protocol])}")


def _model(s: _Script, model, potential_file, values) -> None:
    s.comment("model and configuration (as in.lammps)")
    s.add(f"units {_LAMMPS_UNITS[model.units]}", "atom_style atomic", "atom_modify map yes",
          "boundary p p p", "read_data ${data}", "change_box all triclinic")
    s.add(*lammps_pair_lines(model, potential_file))
    s.add("neigh_modify every 1 delay 0 check yes")
    if "dt" in values:
        s.add("timestep ${dt}")
    s.add("compute swapmc_pe all pe", "compute swapmc_temp all temp",
          "compute swapmc_press all pressure swapmc_temp",
          "thermo_style custom step c_swapmc_pe c_swapmc_temp vol "
          + " ".join(f"c_swapmc_press[{k}]" for k in range(1, 7)),
          "thermo_modify norm no", "thermo ${thermo}",
          f"variable swapmc_conv equal {STRESS_FROM_LAMMPS[model.units]!r}")


def _npt_stage(s: _Script, forced: bool) -> None:
    """The NPT stage (skipped when npt_steps is 0 unless ``forced``)."""
    s.comment("NPT (isotropic fix nph at P, the thermostat; csvr when thermostat is none), "
              "then the cell fixed at the mean volume of the second half")
    label = "swapmc_after_npt"
    if not forced:
        s.skip_unless("${npt_steps} > 0", label)
    s.stop("$(is_defined(variable,P)) == 0", "give -var P <pressure> for the NPT stage")
    s.stop("${npt_steps} < 2", "npt_steps must be >= 2")
    scale = "10000.0*" if s.units == "metal" else ""  # GPa -> bar
    s.add(f"variable swapmc_P equal {scale}${{P}}",
          "variable swapmc_half equal floor(${npt_steps}/2)",
          "variable swapmc_rest equal ${npt_steps}-${swapmc_half}",
          "variable swapmc_nptth string ${thermostat}",
          "if \"${thermostat} == none\" then \"variable swapmc_nptth delete\" "
          "\"variable swapmc_nptth string csvr\"")
    s.thermostat("swapmc_temp", "v_seed+11", kind="${swapmc_nptth}")
    s.add("unfix swapmc_int",
          "fix swapmc_int all nph iso ${swapmc_P} ${swapmc_P} ${tau_p}",
          "run ${swapmc_half}",
          "variable swapmc_pressure equal (c_swapmc_press[1]+c_swapmc_press[2]"
          "+c_swapmc_press[3])/3*v_swapmc_conv",
          "variable swapmc_volume equal vol",
          "fix swapmc_avg all ave/time 1 ${swapmc_rest} ${swapmc_rest} v_swapmc_volume "
          "v_swapmc_pressure",
          "run ${swapmc_rest}")
    s.capture("swapmc_vmean", "f_swapmc_avg[1]")
    s.capture("swapmc_pmean", "f_swapmc_avg[2]")
    s.capture("swapmc_f", "(v_swapmc_vmean/vol)^(1/3)")
    s.capture("swapmc_tk", "c_swapmc_temp/(v_swapmc_f*v_swapmc_f)")
    s.add("unfix swapmc_avg")
    s.thermostat_off(kind="${swapmc_nptth}")
    _box_numbers(s, "npt")
    s.add(_scaled_box("npt", "v_swapmc_f", "v_swapmc_f", remap=True),
          "if \"${swapmc_tk} > 0\" then \"velocity all scale ${swapmc_tk}\"",
          "print \"swapmc input: NPT <P> = ${swapmc_pmean}, mean volume ${swapmc_vmean}, "
          "N/V = $(atoms/v_swapmc_vmean:%.10g); cell fixed at the mean volume\"")
    if not forced:
        s.add(f"label {label}")


def _prepare(s: _Script) -> None:
    s.comment("velocities at T (velocities keep: those of the data file)")
    s.velocities("v_seed+1")
    _npt_stage(s, forced=False)
    s.comment("NVT at the fixed cell")
    s.nvt("${equilibration_steps}", "v_seed+21", "swapmc_after_nvt")


def _npt(s: _Script, values) -> None:
    s.comment("velocities at T (velocities keep: those of the data file)")
    s.velocities("v_seed+1")
    _npt_stage(s, forced=True)
    s.add("write_data npt.data")


def _dms(s: _Script, values) -> None:
    _prepare(s)
    mode = values["mode"]
    s.comment("oscillation: eps(t) = amplitude sin(omega t) by fix deform ... variable, "
              "remap x, the box one step ahead")
    s.add("reset_timestep 0",
          "variable swapmc_omega equal 2*PI/${period}",
          "variable swapmc_steps equal ceil(${cycles}*(${period}/${dt}))+1")
    s.every("ternary(floor((${period}/${dt})/100)>1,floor((${period}/${dt})/100),1)")
    s.add("variable swapmc_t equal step*dt",
          "variable swapmc_strain equal v_amplitude*sin(v_swapmc_omega*step*dt)",
          f"variable swapmc_stress equal {_stress_variable(mode, 'swapmc_press')}",
          "variable swapmc_pe equal c_swapmc_pe",
          "variable swapmc_temperature equal c_swapmc_temp",
          "run 0",
          "print \"# t strain stress pe temperature\" file dms.txt screen no",
          "print \"" + _sample(["v_swapmc_t", "v_swapmc_strain", "v_swapmc_stress",
                                "v_swapmc_pe", "v_swapmc_temperature"])
          + "\" append dms.txt screen no")
    # The cell at t = 0 and the strain of step 1 as numbers; fix deform moves the cell
    # entries from their values at eps(dt), where it starts (LammpsEngine.wiggle).
    _box_numbers(s, "h0")
    s.capture("swapmc_eps1", "v_amplitude*sin(v_swapmc_omega*dt)")
    s.add("variable swapmc_eps equal v_amplitude*sin(v_swapmc_omega*(step+1)*dt)",
          "variable swapmc_rate equal v_amplitude*v_swapmc_omega*cos(v_swapmc_omega*"
          "(step+1)*dt)")
    if mode == "shear":
        ahead = ("change_box all xy final $(v_swapmc_h0_xy+v_swapmc_eps1*v_swapmc_h0_ly"
                 ":%.17g) remap units box")
        s.add("variable swapmc_dxy equal (v_swapmc_eps-v_swapmc_eps1)*v_swapmc_h0_ly",
              "variable swapmc_rxy equal v_swapmc_rate*v_swapmc_h0_ly")
        parts = ["xy variable v_swapmc_dxy v_swapmc_rxy"]
    else:
        # Uniaxial at constant volume: the first row of h by 1 + eps, the others by
        # (1 + eps)^(-1/2).
        ahead = _scaled_box("h0", "(1+v_swapmc_eps1)", "(1+v_swapmc_eps1)^(-0.5)",
                            remap=True)
        s.add("variable swapmc_lat equal (1+v_swapmc_eps)^(-0.5)-(1+v_swapmc_eps1)^(-0.5)",
              "variable swapmc_dlat equal -0.5*(1+v_swapmc_eps)^(-1.5)*v_swapmc_rate")
        parts = []
        for key, ref, first in (("x", "lx", True), ("xy", "xy", True), ("xz", "xz", True),
                                ("y", "ly", False), ("yz", "yz", False), ("z", "lz", False)):
            change, rate = (("(v_swapmc_eps-v_swapmc_eps1)", "v_swapmc_rate") if first
                            else ("v_swapmc_lat", "v_swapmc_dlat"))
            s.add(f"variable swapmc_d{key} equal {change}*v_swapmc_h0_{ref}",
                  f"variable swapmc_r{key} equal {rate}*v_swapmc_h0_{ref}")
            parts.append(f"{key} variable v_swapmc_d{key} v_swapmc_r{key}")
    s.box_ahead(ahead)
    s.add(f"fix swapmc_deform all deform 1 {' '.join(parts)} remap x flip no")
    s.thermostat("swapmc_temp", "v_seed+31")
    s.add("fix swapmc_out all print v_swapmc_next \""
          + _sample(["v_swapmc_t", "v_swapmc_strain", "v_swapmc_stress", "v_swapmc_pe",
                     "v_swapmc_temperature"])
          + "\" append dms.txt screen no title \"# every ${swapmc_every0} steps\"",
          "run ${swapmc_steps}", "unfix swapmc_out")
    s.thermostat_off()
    s.add("unfix swapmc_deform")


def _relax(s: _Script, values) -> None:
    _prepare(s)
    mode = values["mode"]
    s.comment("per repeat: fresh velocities, NVT, then +strain and -strain from that state")
    s.every("1")
    s.add("variable swapmc_hold equal round(${duration}/${dt})",
          "variable swapmc_t equal step*dt",
          f"variable swapmc_stress equal {_stress_variable(mode, 'swapmc_press')}",
          "print \"# repeat sign t stress\" file relax.txt screen no",
          "variable swapmc_r loop ${repeats}",
          "label swapmc_repeat")
    s.velocities("v_seed+1+100*v_swapmc_r")
    s.nvt("${decorrelation_steps}", "v_seed+41+100*v_swapmc_r", "swapmc_after_decorrelation")
    # The state both branches start from: unwrapped positions, velocities, cell.
    s.add("fix swapmc_s0 all store/state 0 xu yu zu vx vy vz")
    for k, c in enumerate(("xu", "yu", "zu", "vx", "vy", "vz"), start=1):
        s.add(f"variable swapmc_s{c} atom f_swapmc_s0[{k}]")
    _box_numbers(s, "s0")
    s.capture("swapmc_seed", "v_seed+61+100*v_swapmc_r")
    for sign in (1, -1):
        e = f"({sign}*v_strain)"
        if mode == "shear":
            # strained_cell: the tilt xy0 + eps ly (md/protocols.py).
            change = (f"change_box all xy final $(v_swapmc_s0_xy+{e}*v_swapmc_s0_ly:%.17g) "
                      "remap units box")
        else:
            change = _scaled_box("s0", f"(1+{e})", f"(1+{e})^(-0.5)", remap=True)
        s.add("", f"# step {'+' if sign > 0 else '-'}strain, held", "reset_timestep 0",
              change, "run 0",
              f"print \"${{swapmc_r}} {sign} " + _sample(["v_swapmc_t", "v_swapmc_stress"])
              + "\" append relax.txt screen no")
        # The same seed in both branches: identical noise keeps them correlated.
        s.thermostat("swapmc_temp", "v_swapmc_seed")
        s.add(f"fix swapmc_out all print v_swapmc_next \"${{swapmc_r}} {sign} "
              + _sample(["v_swapmc_t", "v_swapmc_stress"])
              + "\" append relax.txt screen no title \"# repeat ${swapmc_r} "
              + f"{'+' if sign > 0 else '-'}strain\"",
              "run ${swapmc_hold}", "unfix swapmc_out")
        s.thermostat_off()
        # Back to the state before the step: cell, positions, velocities.
        s.add(_scaled_box("s0", "1", "1", remap=False),
              "set group all image 0 0 0",
              "set group all x v_swapmc_sxu y v_swapmc_syu z v_swapmc_szu",
              "velocity all set v_swapmc_svx v_swapmc_svy v_swapmc_svz")
    s.add("unfix swapmc_s0", "next swapmc_r", "jump SELF swapmc_repeat")


def _aqs(s: _Script, values) -> None:
    mode = values["mode"]
    s.comment("FIRE to the inherent structure, then AQS steps")
    s.add(f"timestep {FIRE_DT[s.units]!r}",
          "min_style fire",
          f"min_modify norm max dmax {_FIRE_MAX_MOVE!r}",
          "variable swapmc_steps equal ceil(${max_strain}/${step}-1e-9)",
          f"variable swapmc_stress equal {_stress_variable(mode, 'swapmc_press')}",
          "variable swapmc_fnorm atom sqrt(fx*fx+fy*fy+fz*fz)",
          "compute swapmc_fmax all reduce max v_swapmc_fnorm",
          "thermo_style custom step c_swapmc_pe c_swapmc_temp vol c_swapmc_fmax "
          + " ".join(f"c_swapmc_press[{k}]" for k in range(1, 7)),
          "velocity all set 0.0 0.0 0.0",
          "reset_timestep 0",
          "minimize 0.0 ${ftol} ${max_iter} $(10*v_max_iter+100:%.0f)",
          "print \"# strain stress energy_per_particle max_force iterations\" "
          "file shear_aqs.txt screen no",
          "print \"0 " + _sample(["v_swapmc_stress", "c_swapmc_pe/atoms", "c_swapmc_fmax"])
          + " $(step)\" append shear_aqs.txt screen no",
          "variable swapmc_i loop ${swapmc_steps}",
          "label swapmc_aqs")
    s.capture("swapmc_from", "(v_swapmc_i-1)*v_step")
    s.capture("swapmc_to", "v_swapmc_i*v_step")
    if mode == "shear":
        s.add("change_box all xy delta $((v_swapmc_to-v_swapmc_from)*ly:%.17g) "
              "xz delta $((v_swapmc_to-v_swapmc_from)*yz:%.17g) remap units box")
        lim = 0.5 * (1.0 + _TILT_TOLERANCE)
        # The flip of swapmc's reduce_cell: the same lattice, the tilt back in range.
        s.add(f"if \"$(abs(xy)) > $({lim!r}*lx)\" then \"change_box all xy delta "
              "$(-round(xy/lx)*lx:%.17g) units box\"")
    else:
        _box_numbers(s, "aqs")
        s.capture("swapmc_ratio", "(1+v_swapmc_to)/(1+v_swapmc_from)")
        s.add("change_box all x final ${swapmc_aqs_xlo} "
              "$(v_swapmc_aqs_xlo+v_swapmc_aqs_lx*v_swapmc_ratio:%.17g) "
              "y final ${swapmc_aqs_ylo} "
              "$(v_swapmc_aqs_ylo+v_swapmc_aqs_ly/v_swapmc_ratio:%.17g) "
              "xy final $(v_swapmc_aqs_xy*v_swapmc_ratio:%.17g) "
              "xz final $(v_swapmc_aqs_xz*v_swapmc_ratio:%.17g) "
              "yz final $(v_swapmc_aqs_yz/v_swapmc_ratio:%.17g) remap units box")
    s.add("reset_timestep 0",
          "minimize 0.0 ${ftol} ${max_iter} $(10*v_max_iter+100:%.0f)",
          "print \"${swapmc_to} " + _sample(["v_swapmc_stress", "c_swapmc_pe/atoms",
                                             "c_swapmc_fmax"])
          + " $(step)\" append shear_aqs.txt screen no",
          "next swapmc_i", "jump SELF swapmc_aqs")


def _rate(s: _Script, values) -> None:
    mode = values["mode"]
    s.comment("velocities at T (velocities keep: those of the data file), NVT")
    s.velocities("v_seed+1")
    s.nvt("${equilibration_steps}", "v_seed+21", "swapmc_after_nvt")
    s.comment("shear at a constant rate: fix deform remap v, the thermostat on temp/deform, "
              "the box one step ahead")
    true_max = "${max_strain}" if mode == "shear" else "ln(1+${max_strain})"
    s.add("reset_timestep 0")
    s.every("10")
    s.add(f"variable swapmc_steps equal ceil({true_max}/(${{rate}}*${{dt}})-1e-9)",
          "variable swapmc_t equal step*dt",
          "variable swapmc_strain equal "
          + ("v_rate*step*dt" if mode == "shear" else "exp(v_rate*step*dt)-1"),
          "compute swapmc_tdef all temp/deform",
          "compute swapmc_pdef all pressure swapmc_tdef",
          f"variable swapmc_stress equal {_stress_variable(mode, 'swapmc_pdef')}",
          "variable swapmc_pe equal c_swapmc_pe/atoms",
          "variable swapmc_temperature equal c_swapmc_tdef",
          "print \"# t strain stress energy_per_particle temperature\" file shear_rate.txt "
          "screen no")
    _box_numbers(s, "h0")
    if mode == "shear":
        # F = 1 + g e_x e_y^T: xy by g ly, xz by g yz.
        ahead = ("change_box all xy final $(v_swapmc_h0_xy+v_rate*dt*v_swapmc_h0_ly:%.17g) "
                 "xz final $(v_swapmc_h0_xz+v_rate*dt*v_swapmc_h0_yz:%.17g) units box")
        deform = "xy erate ${rate}"
        # The streaming velocity of the cell moving at hdot = rate ly e_x e_y^T.
        stream = ["velocity all ramp vx 0.0 $(v_rate*v_swapmc_h0_ly:%.17g) y "
                  "${swapmc_h0_ylo} $(v_swapmc_h0_ylo+v_swapmc_h0_ly:%.17g) sum yes "
                  "units box"]
    else:
        f = "exp(v_rate*dt)"
        ahead = _scaled_box("h0", f, f"(1/{f})", remap=False).replace(
            "z final ${swapmc_h0_zlo} $(v_swapmc_h0_zlo+v_swapmc_h0_lz*(1/exp(v_rate*dt))"
            ":%.17g) ", "")
        deform = "x trate ${rate} y trate $(-v_rate:%.17g)"
        # Lengths deform about the box centre: v_x = rate (x - x_c), v_y = -rate (y - y_c).
        stream = ["velocity all ramp vx $(-0.5*v_rate*lx:%.17g) $(0.5*v_rate*lx:%.17g) "
                  "x $(xlo:%.17g) $(xhi:%.17g) sum yes units box",
                  "velocity all ramp vy $(0.5*v_rate*ly:%.17g) $(-0.5*v_rate*ly:%.17g) "
                  "y $(ylo:%.17g) $(yhi:%.17g) sum yes units box"]
    s.box_ahead(ahead)
    s.add(*stream)
    s.add(f"fix swapmc_deform all deform 1 {deform} remap v flip yes")
    s.thermostat("swapmc_tdef", "v_seed+51")
    s.add("fix swapmc_out all print v_swapmc_next \""
          + _sample(["v_swapmc_t", "v_swapmc_strain", "v_swapmc_stress", "v_swapmc_pe",
                     "v_swapmc_temperature"])
          + "\" append shear_rate.txt screen no title \"# every ${swapmc_every0} steps\"",
          "run ${swapmc_steps}", "unfix swapmc_out")
    s.thermostat_off()
    s.add("unfix swapmc_deform")


def write_lammps_protocols(directory, model, data_file: str | None = None,
                           potential_file: str | None = None, *, stem: str = "in",
                           params=None, pressure: float | None = None,
                           comment: str = "", protocols=PROTOCOLS) -> dict:
    """Write ``<stem>.<protocol>.lammps`` for each protocol into ``directory`` (atomically).

    Parameters as :func:`lammps_protocol_script`; returns {protocol: path}.
    """
    out = {}
    for protocol in protocols:
        text = lammps_protocol_script(model, protocol, data_file, potential_file,
                                      params=params, pressure=pressure, comment=comment)
        path = os.path.join(os.fspath(directory), f"{stem}.{protocol}.lammps")
        with atomic_write(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        out[protocol] = path
    return out
