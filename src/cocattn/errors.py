"""The errors cocattn raises, and the exit code each one gives the ``cocattn`` command.

Every error class derives from :class:`CocattnError` and from the built-in class it stands for
(``except ValueError`` / ``OSError`` / ``RuntimeError`` keep catching it). :data:`EXIT_CODES` maps
them to exit codes (0 success, 1 the work failed, 2 refused input, 130 interrupted, 143
terminated); anything else is a defect and keeps its traceback. :func:`describe` gives the line.
"""

from __future__ import annotations

SUCCESS = 0
FAILED = 1
"""The work started and failed (a non-finite loss, a write that failed part-way, a download): fixing
the command line does not help; the message says what happened and what was kept."""
USAGE = 2
"""Refused before or without doing the work: an argument, option, setting or input file that is not
accepted, a path that cannot be read, an ``--out`` that cannot be written (checked before any
work), a directory locked by another process, an unsafe file; argparse's usage errors too."""
INTERRUPTED = 130
"""Ctrl-C."""
TERMINATED = 143
"""SIGTERM while ``reproduce`` ran its workers: they were stopped first; a rerun resumes."""


class CocattnError(Exception):
    """Base of every error cocattn defines. ``label`` starts its line on the command line."""

    label = "error"


class InputError(CocattnError, ValueError):
    """An argument, option, setting or input that is not accepted; the message names the argument,
    the value it got and what is accepted (:func:`cocattn._checks.bad_value`)."""


class UnsafeFileError(InputError):
    """A file that could run code when loaded (a pickle) or is not in a safe format."""


class DirectoryBusyError(InputError):
    """Another process holds the exclusive lock of a run or reproduce directory."""


class LengthTooShort(InputError):
    """A length shorter than a retrieval case's fixed text (its message says the minimum)."""


class AtomicWriteError(CocattnError, OSError):
    """A write that could not complete; the destination is untouched and no temporary is left."""


class OutputNotWritableError(AtomicWriteError, InputError):
    """An output path that could not be written, found before any work (``--out`` under a file,
    on a read-only file system, or without permission): bad input, not a failed run."""


class FetchError(CocattnError, RuntimeError):
    """A package could not be fetched or unpacked (no network, no apt-get, unknown version...)."""


class NonFiniteLossError(CocattnError, RuntimeError):
    """The loss or gradient norm became NaN/inf; the run stopped before the bad update."""

    label = "stopped"


class Terminated(CocattnError):
    """SIGTERM reached a process that stopped its worker processes before exiting."""

    label = "terminated"


EXIT_CODES: dict[type[BaseException], int] = {
    # every class above, explicitly (tests/test_errors.py checks that none is missing)
    CocattnError: FAILED,
    InputError: USAGE,
    UnsafeFileError: USAGE,
    DirectoryBusyError: USAGE,
    LengthTooShort: USAGE,
    AtomicWriteError: FAILED,
    OutputNotWritableError: USAGE,
    FetchError: FAILED,
    NonFiniteLossError: FAILED,
    Terminated: TERMINATED,
    # built-in errors that reach the command line
    ValueError: USAGE,  # a value or a file's content that is not accepted
    OSError: USAGE,  # a path that cannot be read: missing, a directory, no permission
    KeyboardInterrupt: INTERRUPTED,
}
"""Error class → exit code; :func:`exit_code` looks an error up along its class hierarchy."""


def exit_code(err: BaseException) -> int | None:
    """The exit code for ``err``: that of the most specific class in :data:`EXIT_CODES` it is an
    instance of, or ``None`` for an error the command does not expect (a defect: let it raise)."""
    for cls in type(err).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return None


def describe(err: BaseException) -> str:
    """The error's one-line message after ``cocattn <command>: ``: ``error: <message>``,
    ``stopped: <message>`` (non-finite loss) or ``interrupted``."""
    if isinstance(err, KeyboardInterrupt):
        return "interrupted"
    # one line whatever the message holds (transformers' validation errors span several lines)
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    return f"{getattr(err, 'label', 'error')}: {text}"
