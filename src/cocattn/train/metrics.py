"""What a run reports while it trains: the records of ``metrics.jsonl`` (trimmed back on resume),
TensorBoard scalars and the progress bar."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from cocattn import files


def trim_metrics(path: Path, step: int) -> None:
    """Drop metrics recorded after ``step`` (work lost by a crash and about to be redone)."""
    if not path.is_file():
        return
    kept = [r for r in files.read_jsonl(path) if int(r.get("step", 0)) <= step]
    files.write_jsonl(path, kept)


def progress_bar(total: int, initial: int, enabled: bool) -> Any:
    """A tqdm bar over steps, shown only when ``enabled`` and stderr is a terminal."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, unit="step", dynamic_ncols=True, disable=not (enabled and sys.stderr.isatty())
    )


class TensorBoard:
    """The numeric fields of each record as TensorBoard scalars under ``run_dir/tensorboard``
    (when ``enabled``; does nothing otherwise)."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise ValueError(
                    "train.tensorboard=True is not valid here: expected the tensorboard "
                    f"package to be installed ({err})"
                ) from None
            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def log(self, record: dict[str, Any]) -> None:
        if self.writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
