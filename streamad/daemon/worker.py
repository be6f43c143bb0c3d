"""The scoring worker: windows are scored in a thread apart from the poll loop.

The poll loop (:mod:`streamad.daemon.loop`) decodes records, buffers them per stream and cuts
windows; it hands each pipeline's new windows to :meth:`ScoringWorker.submit` and goes on polling
(heartbeats, rebalances, commits) while the worker thread runs ``Pipeline.score`` (torch releases
the interpreter lock while it computes; with ``worker.scorer: process`` the computation itself runs
in a child process, :mod:`.scorer_proc`, and the worker thread hands it each batch and waits). The
worker **only computes**: every piece of per-stream state (buffers, the live alert rule, holds)
stays on the poll-loop thread, which takes finished batches back (:meth:`ScoringWorker.finished`,
in submission order), applies ``Pipeline.decide``, publishes alerts and commits. A job's windows
keep holding their source offsets (:attr:`Job.hold`) until the poll loop has decided them, so a
commit never passes a window that is queued or being scored.

Bounded, never dropping: :attr:`ScoringWorker.depth` counts the windows submitted and not yet
taken back. The daemon pauses its partitions when the depth reaches ``worker.queue_windows`` and
resumes them once it is at or below half of that; the depth can exceed the mark by at most one
poll's windows.

Adaptive batch: the worker takes the queued jobs of one pipeline, oldest first, up to a cap of

    cap = clamp(latency_budget_s / cost, min(MIN_BATCH, max_batch), max_batch)   windows,

``cost`` being the moving average (EWMA, weight 0.2) of seconds per window of the batches of at
least MIN_BATCH windows scored so far, so one batch takes about ``worker.latency_budget_s`` at
most. Under light load a
batch is whatever is queued (small batches, low latency); under heavy load batches grow to the
cap (the per-batch overhead is amortised). A job larger than the cap is scored alone (jobs are
split at ``max_batch`` on submission).

Test hook: the environment variable ``STREAMAD_TEST_SCORE_DELAY_S`` adds that many seconds of
sleep per batch inside the worker (the slow-scorer test); never set it in production.
"""
from __future__ import annotations

import itertools
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MIN_BATCH = 16
EWMA = 0.2
DELAY_ENV = "STREAMAD_TEST_SCORE_DELAY_S"
_ids = itertools.count()


@dataclass
class Job:
    """Windows of one pipeline from one poll, in the order they were cut."""

    pipe: Any
    items: list  # [(stream key, Window)]
    stamp: Any = None  # the poll loop's tag (partition epochs at submission)
    id: int = field(default_factory=lambda: next(_ids))
    hold: dict = field(default_factory=dict)  # (topic, partition) -> oldest source offset of its windows

    def __post_init__(self) -> None:
        for _key, w in self.items:
            for tp, (lo, _hi) in w.sources.items():
                if lo < self.hold.get(tp, lo + 1):
                    self.hold[tp] = lo


@dataclass
class Result:
    jobs: list[Job]
    scores: np.ndarray  # one score per window of the jobs, concatenated
    comps: dict[str, np.ndarray]
    seconds: float  # wall time of the scoring pass (without the test delay)
    cpu_s: float = 0.0  # CPU time of the worker thread in it (less than ``seconds``: waits for CPU or the GIL)

    def split(self):
        """(job, scores, components) per job."""
        i = 0
        for job in self.jobs:
            j = i + len(job.items)
            yield job, self.scores[i:j], {k: v[i:j] for k, v in self.comps.items()}
            i = j


class ScoringWorker:
    def __init__(self, max_batch: int = 256, latency_budget_s: float = 0.1, name: str = "streamad-scoring",
                 scorer: Any = None):
        self.max_batch = max(1, int(max_batch))
        self.scorer = scorer  # None: Pipeline.score in this thread; else a scorer_proc.ProcessScorer
        self.latency_budget_s = latency_budget_s
        self.delay_s = float(os.environ.get(DELAY_ENV) or 0.0)
        self.cost: float | None = None  # EWMA of seconds per window
        self.depth = 0  # windows submitted and not yet taken back by finished()
        self.batches = 0
        self._queue: deque[Job] = deque()
        self._done: deque[Result] = deque()
        self._error: BaseException | None = None
        self._cv = threading.Condition()
        self._ready = threading.Event()  # set whenever a result (or an error) is waiting
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- the poll loop's side -----------------------------------------------------------
    def submit(self, pipe: Any, items: list, stamp: Any = None) -> list[Job]:
        """Queue windows for scoring (split into jobs of at most max_batch); returns the jobs."""
        jobs = [Job(pipe, items[i:i + self.max_batch], stamp) for i in range(0, len(items), self.max_batch)]
        with self._cv:
            self._queue.extend(jobs)
            self.depth += len(items)
            self._cv.notify()
        return jobs

    def finished(self) -> list[Result]:
        """Scored batches, oldest first (raises the worker's exception if scoring failed)."""
        with self._cv:
            if self._error is not None:
                raise self._error
            out = list(self._done)
            self._done.clear()
            self._ready.clear()
            self.depth -= sum(len(j.items) for r in out for j in r.jobs)
        return out

    def wait(self, timeout: float) -> bool:
        """Block until a result is waiting (True) or ``timeout`` seconds pass (False)."""
        return self._ready.wait(timeout)

    @property
    def idle(self) -> bool:
        return self.depth == 0

    def cap(self) -> int:
        """Windows per batch now (the adaptive rule in the module docstring)."""
        if not self.cost:
            return self.max_batch
        lo = min(MIN_BATCH, self.max_batch)
        return int(min(self.max_batch, max(lo, self.latency_budget_s / self.cost)))

    def close(self, timeout: float = 30.0) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(timeout)
        if self.scorer is not None:
            self.scorer.close()

    # -- the worker thread ----------------------------------------------------------------
    def _take(self) -> list[Job] | None:
        with self._cv:
            while not self._queue and not self._stop:
                self._cv.wait()
            if self._stop:
                return None
            cap, jobs = self.cap(), [self._queue.popleft()]
            n = len(jobs[0].items)
            while self._queue and self._queue[0].pipe is jobs[0].pipe and n + len(self._queue[0].items) <= cap:
                n += len(self._queue[0].items)
                jobs.append(self._queue.popleft())
            return jobs

    def _run(self) -> None:
        while True:
            jobs = self._take()
            if jobs is None:
                return
            try:
                windows = [w for j in jobs for _k, w in j.items]
                t0, c0 = time.perf_counter(), time.thread_time()
                pipe = jobs[0].pipe
                scores, comps = (pipe.score(windows) if self.scorer is None
                                 else pipe.score(windows, self.scorer.score))
                dt, cpu = time.perf_counter() - t0, time.thread_time() - c0
                if self.delay_s:
                    time.sleep(self.delay_s)
            except BaseException as e:  # handed to the poll loop, which stops the daemon
                with self._cv:
                    self._error = e
                self._ready.set()
                return
            if len(windows) >= MIN_BATCH:  # a tiny batch is mostly fixed overhead: it tells little
                per = dt / len(windows)
                self.cost = per if self.cost is None else (1 - EWMA) * self.cost + EWMA * per
            with self._cv:
                self.batches += 1
                self._done.append(Result(jobs, scores, comps, dt, cpu))
            self._ready.set()
