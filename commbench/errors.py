"""The one-line failure every bad input and failed run ends in (a leaf: imports nothing of commbench)."""

from __future__ import annotations

import sys
from typing import NoReturn


class PlanError(ValueError):
    """A bad input; str() is the one line the user sees."""


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"commbench: error: {message}", file=sys.stderr)
    sys.exit(code)


def first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def did_you_mean(word: str, choices) -> str:
    """' (did you mean 'x'?)' for the nearest of `choices` (difflib's ratio), or ''."""
    import difflib

    near = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{near[0]}'?)" if near else ""


def last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def interrupt(signum, frame):
    """A signal handler: SIGTERM unwinds like Ctrl-C (records already written stay as they are)."""
    raise KeyboardInterrupt(f"signal {signum}")
