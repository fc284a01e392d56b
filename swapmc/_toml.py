"""TOML reading with file names and line numbers in every error."""

from __future__ import annotations

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


def load_toml_file(path) -> dict:
    """Read and parse a TOML file; missing files and syntax errors say which file."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    return loads_toml(text, str(path))


def _format_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
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
    """Write a nested dict of plain values as TOML (tables for nested dicts, None dropped)."""
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
