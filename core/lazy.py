"""A package's names imported on first use (PEP 562): ``import suite`` and the plugin packages stay
light (a plugin's hook module is imported for every command, `suite uci`'s handshake before torch)."""
from __future__ import annotations

import importlib


def lazy_getattr(package: str, exports: dict[str, str], namespace: dict):
    """The module ``__getattr__`` of ``package``: a name of ``exports`` (name -> the module that holds
    it, relative to ``package`` or absolute), else a submodule of ``package``, imported on first use
    and kept in ``namespace`` (the package's globals)."""

    def __getattr__(name: str):
        if name in exports:
            value = getattr(importlib.import_module(exports[name], package), name)
        elif name.startswith("__"):
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        else:
            try:
                value = importlib.import_module(f".{name}", package)
            except ModuleNotFoundError as e:
                if e.name != f"{package}.{name}":
                    raise
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        namespace[name] = value
        return value

    return __getattr__
