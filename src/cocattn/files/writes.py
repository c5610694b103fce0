"""Crash-safe writes: every file the project writes goes through :func:`atomic_write` (a temporary
file in the same directory, flush + fsync, ``os.replace``, fsync of the directory), so a crash at
any moment leaves either the old file or the new one; and the project's JSON / JSONL format."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterator

from cocattn._checks import check
from cocattn.errors import AtomicWriteError
from cocattn.safeparse import loads_json

if TYPE_CHECKING:
    import torch

PathLike = str | os.PathLike

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
