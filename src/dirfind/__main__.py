"""``python -m dirfind`` and the ``dirfind`` console script.

This module imports nothing heavy before its ``try``, so a Ctrl-C that arrives while the CLI's
modules are still importing ends with ``dirfind: interrupted`` (exit 130), as later ones do.
"""

import sys


def main() -> int:
    """Import and run the CLI (see :func:`dirfind.cli.main`)."""
    try:
        from .cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write("dirfind: interrupted\n")
        return 130  # errors.EXIT_INTERRUPTED (not imported: the import itself was interrupted)
    return run()


if __name__ == "__main__":
    sys.exit(main())
