"""TOML reading with file names and line numbers in every error, and a small TOML writer."""

from __future__ import annotations

import difflib
import math
import os
import re
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class ConfigError(ValueError):
    """A configuration file or value is wrong; the message says where and why."""


def loads_toml(text: str, origin: str = "<string>") -> dict:
    """Parse TOML text; a syntax error names ``origin`` and the line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{origin}: invalid TOML: {err}") from None


def _read_text(path) -> str:
    """The text of a UTF-8 file; unreadable or undecodable files raise ConfigError."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        # TOML is UTF-8 by definition; a Latin-1 "°" or "Å" from an editor is the usual cause.
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 (byte 0x{raw[err.start]:02x}); TOML "
                          "files must be UTF-8: re-save the file as UTF-8") from None


def load_toml_file(path) -> dict:
    """Read and parse a TOML file; missing files, non-UTF-8 bytes and syntax errors say
    which file (and line)."""
    return loads_toml(_read_text(path), str(path))


def did_you_mean(word: str, choices) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` (difflib), or ``""``."""
    choices = [str(c) for c in choices]
    same_letters = [c for c in choices if c.lower() == str(word).lower()]
    close = same_letters or difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_keys_message(unknown, allowed, table: str) -> str:
    """One line naming each unknown key of ``table`` with a suggestion, and the allowed
    keys, e.g. ``unknown key 'temprature' (did you mean 'temperature'?) in [state]; ...``."""
    names = sorted(str(k) for k in unknown)
    parts = [f"{k!r}{did_you_mean(k, allowed)}" for k in names]
    noun = "key" if len(names) == 1 else "keys"
    return (f"unknown {noun} {', '.join(parts)} in {table}; allowed: "
            f"{', '.join(sorted(str(a) for a in allowed))}")


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def key_line(path, section: str | None, key: str) -> int | None:
    """Line number (1-based) of ``key = ...`` in table ``[section]`` of a TOML file.

    A plain scan of the text, good for the flat tables of swapmc configs (``section`` None
    or ``""``: the top level). Returns None when the file cannot be read or the key is not
    written there (e.g. it came from a preset or the command line).
    """
    if not path or not os.path.isfile(str(path)):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    target = section or ""
    current = ""
    pattern = re.compile(r"^\s*(?:" + re.escape(key) + r'|"' + re.escape(key) + r'"|\''
                         + re.escape(key) + r"')\s*=")
    for number, text in enumerate(lines, 1):
        m = _HEADER.match(text)
        if m:
            current = m.group(1).replace(" ", "").replace('"', "")
            if not target and current == key:
                return number  # a table [key] named at the top level
            continue
        if current == target and pattern.match(text):
            return number
    return None


def _format_value(value) -> str:
    # NumPy scalars come from callers that compute a temperature or a step size; they are
    # written as the plain Python value (repr of np.float64 is "np.float64(0.6)", which is
    # not TOML).
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return float.__repr__(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_format_value(v)}" for k, v in value.items()) + " }"
    if value is None:
        raise ConfigError("TOML has no null value; drop the key instead")
    raise ConfigError(f"cannot write {type(value).__name__} to TOML")


def _key(k: str) -> str:
    ok = all(c.isalnum() or c in "-_" for c in k) and k
    return k if ok else _format_value(k)


def dumps_toml(data: dict) -> str:
    """Write a nested dict of plain values as TOML (tables for nested dicts, None dropped).

    NumPy scalars and arrays are written as the Python numbers and lists they hold, so the
    text always reads back with :func:`loads_toml`.
    """
    lines: list[str] = []

    def table(d: dict, prefix: str):
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict) and v is not None}
        tables = {k: v for k, v in d.items() if isinstance(v, dict)}
        if prefix and (scalars or not tables):
            lines.append(f"\n[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{_key(k)} = {_format_value(v)}")
        for k, v in tables.items():
            table(v, f"{prefix}.{_key(k)}" if prefix else _key(k))

    table(data, "")
    return "\n".join(lines).lstrip("\n") + "\n"
