"""Scoring in a child process (``worker.scorer: process``).

With ``worker.scorer: thread`` (the default) the scoring worker thread runs the model in the
daemon's own interpreter. Torch releases the interpreter lock (GIL) while an operation computes but
takes it back between operations, and the poll loop (record parsing, decoding, buffering: pure
Python) holds it most of the time under load, so on a CPU the scoring thread spends about half of
its wall time waiting for the lock (``scoring_s`` vs ``scoring_cpu_s`` in the daemon's stats).

``ProcessScorer`` moves the model's computation into one child process (``spawn``; torch threads =
``worker.threads``) with an interpreter of its own. The worker thread stays the daemon's side of
it: it stacks a batch's windows into a shared-memory block (one copy), sends the child a short
request over a pipe and waits (without the GIL) for the scores and components. Nothing else moves:
per-stream state, alert rules and commits stay on the poll loop.

The child loads each pipeline's model from the directory the daemon loaded it from
(``AnomalyModel.source``) and must find the same ``model_version``; when it cannot (the directory
was replaced in between, or the model was built in memory) that model is scored in the worker
thread as with ``thread``, with one warning. A child that fails or dies stops the daemon like a
scoring error in the thread does (exit status and message in the log); the supervisor (systemd,
``--processes``) restarts it and the uncommitted windows are read again.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from streamad.errors import described

log = logging.getLogger("streamad.daemon")


class ScorerError(RuntimeError):
    """The scoring process failed or died."""


def _serve(conn: Any, threads: int) -> None:  # the child process
    import signal

    import torch

    # the daemon decides when this process ends (it drains first): a Ctrl-C to the process group or
    # systemd's SIGTERM to the unit's processes must not kill it under the draining daemon
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    from streamad.model import AnomalyModel

    if threads > 0:
        torch.set_num_threads(threads)
    models: dict[str, Any] = {}
    block: shared_memory.SharedMemory | None = None  # the daemon's current batch block, attached
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break
        if msg is None:
            break
        try:
            if msg[0] == "load":
                _op, key, path, device = msg
                models[key] = AnomalyModel.load(path, device=device)
                conn.send(("ok", models[key].version))
            elif msg[0] == "drop":
                models.pop(msg[1], None)
                conn.send(("ok", None))
            else:  # "score"
                _op, key, name, shape, batch, precision = msg
                if block is None or block.name != name:  # the daemon grew its block: attach the new one
                    if block is not None:
                        block.close()
                    block = shared_memory.SharedMemory(name=name)
                x = np.ndarray(shape, dtype=np.float32, buffer=block.buf)
                try:
                    scores, comps = models[key].score(torch.from_numpy(x), batch, precision)
                finally:
                    del x
                conn.send(("ok", (np.asarray(scores), {k: np.asarray(v) for k, v in comps.items()})))
        except Exception as e:  # reported to the daemon, which stops as on any scoring error
            conn.send(("error", described(e, 300)))
    if block is not None:
        block.close()


class ProcessScorer:
    """``score(model, windows, batch, precision)`` computed in a child process (see module doc)."""

    def __init__(self, threads: int = 1) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, threads), name="streamad-scorer", daemon=True)
        self._proc.start()
        child.close()
        self._shm: shared_memory.SharedMemory | None = None
        self._held: dict[str, tuple[Any, str | None]] = {}  # pipeline -> (its model, the child's key or None)
        self._n = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def _ask(self, msg: tuple) -> Any:
        try:
            self._conn.send(msg)
            status, value = self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(1.0)
            raise ScorerError(f"the scoring process died (exit code {self._proc.exitcode})") from None
        if status != "ok":
            raise ScorerError(f"the scoring process failed: {value}")
        return value

    def _key(self, pipe: str, model: Any) -> str | None:
        """The child's key for ``pipe``'s current model (loaded there on first use; the model it
        replaces, after a reload, is dropped); None when the child cannot load the same model."""
        held = self._held.get(pipe)
        if held is not None and held[0] is model:
            return held[1]
        if held is not None and held[1] is not None:
            self._ask(("drop", held[1]))
        self._n += 1
        key, src, why = f"m{self._n}", getattr(model, "source", None), None
        if src is None:
            why = "built in memory"
        else:
            try:
                got = self._ask(("load", key, str(src), str(model.device)))
            except ScorerError as e:
                if not self._proc.is_alive():
                    raise
                why = f"it cannot load {src}: {e}"
            else:
                if got != model.version:
                    self._ask(("drop", key))
                    why = f"{src} now holds {got}"
        if why is not None:
            log.warning("scoring process: model %s of pipeline %s cannot be loaded there (%s); the worker thread "
                        "scores it", model.version, pipe, why)
            key = None
        self._held[pipe] = (model, key)
        return key

    def prepare(self, pipe: str, model: Any) -> bool:
        """Load ``pipe``'s model in the child now (at start-up, not on the first batch); False when the
        worker thread will score it."""
        return self._key(pipe, model) is not None

    def score(self, pipe: str, model: Any, windows: list, batch: int, precision: str) -> tuple[np.ndarray, dict]:
        """Scores and components of ``windows`` (pipeline ``pipe``'s, under its current ``model``)."""
        if not windows:
            return np.zeros(0), {}
        key = self._key(pipe, model)
        if key is None:
            return model.score_windows(windows, batch, precision)
        shape = (len(windows),) + tuple(windows[0].data.shape)
        nbytes = int(np.prod(shape)) * 4
        if self._shm is None or self._shm.size < nbytes:
            self._release()
            self._shm = shared_memory.SharedMemory(create=True, size=max(nbytes, 1 << 20))
        x = np.ndarray(shape, dtype=np.float32, buffer=self._shm.buf)
        try:
            np.stack([w.data for w in windows], out=x)
        finally:
            del x
        return self._ask(("score", key, self._shm.name, shape, batch, precision))

    def _release(self) -> None:
        if self._shm is not None:
            self._shm.close()
            self._shm.unlink()
            self._shm = None

    def close(self, timeout: float = 10.0) -> None:
        try:
            if self._proc.is_alive():
                self._conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(2.0)
        self._conn.close()
        self._release()
