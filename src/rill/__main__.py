"""The ``rill`` command's entry point; ``python -m rill`` behaves exactly like ``rill``."""

import signal
from contextlib import suppress
from types import FrameType


def _leave_quietly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(130)


# From here until ``main`` runs, only the installer's wrapper script does (``sys.argv[0] =
# re.sub(…)``, a regular expression compiled on first use): a Ctrl-C there ends the command like
# one during the run, exit 130 and no traceback. ``import rill`` as a library never gets here.
with suppress(ValueError):  # imported from a thread other than the main one: left alone
    signal.signal(signal.SIGINT, _leave_quietly)


def main() -> None:
    """Run the command. A Ctrl-C that lands while the command is still loading (its first tens
    of milliseconds) ends it like one during the run: exit 130, no traceback."""
    try:
        if signal.getsignal(signal.SIGINT) is _leave_quietly:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        from rill.cli import main as run

        run()
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
