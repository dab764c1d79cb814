"""The `suite` command's entry point.

A command that must answer before torch and the plugins load (a UCI engine: chess GUIs and
adapters time its handshake) is declared by its plugin package in the entry-point group
``suite.fast_commands`` as ``name = "module:main"``, ``main(argv) -> exit status``; ``suite NAME
ARGS`` runs it directly. Everything else, and ``suite NAME --help``, is suite.cli's.
"""
from __future__ import annotations

import sys
from importlib.metadata import entry_points


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and not argv[0].startswith("-") and not {"-h", "--help"} & set(argv[1:]):
        fast = next((ep for ep in entry_points(group="suite.fast_commands") if ep.name == argv[0]), None)
        if fast is not None:
            return int(fast.load()(argv[1:]) or 0)
    from .cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
