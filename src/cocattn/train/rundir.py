"""The run directory: what a run writes there, the refusal of a foreign directory, the lock held
by the process writing it, and its preparation for a new or resumed run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from cocattn import checkpoint as ckpt
from cocattn.checkpoint import CONFIG_FILE
from cocattn import files
from cocattn._checks import bad_value
from cocattn.train.distributed import Dist

METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "train_result.json"
MODEL_DIR = "model"

# what `cocattn train` writes into a run directory; anything else makes it a foreign directory
RUN_ENTRIES = frozenset(
    {CONFIG_FILE, METRICS_FILE, RESULT_FILE, MODEL_DIR, ckpt.CHECKPOINTS, "tensorboard", files.LOCK_FILE}
)


def check_run_dir(run_dir: Path) -> None:
    """Refuse a non-empty ``run_dir`` that is not a cocattn run directory: its
    ``config.json`` must be a run config and it may hold only what a run writes, so a foreign
    project's config.json or ``.tmp-*`` entries are never overwritten or deleted."""
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise bad_value("--out", str(run_dir), "a run directory (it is a file)")
    entries = [p.name for p in run_dir.iterdir()]
    foreign = sorted(n for n in entries if n not in RUN_ENTRIES and not n.startswith(".tmp-"))
    if foreign:
        raise bad_value(
            "--out",
            str(run_dir),
            "an empty or new directory, or a cocattn run directory; it holds "
            f"{', '.join(foreign[:5])}{', …' if len(foreign) > 5 else ''}, which cocattn train does not write",
        )
    config = run_dir / CONFIG_FILE
    if config.exists():
        try:
            data = files.load_json(config)
        except (OSError, ValueError):
            data = None
        if not (isinstance(data, dict) and isinstance(data.get("train"), dict) and isinstance(data.get("data"), dict)):
            raise bad_value("--out", str(run_dir), f"a cocattn run directory ({config} is not a cocattn run config)")
    elif any(not n.startswith(".tmp-") and n != files.LOCK_FILE for n in entries):
        raise bad_value("--out", str(run_dir), "a cocattn run directory (it has no config.json)")


@contextlib.contextmanager
def locked_run_dir(run_dir: Path) -> Iterator[None]:
    """Check ``run_dir`` (:func:`check_run_dir`), create it and hold its exclusive lock while the
    block runs; a directory this call created is removed again if the run wrote nothing."""
    check_run_dir(run_dir)
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise files.AtomicWriteError(err.errno, f"cannot create run directory {run_dir}: {err.strerror}") from err
    lock = files.DirectoryLock(run_dir, "run directory")
    try:
        yield
    finally:
        lock.release()
        if created and [p.name for p in run_dir.iterdir()] == [files.LOCK_FILE]:  # failed before writing
            with contextlib.suppress(OSError):
                (run_dir / files.LOCK_FILE).unlink()
                run_dir.rmdir()


def prepare_run_dir(run_dir: Path, resume: bool, dist_info: Dist) -> Path | None:
    """The checkpoint to resume from (None for a new run); a run directory that already holds a
    run is refused unless ``resume``. Rank 0 creates it and removes temporaries of a crash."""
    latest = ckpt.latest_checkpoint(run_dir)
    if not resume and (latest is not None or (run_dir / MODEL_DIR).exists()):
        raise FileExistsError(
            f"run directory {run_dir} already holds a run; pass --resume (resume=True) "
            "to continue it, or choose another --out"
        )
    if dist_info.main:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            files.clean_temporaries(run_dir)
        except OSError as err:
            raise files.AtomicWriteError(err.errno, f"cannot create run directory {run_dir}: {err.strerror}") from err
    return latest if resume else None
