"""Lazy public names of a package (PEP 562).

A package lists its public names and the submodule defining each; :func:`lazy_exports`
returns the module-level ``__getattr__`` and ``__dir__`` that import a submodule the first
time one of its names is used and then cache the name in the package namespace. Packages
whose subcommands are registered at every start-up of ``swapmc`` use it, so that
``swapmc --help`` does not load Numba kernels or scipy's statistics.
"""

from importlib import import_module


def lazy_exports(package: str, exports: dict, namespace: dict):
    """``(__getattr__, __dir__)`` for ``package``.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : dict of str to str
        Public name -> submodule (relative, without the dot) that defines it.
    namespace : dict
        The package's ``globals()``; names are cached there on first use.
    """

    def __getattr__(name):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f".{exports[name]}", package), name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
