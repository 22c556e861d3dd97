"""Entry point: `python -m commbench [COMMAND] key=value ...` (also the `commbench` script).

argv -> the command named (commbench/commands/), or the run; nothing else happens here.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from commbench.commands import module, resolve

    name, rest = resolve(list(sys.argv[1:] if argv is None else argv))
    try:
        module(name).main(rest)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the run in flight is not recorded, so resume reruns it
        print("commbench: interrupted: finished runs are recorded; the same command resumes with the first "
              "unfinished one", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
