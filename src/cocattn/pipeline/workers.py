"""One job per attention kind at once, each in a fresh ``spawn`` process with ``cores // jobs``
threads (``cocattn reproduce`` and the lab on CPU; one at a time on a GPU). A job gets only plain
arguments and writes its own files, so its outcome is what it would be alone; a failed job's
exception is raised in the parent after the others finish, so their work is kept. Why side by
side: docs/ARCHITECTURE.md, "Pipeline".
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterator, Sequence

from cocattn.errors import Terminated

__all__ = ["cpu_cores", "plan_jobs", "run_jobs"]


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def plan_jobs(n_tasks: int, requested: int | None, device: str) -> tuple[int, int | None]:
    """``(jobs, threads per job)`` for ``n_tasks`` independent jobs.

    ``requested`` None: one job per task on CPU (single-threaded processes time-share the cores
    better than threads share a small model), one at a time on a GPU. ``threads`` None means
    torch's default (a single job keeps it)."""
    if requested is None:
        requested = 1 if device != "cpu" else n_tasks
    jobs = max(1, min(int(requested), n_tasks))
    if jobs == 1:
        return 1, None
    return jobs, max(1, cpu_cores() // jobs)


def _init_worker(threads: int | None) -> None:
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)


STOP_GRACE_S = 5.0
"""How long stopped workers get to exit after SIGTERM before they are killed."""


def _stop_workers(pool: ProcessPoolExecutor, grace_s: float) -> None:
    """Stop the pool's worker processes: queued jobs cancelled, SIGINT to each running one (its
    job ends with KeyboardInterrupt and the worker exits cleanly), a bounded wait, then SIGKILL
    for any still alive. Their locks go with them (flock) and their checkpoints are atomic, so a
    rerun resumes."""
    workers = multiprocessing.active_children()
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in workers:
        if proc.pid is not None:
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signal.SIGINT)
    deadline = time.monotonic() + grace_s
    for proc in workers:
        proc.join(max(0.0, deadline - time.monotonic()))
    for proc in workers:
        if proc.is_alive():
            proc.kill()
            proc.join(1.0)


@contextlib.contextmanager
def _workers_stop_with_this_process(pool: ProcessPoolExecutor, grace_s: float = STOP_GRACE_S) -> Iterator[None]:
    """While worker processes run: SIGINT or SIGTERM to this process stops them too, and it then
    raises ``KeyboardInterrupt`` (exit 130) or :class:`~cocattn.errors.Terminated` (exit 143). Before,
    SIGTERM left the workers training as orphans holding their locks, and SIGINT waited for them."""
    received: list[int] = []

    def on_sigterm(signum: int, frame: Any) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    main = threading.current_thread() is threading.main_thread()
    previous = (signal.signal(signal.SIGTERM, on_sigterm), signal.getsignal(signal.SIGINT)) if main else None
    try:
        yield
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None  # a second Ctrl-C waits for the stop
        _stop_workers(pool, grace_s)
        if received:
            raise Terminated(
                "SIGTERM: the worker processes were stopped; a rerun resumes from their checkpoints"
            ) from None
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous[0])
            signal.signal(signal.SIGINT, previous[1])


def run_jobs(
    fn: Callable[..., Any],
    calls: Sequence[tuple[Any, ...]],
    *,
    jobs: int,
    threads: int | None,
    poll: Callable[[], None] | None = None,
    poll_s: float = 2.0,
) -> list[Any]:
    """``[fn(*args) for args in calls]``, ``jobs`` at a time in spawned processes (in order).

    ``fn`` must be a module-level function. ``poll`` is called every ``poll_s`` seconds while
    jobs run (a progress bar that reads the jobs' files). With ``jobs == 1`` the calls run here,
    one after the other."""
    if jobs <= 1:
        results = []
        for args in calls:
            results.append(fn(*args))
            if poll:
                poll()
        return results
    context = multiprocessing.get_context("spawn")
    with (
        ProcessPoolExecutor(
            max_workers=jobs, mp_context=context, initializer=_init_worker, initargs=(threads,)
        ) as pool,
        _workers_stop_with_this_process(pool),
    ):
        futures: list[Future] = [pool.submit(fn, *args) for args in calls]
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=poll_s, return_when=FIRST_EXCEPTION)
            if poll:
                poll()
            if any(f.exception() is not None for f in done):
                break  # the running jobs finish (their files stay); the queued ones are cancelled
        for f in futures:
            if not f.done():
                f.cancel()
        wait([f for f in futures if not f.cancelled()])
        if poll:
            poll()
        for f in futures:
            error = None if f.cancelled() else f.exception()
            if error is not None:
                raise error
        return [f.result() for f in futures]
