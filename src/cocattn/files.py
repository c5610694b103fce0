"""Crash-safe writes and code-free loading.

Every file the project writes goes through :func:`atomic_write` (temporary file in the same
directory, flush + fsync, ``os.replace``, fsync of the directory), so a crash, a SIGKILL, a full
disk or a read-only directory at any moment leaves either the old file or the new one, never a
partial one. Directories (checkpoints, model directories) are built under a temporary name and
published with one rename (:func:`atomic_directory`).

Loading reads safetensors and JSON only. Nothing is ever unpickled: :func:`refuse_pickles`
rejects a directory holding a pickle (``*.pt``, ``*.pth``, ``*.bin``, ``*.pkl``, or any file
whose first bytes are a pickle or a zip archive) before anything in it is read.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterator

from cocattn._checks import bad_value, check
from cocattn.errors import AtomicWriteError, DirectoryBusyError, InputError, OutputNotWritableError, UnsafeFileError
from cocattn.safeparse import loads_json

if TYPE_CHECKING:
    import torch

PathLike = str | os.PathLike

# Suffixes torch / pickle files use; a checkpoint directory holding one is refused.
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz")
_TMP_PREFIX = ".tmp-"


def _reason(err: BaseException) -> str:
    code = getattr(err, "errno", None)
    if code == errno.ENOSPC:
        return "no space left on the device (disk full)"
    if code == errno.EDQUOT:
        return "disk quota exceeded"
    if code in (errno.EROFS,):
        return "the file system is read-only"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied (is the directory read-only?)"
    return f"{type(err).__name__}: {err}"


def fsync_directory(directory: PathLike) -> None:
    """fsync a directory so that a rename inside it survives a power loss (no-op where unsupported)."""
    try:
        fd = os.open(os.fspath(directory), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on a clean exit publish it as ``path`` atomically.

    On any error the temporary file is removed, ``path`` keeps its previous content and an
    :class:`AtomicWriteError` naming ``path`` is raised (disk full and read-only directories
    included).
    """
    check(mode in ("w", "wb"), "mode", mode, "'w' or 'wb'")
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{path.name}.", dir=directory)
    except OSError as err:
        raise AtomicWriteError(err.errno, f"cannot write {path}: {_reason(err)}") from err
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600 files; give the result the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
        fsync_directory(directory)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError) and not isinstance(err, AtomicWriteError):
            raise AtomicWriteError(
                err.errno, f"cannot write {path}: {_reason(err)}; the previous file (if any) is unchanged"
            ) from err
        raise


def write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def write_text(path: PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return obj.item()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def dumps_json(obj: Any) -> str:
    """JSON text as the project writes it (indented, sorted keys, no NaN)."""
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False, default=_json_default) + "\n"


def write_json(path: PathLike, obj: Any) -> None:
    """Write ``obj`` as JSON atomically (NaN/inf refused: they are not JSON)."""
    write_text(path, dumps_json(obj))


def append_jsonl(path: PathLike, record: dict[str, Any]) -> None:
    """Append one JSON line (metrics logs; a torn last line is skipped by :func:`read_jsonl`)."""
    line = json.dumps(record, sort_keys=True, default=_json_default, allow_nan=True) + "\n"
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
    except OSError as err:
        raise AtomicWriteError(err.errno, f"cannot append to {path}: {_reason(err)}") from err


def write_jsonl(path: PathLike, records: list[dict[str, Any]]) -> None:
    """Write JSON lines atomically (one record per line, as :func:`append_jsonl` writes them)."""
    write_text(path, "".join(json.dumps(r, sort_keys=True, default=_json_default) + "\n" for r in records))


def read_jsonl(path: PathLike) -> list[dict[str, Any]]:
    """Records of a JSONL file; a truncated final line (crash while appending) is ignored."""
    records = []
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(loads_json(line, f"{path}: line {i + 1}"))
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # torn last line
                break
            raise ValueError(f"{path}: line {i + 1} is not valid JSON") from None
    return records


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    import torch

    out = {}
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name}: expected a tensor, got {type(tensor).__name__}")
        out[name] = tensor.detach().to("cpu").contiguous()
    return out


def write_safetensors(path: PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write tensors as safetensors atomically (tensors are copied to CPU; shared storage is fine)."""
    from safetensors.torch import save

    data = save({k: v.clone() for k, v in _contiguous(tensors).items()}, metadata=metadata)
    write_bytes(path, data)


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Directories


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
    removed = []
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


# ---------------------------------------------------------------------------------------------
# Safe loading


def is_pickle_bytes(head: bytes) -> bool:
    """True for bytes that start a pickle (protocol 2+) or a zip archive (torch.save's format)."""
    if head[:4] == b"PK\x03\x04":
        return True
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


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


def refuse_remote_code(directory: PathLike) -> None:
    """Raise :class:`UnsafeFileError` if a Hugging Face model directory asks for custom code: an
    ``auto_map`` in ``config.json`` / ``tokenizer_config.json`` / ``processor_config.json``, or
    any ``*.py`` file. transformers would offer to run that code (``trust_remote_code``); cocattn
    refuses before transformers sees the directory, and loads with ``trust_remote_code=False``."""
    directory = Path(directory)
    for name in ("config.json", "tokenizer_config.json", "processor_config.json", "preprocessor_config.json"):
        file = directory / name
        if not file.is_file():
            continue
        try:
            data = loads_json(file.read_text(encoding="utf-8"), str(file))
        except InputError:
            raise  # nested past the bound: transformers would recurse without end on it
        except (OSError, ValueError):
            continue  # the loaders name unreadable files themselves
        if isinstance(data, dict) and "auto_map" in data:
            raise UnsafeFileError(
                f'refusing to load {directory}: {file} has an "auto_map" (custom model code to run); '
                "cocattn never executes code from a model directory. Remove auto_map and the *.py files "
                "if the architecture is a standard one."
            )
    code = sorted(p for p in directory.rglob("*.py") if p.is_file())
    if code:
        raise UnsafeFileError(
            f"refusing to load {directory}: it holds Python code ({code[0]}"
            f"{f' and {len(code) - 1} more' if len(code) > 1 else ''}); cocattn never executes code from a model "
            "directory. Remove the *.py files."
        )


def refuse_pickles(directory: PathLike) -> None:
    """Raise :class:`UnsafeFileError` if ``directory`` holds a pickle; never reads one further.

    Safetensors files are exempt from the byte test (their header length can start with 0x80);
    their own parser rejects anything that is not safetensors.
    """
    directory = Path(directory)
    for root, _dirs, files in os.walk(directory):
        for name in sorted(files):
            file = Path(root) / name
            if name.startswith(_TMP_PREFIX):
                continue
            if name.lower().endswith(PICKLE_SUFFIXES):
                raise UnsafeFileError(
                    f"refusing to load {directory}: {file} is a pickle-format file ({file.suffix}) "
                    "which could run code when loaded; cocattn reads safetensors and JSON only. "
                    "Convert it with a trusted tool, or remove it."
                )
            if name.endswith(".safetensors"):
                continue
            try:
                with open(file, "rb") as handle:
                    head = handle.read(4)
            except OSError:
                continue
            if is_pickle_bytes(head):
                raise UnsafeFileError(
                    f"refusing to load {directory}: {file} is a pickle or zip archive (first bytes "
                    f"{head!r}) which could run code when loaded; cocattn reads safetensors and JSON only."
                )


def load_json(path: PathLike) -> Any:
    """Parse a JSON file; a missing or invalid file raises an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return loads_json(path.read_text(encoding="utf-8"), str(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON (corrupt or truncated?): {err}") from None


def load_safetensors(path: PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a safetensors file; a missing, truncated or non-safetensors file names the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise ValueError(f"{path} is not a valid safetensors file (corrupt or truncated?): {err}") from None


def safetensors_metadata(path: PathLike) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file (empty when absent)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})
