"""Per-stream sample buffers that cut fixed-length, overlapping windows.

Windows sit on an absolute grid: a window starts at every sample position
``k * hop`` where position = round(capture_time * sample_rate). The grid does not
depend on when the daemon started, so a restarted daemon re-creates exactly the
same windows (and the same alert ids) from re-read records. With context (``lead`` samples,
``audio.context_s``) a window's samples begin ``lead`` before the span it stands for (its start
time), so a segment's first window stands for the span ``lead`` after its first grid point.

Each buffer remembers which Kafka record (topic, partition, offset) supplied which
samples, so the daemon can commit only offsets whose samples are no longer needed.

Time rules (``end`` = position just after the newest sample; ``tol`` = gap tolerance;
``horizon`` = resend horizon), for a chunk starting at ``pos``:

* **contiguous** (``|pos - end| <= tol``): appended (jitter absorbed).
* **resend** (``end - horizon <= pos < end - tol``): the samples already held are dropped and
  counted as duplicates (at-least-once producers resend); only new samples are appended.
* **does not continue the stream** (``pos > end + tol``: a gap; ``pos < end - horizon``: a step
  back): the chunk is held as *pending* and the stream's next chunk decides. If that chunk
  continues the stream, the pending one was a lone outlier (a forged or corrupt timestamp): it is
  rejected (``rejected`` holds its ``ref`` and reason; the daemon dead-letters it) and the stream
  never moved. Otherwise the pending chunk starts a new segment (the partial window before it is
  dropped and its samples counted in ``stats.dropped_samples``); a step back is counted in
  ``stats.steps_back`` for the daemon's one log line. So one chunk stamped far ahead or behind
  can neither blind a stream nor make it drop what its real producer sends.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamad.windows.base import TopicPartition, Window


@dataclass
class BufferStats:
    duplicate_samples: int = 0
    gaps: int = 0
    dropped_partial_windows: int = 0
    dropped_samples: int = 0  # partial windows dropped at gaps and steps, rejected outlier chunks
    steps_back: int = 0  # segments started by a chunk earlier than the stream's newest sample
    outliers: int = 0  # chunks rejected: neither continued the stream nor were continued
    accepted: int = 0  # chunks whose samples were appended (not pending, not rejected, not only duplicates)


@dataclass
class _Pending:
    samples: np.ndarray
    pos: int
    tp: TopicPartition
    offset: int
    ref: Any


class AudioStreamBuffer:
    def __init__(self, stream_id: str, sample_rate: int, window: int, hop: int, gap_tolerance: int,
                 resend_horizon: int | None = None, lead: int = 0):
        self.stream_id = stream_id
        self.sr = sample_rate
        self.win = window
        self.lead = lead  # samples of context at the front of each window (not part of its time span)
        self.hop = hop
        self.tol = gap_tolerance
        self.horizon = max(self.tol, 10 * sample_rate if resend_horizon is None else resend_horizon)
        self.buf = np.zeros(0, dtype=np.float32)  # a view of _store: samples held, from buf_start on
        self._store, self._at = self.buf, 0  # buf = _store[_at:_at + len(buf)], room after it (_extend)
        self.buf_start: int | None = None  # absolute position of buf[0]
        self.next_start: int | None = None  # absolute position of the next window
        self.records: deque[tuple[int, int, TopicPartition, int]] = deque()  # (pos0, pos1, tp, offset)
        self.pending: _Pending | None = None
        self.rejected: list[tuple[Any, str]] = []  # (ref of a rejected chunk, reason): drained by the caller
        self.stats = BufferStats()

    @property
    def end(self) -> int | None:
        return None if self.buf_start is None else self.buf_start + len(self.buf)

    @property
    def held_samples(self) -> int:
        """Samples held that no window has used yet (partial window + pending chunk)."""
        return len(self.buf) + (len(self.pending.samples) if self.pending is not None else 0)

    def _reset(self, pos: int) -> None:
        if self.buf_start is not None and len(self.buf):
            self.stats.dropped_partial_windows += 1
            self.stats.dropped_samples += len(self.buf)
        self.buf = self._store = np.zeros(0, dtype=np.float32)
        self._at = 0
        self.buf_start = pos
        self.next_start = -(-pos // self.hop) * self.hop  # first grid point at or after pos
        self.records.clear()

    def continues(self, pos: int) -> bool:
        """A chunk starting at ``pos`` continues the stream (contiguous, or a recent resend)."""
        end = self.end
        return end is not None and end - self.horizon <= pos <= end + self.tol

    def push(self, samples: np.ndarray, timestamp: float, tp: TopicPartition = ("", 0),
             offset: int = -1, ref: Any = None) -> list[Window]:
        """Add a chunk; the windows it completes. ``ref`` identifies the chunk in ``rejected``."""
        pos = int(round(timestamp * self.sr))
        out: list[Window] = []
        if self.pending is not None:
            p, self.pending = self.pending, None
            if self.continues(pos):
                self._reject(p, pos)
            else:
                out += self._start_segment(p)
        if self.end is None:
            self._reset(pos)
        elif not self.continues(pos):
            self.pending = _Pending(samples, pos, tp, offset, ref)
            return out
        return out + self._append(samples, pos, tp, offset)

    def _start_segment(self, p: _Pending) -> list[Window]:
        end = self.end
        if end is not None and p.pos < end:
            self.stats.steps_back += 1
        else:
            self.stats.gaps += 1
        self._reset(p.pos)
        return self._append(p.samples, p.pos, p.tp, p.offset)

    def _reject(self, p: _Pending, resumed_at: int) -> None:
        self.stats.outliers += 1
        self.stats.dropped_samples += len(p.samples)
        d = (p.pos - resumed_at) / self.sr
        where = f"{d:.3f} s ahead of" if d > 0 else f"{-d:.3f} s behind"
        self.rejected.append((p.ref, f"timestamp {p.pos / self.sr:.3f} does not continue stream "
                                     f"{self.stream_id[:64]!r}: {where} the chunk that followed it"))

    def _append(self, samples: np.ndarray, pos: int, tp: TopicPartition, offset: int) -> list[Window]:
        n, end = len(samples), self.end
        assert end is not None
        if pos < end - self.tol:  # a resend: keep only the samples not held yet
            if pos + n <= end:
                self.stats.duplicate_samples += n
                return []
            cut = end - pos
            self.stats.duplicate_samples += cut
            samples = samples[cut:]
        pos = end  # within tolerance: treat as contiguous (absorbs clock jitter)
        self._extend(samples)
        self.records.append((pos, pos + len(samples), tp, offset))
        self.stats.accepted += 1
        return self._cut()

    def _extend(self, samples: np.ndarray) -> None:
        """Append to buf in place while its backing array has room after it; else move buf to a new
        one with room for another hop of samples (one copy per hop instead of one per chunk)."""
        n, m = len(self.buf), len(samples)
        if self._at + n + m > len(self._store):
            store = np.empty(n + m + self.hop, dtype=np.float32)
            store[:n] = self.buf
            self._store, self._at = store, 0
        self._store[self._at + n:self._at + n + m] = samples
        self.buf = self._store[self._at:self._at + n + m]

    def _cut(self) -> list[Window]:
        out = []
        assert self.buf_start is not None and self.next_start is not None
        while self.next_start + self.win <= self.buf_start + len(self.buf):
            s = self.next_start
            i = s - self.buf_start  # >= 0: _reset puts the first grid point at or after buf_start
            data = self.buf[i:i + self.win].copy()
            sources: dict[TopicPartition, tuple[int, int]] = {}
            for p0, p1, tp, off in self.records:
                if p1 > s and p0 < s + self.win and off >= 0:
                    lo, hi = sources.get(tp, (off, off))
                    sources[tp] = (min(lo, off), max(hi, off))
            out.append(Window(self.stream_id, (s + self.lead) / self.sr, (s + self.win) / self.sr, data, sources,
                              key=f"{self.stream_id}@{s}"))
            self.next_start += self.hop
        keep_from = self.next_start - self.buf_start
        if keep_from > 0:
            self.buf = self.buf[keep_from:]
            self._at += keep_from
            self.buf_start += keep_from
        while self.records and self.records[0][1] <= self.buf_start:
            self.records.popleft()
        return out

    def oldest_needed(self) -> dict[TopicPartition, int]:
        """Smallest offset per partition whose samples a future window still needs (the pending
        chunk's too: the next chunk decides about it)."""
        out: dict[TopicPartition, int] = {}
        held = [(tp, off) for _p0, _p1, tp, off in self.records]
        if self.pending is not None:
            held.append((self.pending.tp, self.pending.offset))
        for tp, off in held:
            if off >= 0 and (tp not in out or off < out[tp]):
                out[tp] = off
        return out
