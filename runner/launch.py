"""The `mgrun` entry point. Importing the CLI takes a few tenths of a second; a Ctrl-C or `kill`
in that time would print a traceback from the middle of an import (or click's "Aborted!" and exit
1). Until a command installs `runner.interrupts`, a signal ends the process at once, quietly, with
exit 130: nothing has been written yet."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType


def _quit(signum: int, frame: FrameType | None) -> None:
    sys.stderr.write("interrupted\n")
    sys.stderr.flush()
    os._exit(130)  # SystemExit could be caught and printed by whatever import it lands in


def main() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _quit)
    from runner.cli import main as cli

    cli()
