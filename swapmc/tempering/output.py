"""Files of a tempering run, written by rank 0 from gathered data.

Append-only logs (one row per round; rolled back to their checkpointed sizes on resume):

``labels.csv``
    round, sweep, phase, then the temperature slot of each replica ``r0 .. r{M-1}``: the
    replicas' walks in temperature (the trace that is identical for any number of ranks).
``energy_by_temperature.csv``
    the potential energy per particle sampled at each temperature slot ``T0 ..`` (energy
    units), demultiplexed: the column of slot t always holds whichever replica sat there.
``energy_by_replica.csv``
    the same energies per replica ``r0 ..``.
``volume_by_temperature.csv``
    volume per slot (isobaric runs only).
``ladder.csv``
    the ladder at the start, after each feedback stage (with the measured fraction f of
    up-going replicas), and when frozen for production.
``trajectories/T00.xyz ..``
    configurations per temperature every ``output.trajectory_every`` sweeps (production).

Written once at the end (atomically): ``final/T00.xyz`` and ``final/T00.data`` per
temperature, ``pairs.csv`` (exchange acceptance per neighbouring pair) and ``summary.json``.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np

from .. import __version__
from ..io import atomic_write, truncate_file, write_extxyz, write_lammps_data
from .statistics import blocking_error

__all__ = ["TemperingOutput", "read_table"]


def _num(x) -> str:
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return repr(float(x))


def read_table(path: str) -> dict:
    """Read one of the CSV logs into {column: list of str} (comment lines skipped)."""
    with open(path, newline="") as fh:
        rows = [row for row in csv.reader(ln for ln in fh if not ln.startswith("#"))]
    header, body = rows[0], rows[1:]
    return {h: [r[k] for r in body] for k, h in enumerate(header)}


class TemperingOutput:
    """Logs, trajectories and final files of one tempering run.

    Parameters
    ----------
    directory : str
        Output directory.
    n_replicas : int
        M.
    isobaric : bool
        Whether volumes are logged.
    units : dict
        Unit labels (``swapmc.units.LABELS[...]``) for file headers.
    enabled : bool
        False on ranks other than 0: every method is then a no-op.
    element_names : dict, optional
        Display symbols for extended XYZ (see :func:`swapmc.io.write_extxyz`).
    """

    def __init__(self, directory: str, n_replicas: int, isobaric: bool, units: dict,
                 enabled: bool, element_names: dict | None = None,
                 masses: list | None = None):
        self.directory = directory
        self.masses = list(masses) if masses is not None else None
        self.m = int(n_replicas)
        self.isobaric = isobaric
        self.units = units
        self.enabled = enabled
        self.elements = element_names or None
        names = ["labels", "energy_by_temperature", "energy_by_replica", "ladder"]
        if isobaric:
            names.append("volume_by_temperature")
        self.logs = {n: os.path.join(directory, n + ".csv") for n in names}
        self.traj_dir = os.path.join(directory, "trajectories")
        self.trajectories = {t: os.path.join(self.traj_dir, f"T{t:02d}.xyz")
                             for t in range(self.m)}
        self.final_dir = os.path.join(directory, "final")
        self.handles: dict = {}

    # ------------------------------------------------------------- set-up
    def _headers(self) -> dict:
        u = self.units
        slots = [f"T{t}" for t in range(self.m)]
        reps = [f"r{r}" for r in range(self.m)]
        lead = ["round", "sweep", "phase"]
        note = (f"# swapmc {__version__} parallel tempering; energy unit {u['energy']}, "
                f"temperature unit {u['temperature']}; sweeps per replica, melt excluded; "
                "slot t's temperature is in ladder.csv\n")
        return {
            "labels": note + "# slot (0 = lowest T) of each replica during the round\n"
                      + ",".join(lead + reps) + "\n",
            "energy_by_temperature": note + "# U/N sampled at each temperature slot "
                                     "(demultiplexed)\n" + ",".join(lead + slots) + "\n",
            "energy_by_replica": note + "# U/N of each replica\n" + ",".join(lead + reps)
                                 + "\n",
            "volume_by_temperature": note + f"# volume ({u['length']}^3) at each slot\n"
                                     + ",".join(lead + slots) + "\n",
            "ladder": note + "# event: initial, feedback stage k (f = fraction of up-going "
                      "replicas measured on the previous ladder), frozen\n"
                      + ",".join(["round", "event"] + slots
                                 + [f"f{t}" for t in range(self.m)]) + "\n",
        }

    def start_fresh(self, config_text: str) -> None:
        """Create the directory, remove logs of an older run, write headers and the config."""
        if not self.enabled:
            return
        os.makedirs(self.directory, exist_ok=True)
        with atomic_write(os.path.join(self.directory, "config.toml")) as fh:
            fh.write(config_text)
        # Leftovers of an older run in the same directory would be mistaken for this one's.
        stale = list(self.trajectories.values()) + [
            os.path.join(self.directory, n) for n in ("pairs.csv", "summary.json")]
        if os.path.isdir(self.final_dir):
            stale += [os.path.join(self.final_dir, n) for n in os.listdir(self.final_dir)
                      if n.endswith((".xyz", ".data"))]
        for path in stale:
            if os.path.exists(path):
                os.remove(path)
        headers = self._headers()
        for name, path in self.logs.items():
            with open(path, "w") as fh:
                fh.write(headers[name])
        self._open()

    def resume(self, sizes: dict) -> None:
        """Cut every append-only file back to its size at the checkpoint (None: remove)."""
        if not self.enabled:
            return
        paths = {**self.logs, **{f"traj{t}": p for t, p in self.trajectories.items()}}
        for key, path in paths.items():
            size = sizes.get(key)
            if size is None:
                if os.path.exists(path):
                    os.remove(path)
            elif not os.path.exists(path):
                raise ValueError(f"{path} is missing; cannot resume (the checkpoint needs its "
                                 f"first {size} bytes)")
            else:
                truncate_file(path, size)
        self._open()

    def _open(self) -> None:
        self.handles = {name: open(path, "a") for name, path in self.logs.items()}

    def sizes(self) -> dict:
        """Flush the logs to disk and return every append-only file's size (bytes)."""
        if not self.enabled:
            return {}
        for fh in self.handles.values():
            fh.flush()
            os.fsync(fh.fileno())
        out = {name: os.path.getsize(path) for name, path in self.logs.items()}
        for t, path in self.trajectories.items():
            out[f"traj{t}"] = os.path.getsize(path) if os.path.exists(path) else None
        return out

    def close(self) -> None:
        for fh in self.handles.values():
            fh.close()
        self.handles = {}

    # -------------------------------------------------------------- rows
    def log_round(self, sample, phase: str, sweep: int, n_particles: int) -> None:
        """One row per log for a round (values as sampled, before the exchanges)."""
        if not self.enabled:
            return
        lead = f"{sample.round_index},{sweep},{phase},"
        u = sample.energies / n_particles
        h = self.handles
        h["labels"].write(lead + ",".join(map(_num, sample.labels)) + "\n")
        h["energy_by_temperature"].write(lead + ",".join(map(_num, u[sample.perm])) + "\n")
        h["energy_by_replica"].write(lead + ",".join(map(_num, u)) + "\n")
        if self.isobaric:
            h["volume_by_temperature"].write(
                lead + ",".join(map(_num, sample.volumes[sample.perm])) + "\n")

    def log_ladder(self, round_index: int, event: str, ladder, f=None) -> None:
        if not self.enabled:
            return
        f = [""] * self.m if f is None else [_num(x) for x in f]
        self.handles["ladder"].write(f"{round_index},{event},"
                                     + ",".join(map(_num, ladder)) + "," + ",".join(f) + "\n")

    def write_frames(self, frames: dict) -> None:
        """Append one configuration per temperature slot: ``{slot: (System, info)}``."""
        if not self.enabled:
            return
        os.makedirs(self.traj_dir, exist_ok=True)
        for t in sorted(frames):
            system, info = frames[t]
            write_extxyz(self.trajectories[t], system, info=info, append=True,
                         masses=self.masses,
                         element_names=self.elements)

    # -------------------------------------------------------------- final
    def write_final(self, frames: dict, masses, comment: str) -> dict:
        """Final configuration of every slot as extended XYZ and LAMMPS data."""
        files = {}
        if not self.enabled:
            return files
        os.makedirs(self.final_dir, exist_ok=True)
        for t in sorted(frames):
            system, info = frames[t]
            xyz = os.path.join(self.final_dir, f"T{t:02d}.xyz")
            data = os.path.join(self.final_dir, f"T{t:02d}.data")
            with atomic_write(xyz) as fh:
                write_extxyz(fh, system, info=info, element_names=self.elements,
                             masses=self.masses)
            write_lammps_data(data, system, masses=masses,
                              comment=f"{comment} T={info['temperature']!r}")
            files[f"final_T{t:02d}_xyz"] = xyz
            files[f"final_T{t:02d}_data"] = data
        return files

    def write_pairs(self, ladder, proposed, accepted) -> str:
        path = os.path.join(self.directory, "pairs.csv")
        if not self.enabled:
            return path
        with atomic_write(path) as fh:
            fh.write("# exchange attempts between neighbouring temperatures (production)\n")
            fh.write("pair,T_low,T_high,proposed,accepted,acceptance\n")
            for k in range(self.m - 1):
                acc = accepted[k] / proposed[k] if proposed[k] else float("nan")
                fh.write(f"{k},{_num(ladder[k])},{_num(ladder[k + 1])},{int(proposed[k])},"
                         f"{int(accepted[k])},{_num(acc)}\n")
        return path

    def per_temperature(self, ladder) -> list[dict]:
        """Production mean U/N (and volume) per slot with blocking standard errors."""
        table = read_table(self.logs["energy_by_temperature"])
        prod = np.array([p == "production" for p in table.get("phase", [])], bool)
        vols = None
        if self.isobaric:
            vt = read_table(self.logs["volume_by_temperature"])
            vols = {k: np.array(v, float)[prod] for k, v in vt.items() if k.startswith("T")}
        out = []
        for t in range(self.m):
            u = np.array(table[f"T{t}"], float)[prod]
            mean, err = blocking_error(u)
            row = {"temperature": float(ladder[t]), "samples": int(u.size),
                   "energy_per_particle": _json_float(mean),
                   "energy_per_particle_stderr": _json_float(err)}
            if vols is not None:
                vm, ve = blocking_error(vols[f"T{t}"])
                row["volume"], row["volume_stderr"] = _json_float(vm), _json_float(ve)
            out.append(row)
        return out

    def write_summary(self, summary: dict) -> str:
        path = os.path.join(self.directory, "summary.json")
        if self.enabled:
            with atomic_write(path) as fh:
                json.dump(summary, fh, indent=2)
        return path


def _json_float(x) -> float | None:
    x = float(x)
    return None if not np.isfinite(x) else x
