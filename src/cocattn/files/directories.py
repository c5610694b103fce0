"""Output directories: built under a temporary name and published with one rename
(:func:`atomic_directory`), replaced only when cocattn wrote them (:func:`check_replaceable`,
:data:`OUTPUT_MARKER`), checked writable before any work, locked against a second writer
(:class:`DirectoryLock`), and cleaned of interrupted writes' temporaries."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from cocattn._checks import bad_value
from cocattn.errors import AtomicWriteError, DirectoryBusyError, OutputNotWritableError
from cocattn.files.loading import load_json
from cocattn.files.writes import _TMP_PREFIX, PathLike, _reason, dumps_json, fsync_directory


@contextlib.contextmanager
def atomic_directory(path: PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Build a directory under a temporary name and publish it as ``path`` with one rename.

    Files written inside need no atomic writes of their own: everything is fsynced before the
    rename. If ``path`` exists it is replaced (moved aside, then removed) when ``overwrite``;
    a crash in between leaves either the old or the new directory under ``path``, or the old one
    under a ``.tmp-`` name that :func:`clean_temporaries` removes.
    """
    path = Path(path)
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{path.name}.", dir=parent))
    except OSError as err:
        raise AtomicWriteError(err.errno, f"cannot write {path}: {_reason(err)}") from err
    try:
        yield tmp
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} already exists")
        for root, _dirs, files in os.walk(tmp):
            for name in files:
                with open(os.path.join(root, name), "rb") as handle:
                    os.fsync(handle.fileno())
            fsync_directory(root)
        os.chmod(tmp, 0o777 & ~_umask())
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}old-{path.name}.", dir=parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        fsync_directory(parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError) and not isinstance(err, (AtomicWriteError, FileExistsError)):
            raise AtomicWriteError(
                err.errno, f"cannot write {path}: {_reason(err)}; the previous content (if any) is unchanged"
            ) from err
        raise


OUTPUT_MARKER = ".cocattn-output.json"
"""Written last into a directory a command publishes whole (``cocattn convert``): the command and
the entries it wrote, so that ``--overwrite`` replaces only what cocattn created."""


def check_replaceable(
    dst: PathLike, *, arg: str, overwrite: bool, sources: tuple[PathLike, ...] = (), tool: str = "cocattn"
) -> None:
    """The rule for every command that writes or replaces a directory: only what the tool created.

    ``dst`` may not be one of ``sources`` nor hold one (replacing a parent of the source deletes
    the source and everything beside it). An existing ``dst`` is kept unless ``overwrite``; then
    it must be an empty directory, or one holding :data:`OUTPUT_MARKER` and nothing beyond the
    entries that marker lists. Anything else (a file, a user's directory) is refused, untouched.
    """
    dst = Path(dst)
    target = dst.resolve()
    for src in sources:
        source = Path(src).resolve()
        if target == source or target in source.parents:
            relation = "is" if target == source else "holds"
            raise bad_value(
                arg, str(dst), f"a directory apart from the source ({dst} {relation} {src}, which it would delete)"
            )
    if not dst.exists() and not dst.is_symlink():
        return
    if not overwrite:
        raise FileExistsError(f"{dst} already exists (pass overwrite=True / --overwrite to replace it)")
    if dst.is_symlink() or not dst.is_dir():
        raise bad_value(
            arg, str(dst), f"a directory written by {tool} to replace ({dst} is a file or a link). Nothing was deleted"
        )
    entries = sorted(p.name for p in dst.iterdir())
    if not entries:
        return
    try:
        marker = load_json(dst / OUTPUT_MARKER)
    except (OSError, ValueError):
        marker = None
    written = set(marker.get("entries", [])) if isinstance(marker, dict) else set()
    foreign = [name for name in entries if name not in written and name != OUTPUT_MARKER]
    if marker is None or foreign:
        what = (
            f"it holds {', '.join(foreign[:5])}{', …' if len(foreign) > 5 else ''}, which cocattn did not create"
            if marker is not None
            else f"cocattn did not create it (it has no {OUTPUT_MARKER})"
        )
        raise bad_value(
            arg,
            str(dst),
            f"a new or empty directory, or one written by {tool} to replace; {what}. Nothing was deleted: "
            "choose another destination or remove it yourself",
        )


def mark_output(directory: PathLike, tool: str) -> None:
    """Record in ``directory`` (being built) that ``tool`` wrote it, with its entries."""
    directory = Path(directory)
    entries = sorted(p.name for p in directory.iterdir() if p.name != OUTPUT_MARKER)
    (directory / OUTPUT_MARKER).write_text(dumps_json({"written_by": tool, "entries": entries}), encoding="utf-8")


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def clean_temporaries(directory: PathLike) -> list[Path]:
    """Remove leftovers of interrupted atomic writes (``.tmp-*``) in ``directory``; return them."""
    removed: list[Path] = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        if entry.name.startswith(_TMP_PREFIX):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
            removed.append(entry)
    return removed


def check_writable(path: PathLike, arg: str = "--out") -> None:
    """Fail before any work when ``path`` (a file or directory to create or replace) could not be
    written: the nearest existing ancestor must be a directory on a writable file system that
    this process may write into. Raises :class:`~cocattn.errors.OutputNotWritableError` (an
    :class:`AtomicWriteError` and an input error: exit code 2) naming ``arg`` and the path."""
    path = Path(path)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe != path and not probe.is_dir():
        raise OutputNotWritableError(
            errno.ENOTDIR, f"{arg}={str(path)!r} cannot be written: {probe} is a file, not a directory"
        )
    where = probe if probe.is_dir() else probe.parent
    try:
        read_only = bool(os.statvfs(where).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        raise OutputNotWritableError(
            errno.EROFS,
            f"{arg}={str(path)!r} cannot be written: the file system of {where} is read-only (checked before starting)",
        )
    if not os.access(where, os.W_OK | os.X_OK):
        raise OutputNotWritableError(
            errno.EACCES,
            f"{arg}={str(path)!r} cannot be written: no permission to write in {where} (checked before starting)",
        )


LOCK_FILE = ".cocattn.lock"


class DirectoryLock:
    """An exclusive ``fcntl.flock`` on ``directory/.cocattn.lock``, holding the owner's PID.

    A second writer is refused at once with :class:`DirectoryBusyError` naming the holder's PID.
    The kernel releases the lock when the holder exits in any way (SIGKILL included), so a stale
    lock file never blocks a resume. Use as a context manager, or call :meth:`release`.
    """

    def __init__(self, directory: PathLike, what: str = "directory"):
        import fcntl

        self.path = Path(directory) / LOCK_FILE
        try:
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise AtomicWriteError(err.errno, f"cannot lock {directory}: {_reason(err)}") from err
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.pread(self._fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            finally:
                os.close(self._fd)
                self._fd = None
            raise DirectoryBusyError(
                f"{what} {directory} is in use by another cocattn process (PID {holder}); wait for it to "
                f"finish or stop it, or choose another directory"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        """Release the lock (the file stays; an unlocked file blocks nobody)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> "DirectoryLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
