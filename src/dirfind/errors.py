"""Errors with documented exit codes; the CLI prints them as one line on stderr.

Library messages name the *parameter* at fault (``k must be at least 1, got 0``) and list it in
``params``; the CLI rewrites those names as the command's flags (``-k must be at least 1``).
"""

from __future__ import annotations

from collections.abc import Sequence

#: Exit codes of the ``dirfind`` command (also listed in the README).
EXIT_OK = 0
EXIT_FAILURE = 1  # unexpected internal error (a bug); rerun with --debug for the traceback
EXIT_USAGE = 2  # bad command line (click's own code)
EXIT_NOT_FOUND = 3  # missing file, unknown registry name
EXIT_BAD_INPUT = 4  # corrupt/truncated/unknown checkpoint, invalid bank or data, out-of-range index
EXIT_INTEGRITY = 5  # sha256 mismatch of a download or cached checkpoint
EXIT_MISMATCH = 6  # bank made for another generator (use --force to override)
EXIT_OUTPUT = 7  # output exists (use --force) or cannot be written
EXIT_DOWNLOAD = 8  # network / package-index failure while fetching a checkpoint
EXIT_UNSUPPORTED = 9  # known format whose family or feature is not supported
EXIT_DISTRIBUTED = 10  # a process of a distributed (torchrun) run was lost or stopped answering; resumable
EXIT_INTERRUPTED = 130  # Ctrl-C; partial work is kept for --resume where the command supports it


class DirfindError(Exception):
    """Base class: an expected failure with a one-line message and an exit code.

    ``param``: the parameter name(s) the message refers to (``"k"``, ``("force",)``), so that a
    front end can show them as its own option names.
    """

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, param: str | Sequence[str] | None = None):
        super().__init__(" ".join(str(message).split()))
        self.params: tuple[str, ...] = (param,) if isinstance(param, str) else tuple(param or ())

    def with_prefix(self, prefix: str) -> DirfindError:
        """The same error (class, parameters) with ``prefix`` before the message."""
        return type(self)(f"{prefix}{self}", param=self.params)


class NotFoundError(DirfindError):
    exit_code = EXIT_NOT_FOUND


class BadInputError(DirfindError, ValueError):
    exit_code = EXIT_BAD_INPUT


class IntegrityError(DirfindError):
    exit_code = EXIT_INTEGRITY


class MismatchError(DirfindError):
    exit_code = EXIT_MISMATCH


class OutputError(DirfindError):
    exit_code = EXIT_OUTPUT


class DownloadError(DirfindError):
    exit_code = EXIT_DOWNLOAD


class UnsupportedError(DirfindError):
    exit_code = EXIT_UNSUPPORTED


class DistributedError(DirfindError):
    """A process of a distributed run was lost (killed, crashed) or did not answer in time."""

    exit_code = EXIT_DISTRIBUTED


class RemoteFailure(DirfindError):
    """Another process of a distributed run failed: its one-line message (``line``) and exit code,
    which every process of the run ends with."""

    def __init__(self, line: str, code: int, rank: int = -1):
        super().__init__(line)
        self.line, self.exit_code, self.rank = line, int(code), int(rank)

    def with_prefix(self, prefix: str) -> RemoteFailure:
        return self  # the message is final: it is what the failing process printed
