"""Live progress of ``cocattn reproduce``'s stages as periodic plain lines: a thread of the parent
reads what the workers write anyway (``metrics.jsonl``, result files) and every ``every_s``
seconds logs each kind's step, loss, tokens/s and the ETA, without carriage returns, to the
terminal and ``OUT/reproduce.log``. The workers are not touched."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Callable

__all__ = ["ProgressLines", "RunLog", "TrainWatch", "EvalWatch", "last_record", "duration", "LOG_FILE"]

LOG_FILE = "reproduce.log"


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def last_record(metrics: Path, key: str = "tok_per_s") -> dict | None:
    """The newest complete record of ``metrics`` (a JSON-lines file another process appends to)
    that has ``key``; None when there is none yet."""
    try:
        with open(metrics, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:  # a line being written, or cut by the seek
            continue
        if isinstance(record, dict) and key in record:
            return record
    return None


class TrainWatch:
    """The training stage's line, from each kind's ``metrics.jsonl``."""

    def __init__(self, run_dirs: dict[str, Path], steps: int):
        self.run_dirs, self.steps = run_dirs, steps

    def __call__(self, elapsed: float) -> str:
        parts, remaining, rate = [], 0.0, 0.0
        for kind, run_dir in self.run_dirs.items():
            r = last_record(run_dir / "metrics.jsonl")
            step = int(r["step"]) if r else 0
            if r is None:
                parts.append(f"{kind} 0/{self.steps}")
            else:
                parts.append(f"{kind} {step}/{self.steps} loss {r['loss']:.3f} {r['tok_per_s']:,.0f} tok/s")
            remaining += self.steps - step
            if r and step < self.steps and r.get("tokens") and step:
                rate += r["tok_per_s"] / (r["tokens"] / step)  # steps/s of a running kind
        eta = "ETA 0s" if remaining == 0 else f"ETA {duration(remaining / rate)}" if rate > 0 else "ETA –"
        return f"train {duration(elapsed)}: " + " | ".join(parts) + f" | {eta}"


class EvalWatch:
    """The evaluation stage's line, from the result files each kind is to write."""

    def __init__(self, expected: dict[str, list[Path]]):
        self.expected = expected
        self.at_start = sum(p.is_file() for paths in expected.values() for p in paths)

    def __call__(self, elapsed: float) -> str:
        done = {kind: sum(p.is_file() for p in paths) for kind, paths in self.expected.items()}
        total, finished = sum(len(p) for p in self.expected.values()), sum(done.values())
        new = finished - self.at_start
        eta = (
            "ETA 0s"
            if finished == total
            else f"ETA {duration(elapsed / new * (total - finished))}"
            if new > 0
            else "ETA –"
        )
        parts = [f"{kind} {done[kind]}/{len(paths)}" for kind, paths in self.expected.items()]
        return f"eval {duration(elapsed)}: " + " | ".join(parts) + f" | results {finished}/{total} | {eta}"


class RunLog:
    """``log(msg)`` and the same line, time-stamped, appended to ``path`` (the run log);
    ``to_file(msg)`` writes the file only. With ``log=None`` it prints the stamped line itself, so
    the terminal and the run log hold the same text. Safe to call from the progress thread."""

    def __init__(self, log: Callable[[str], None] | None, path: Path):
        self.log, self.path = log, path
        self._lock = threading.Lock()

    def __call__(self, msg: str) -> None:
        line = self._line(msg)
        if self.log is None:
            print(line + "\n", end="", flush=True)  # one write: never run together with a worker's
        else:
            self.log(msg)
        self._append(line)

    def to_file(self, msg: str) -> None:
        self._append(self._line(msg))

    @staticmethod
    def _line(msg: str) -> str:
        return f"[reproduce {time.strftime('%H:%M:%S')}] {msg}"

    def _append(self, line: str) -> None:
        with self._lock:
            try:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(line + "\n")
            except OSError:  # the log is a convenience: never the reason a run fails
                pass


class ProgressLines:
    """A context manager: while its block runs, a daemon thread logs ``describe(elapsed)`` every
    ``every_s`` seconds (first after ``every_s``). A failing ``describe`` skips that line."""

    def __init__(self, describe: Callable[[float], str], log: Callable[[str], None], every_s: float):
        self.describe, self.log, self.every_s = describe, log, float(every_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cocattn-progress", daemon=True)
        self._start = time.perf_counter()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.log(self.describe(time.perf_counter() - self._start))
            except Exception:  # a file mid-write, a record without a field: the next line will do
                continue

    def __enter__(self) -> "ProgressLines":
        self._start = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
