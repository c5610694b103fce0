"""Running a study: its directory, its workers side by side, progress lines, and ``lab.json``.

``lab.json`` holds the study, how and where it ran (CPU, threads, commit, date, wall time) and
every unit's record; the report is made from it alone (:func:`cocattn.lab.report.write_lab_report`),
so ``cocattn report DIR`` rebuilds it. A rerun with the same study skips the finished units; a
rerun with a different study in the same directory is refused (nothing is mixed or overwritten).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from cocattn import files
from cocattn._checks import bad_value, check
from cocattn.lab.study import UNITS_DIR, Study, load_units, run_unit, units
from cocattn.safeparse import loads_json
from cocattn.pipeline.workers import cpu_cores, plan_jobs, run_jobs

__all__ = ["run_study", "LAB_FILE", "STUDY_FILE"]

LAB_FILE = "lab.json"
STUDY_FILE = "study.json"


def _claim_directory(out: Path, study: Study) -> None:
    """Create ``out`` or accept it when it holds this very study; refuse anything else."""
    spec = json.loads(files.dumps_json(study.to_dict()))  # as it reads back from study.json
    if out.exists():
        check(out.is_dir(), "--out", str(out), "a directory (this path is a file)")
        entries = {p.name for p in out.iterdir()}
        if entries and STUDY_FILE not in entries:
            raise bad_value(
                "--out",
                str(out),
                f"a new or empty directory, or one a `cocattn lab` run wrote (it holds {len(entries)} other entries)",
            )
        if STUDY_FILE in entries:
            before = loads_json((out / STUDY_FILE).read_text(), str(out / STUDY_FILE))
            if before != spec:
                changed = sorted(k for k in spec if spec[k] != before.get(k)) or ["format"]
                raise bad_value(
                    "--out",
                    str(out),
                    f"a new directory or one of this study; it holds a different study (changed: {', '.join(changed)}): use a new --out to keep both",
                )
    (out / UNITS_DIR).mkdir(parents=True, exist_ok=True)
    files.write_json(out / STUDY_FILE, spec)


def _commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[3]
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
        return done.stdout.strip() or None if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


class _Progress:
    """Plain lines (no carriage returns): a unit finished, and every ``every_s`` seconds the
    running units' steps, with an ETA from the finished units' pace."""

    def __init__(self, out: Path, names: list[str], steps: int, enabled: bool, every_s: float = 20.0) -> None:
        self.out, self.names, self.steps, self.enabled, self.every_s = out, names, steps, enabled, every_s
        self.start = time.perf_counter()
        self.last = self.start
        self.done = {n for n in names if (out / UNITS_DIR / f"{n}.json").is_file()}
        self.initial = len(self.done)

    def _line(self, text: str) -> None:
        if self.enabled:
            print(f"lab: {text}", file=sys.stderr, flush=True)

    def _fraction(self) -> float:
        running = 0.0
        for n in self.names:
            if n in self.done:
                continue
            path = self.out / UNITS_DIR / f"{n}.progress"
            try:
                running += int(path.read_text().split()[0]) / self.steps
            except (OSError, ValueError, IndexError):
                pass
        return (len(self.done) - self.initial + running) / max(1, len(self.names) - self.initial)

    def __call__(self) -> None:
        now = time.perf_counter()
        for n in self.names:
            if n not in self.done and (self.out / UNITS_DIR / f"{n}.json").is_file():
                self.done.add(n)
                path = self.out / UNITS_DIR / f"{n}.json"
                rec = loads_json(path.read_text(), str(path))
                inwin = [r for r in rec["results"] if r["multiple"] == 1 and r["scaling"] == "plain"]
                acc = f"{inwin[0]['correct'] / inwin[0]['cases']:.2f}" if inwin else "-"
                self._line(
                    f"[{len(self.done)}/{len(self.names)}] {n}: in-window accuracy {acc}, {rec['train_seconds']:.0f} s of training{self._eta()}"
                )
        if now - self.last >= self.every_s and len(self.done) < len(self.names):
            self.last = now
            self._line(
                f"{len(self.done)}/{len(self.names)} models done, {100 * self._fraction():.0f} % of the training{self._eta()}"
            )

    def _eta(self) -> str:
        frac = self._fraction()
        if frac <= 0.02:
            return ""
        left = (time.perf_counter() - self.start) * (1 - frac) / frac
        return f"; about {left / 60:.1f} min left" if frac < 1 else ""


def run_study(
    study: Study,
    out: str | Path,
    jobs: int | None = None,
    progress: bool = True,
    on_done: Callable[[Path], Any] | None = None,
) -> Path:
    """Run (or resume) ``study`` into ``out``; returns the path of ``lab.json``.

    ``jobs`` worker processes train the units side by side (default: one per core, one thread each)."""
    out = Path(out)
    _claim_directory(out, study)
    todo = [u for u in units(study) if not (out / UNITS_DIR / f"{u.name}.json").is_file()]
    n_jobs, threads = plan_jobs(len(todo) or 1, jobs or cpu_cores(), "cpu")
    names = [u.name for u in units(study)]
    bar = _Progress(out, names, study.recipe.steps, progress)
    if progress:
        bar._line(
            f"{study.study}: {len(names)} models ({len(names) - len(todo)} done already), {n_jobs} at a time with {threads or 'default'} thread(s) each"
        )
    start = time.perf_counter()
    calls = [(study.to_dict(), dataclasses.asdict(u), str(out)) for u in todo]
    run_jobs(run_unit, calls, jobs=n_jobs, threads=threads, poll=bar, poll_s=2.0)
    wall = time.perf_counter() - start
    return write_lab_file(out, study, wall, n_jobs, threads)


def write_lab_file(out: Path, study: Study, wall: float, jobs: int, threads: int | None) -> Path:
    from cocattn.bench.measure import hardware_name

    records = load_units(out)
    names = [u.name for u in units(study)]
    lab = {
        "format": "cocattn-lab/1",
        "study": study.to_dict(),
        "run": {
            "hardware": hardware_name("cpu"),
            "jobs": jobs,
            "threads_per_job": threads,
            "commit": _commit(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "wall_seconds_last_invocation": wall,
        },
        "units": [records[n] for n in names if n in records],
    }
    files.write_json(out / LAB_FILE, lab)
    return out / LAB_FILE
