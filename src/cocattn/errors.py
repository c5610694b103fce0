"""The errors cocattn raises, and the exit code each one gives the ``cocattn`` command.

Every error class the project defines lives here and derives from :class:`CocattnError` and,
for compatibility, from the built-in class it always had (``except ValueError`` / ``OSError`` /
``RuntimeError`` keep catching it). The modules that raise them import them from here, so the old
spellings (``cocattn.files.AtomicWriteError``, ``cocattn.train.NonFiniteLossError``, ...) are the
same objects.

Exit codes of ``cocattn <command>`` (:data:`EXIT_CODES`, looked up along the error's class
hierarchy, most specific class first; every sub-command uses this one table):

- ``0``: success.
- ``1``: the work started and failed: the loss became non-finite, a write failed part-way (disk
  full, file system turned read-only), a download failed. Fixing the command line does not help;
  the message says what happened (and what was kept).
- ``2``: the command was refused before or without doing its work: an argument, option, setting
  or input file that is not accepted (:class:`InputError` and any ``ValueError``), a path that
  cannot be read (``OSError``: missing file or directory, no permission), an ``--out`` that cannot
  be written (checked before any work), a directory locked by another cocattn process, an unsafe
  (pickled) file. argparse's own usage errors exit 2 as well.
- ``130``: interrupted (Ctrl-C).
- ``143``: terminated (SIGTERM, as schedulers stop jobs) while ``reproduce`` ran its worker
  processes: the workers were stopped first (:mod:`cocattn.pipeline.workers`); a rerun resumes.

Anything else is a defect: Python prints the traceback and exits 1.

The message is one line on stderr: ``cocattn <command>: error: <message>`` (``stopped:`` for a
non-finite loss, ``interrupted`` for Ctrl-C): :func:`describe`.
"""

from __future__ import annotations

SUCCESS = 0
FAILED = 1
USAGE = 2
INTERRUPTED = 130
TERMINATED = 143


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
