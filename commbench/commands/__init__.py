"""One module per subcommand. Each declares `COMMAND` (options.Command: its options, summary and
examples, from which --help is written) and `main(argv)`. Modules are imported only when named, so
help and bad input answer without torch or Ray."""

from __future__ import annotations

import importlib

# name on the command line -> module; `run` is the default when no name is given
MODULES = {
    "run": "run", "models": "models", "bench": "bench", "busbw": "busbw", "replay": "replay",
    "predict": "predict", "scaling": "scaling", "layers": "layers", "validate": "validate",
    "report": "report", "export": "export", "dashboard": "dashboard", "compare-compression": "compare_compression",
    "check": "check", "compare": "compare",
}


def module(name: str):
    return importlib.import_module(f"commbench.commands.{MODULES[name]}")


def resolve(argv: list[str]) -> tuple[str, list[str]]:
    """(command, its arguments); a first word that is neither a command nor key=value is a typo."""
    from commbench.errors import did_you_mean, fail

    if argv and argv[0] in MODULES:
        return argv[0], argv[1:]
    if argv and "=" not in argv[0] and not argv[0].startswith("-"):
        fail(f"unknown command {argv[0]!r}{did_you_mean(argv[0], MODULES)}; commands: {', '.join(MODULES)}")
    return "run", argv
