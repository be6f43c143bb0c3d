"""Per-stream sample buffers that cut fixed-length, overlapping windows.

Windows sit on an absolute grid: a window starts at every sample position
``k * hop`` where position = round(capture_time * sample_rate). The grid does not
depend on when the daemon started, so a restarted daemon re-creates exactly the
same windows (and the same alert ids) from re-read records.

Each buffer remembers which Kafka record (topic, partition, offset) supplied which
samples, so the daemon can commit only offsets whose samples are no longer needed.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from streamad.windows.base import TopicPartition, Window


@dataclass
class BufferStats:
    duplicate_samples: int = 0
    gaps: int = 0
    dropped_partial_windows: int = 0


class AudioStreamBuffer:
    def __init__(self, stream_id: str, sample_rate: int, window: int, hop: int, gap_tolerance: int):
        self.stream_id = stream_id
        self.sr = sample_rate
        self.win = window
        self.hop = hop
        self.tol = gap_tolerance
        self.buf = np.zeros(0, dtype=np.float32)
        self.buf_start: int | None = None  # absolute position of buf[0]
        self.next_start: int | None = None  # absolute position of the next window
        self.records: deque[tuple[int, int, TopicPartition, int]] = deque()  # (pos0, pos1, tp, offset)
        self.stats = BufferStats()

    @property
    def end(self) -> int | None:
        return None if self.buf_start is None else self.buf_start + len(self.buf)

    def _reset(self, pos: int) -> None:
        if self.buf_start is not None and len(self.buf):
            self.stats.dropped_partial_windows += 1
        self.buf = np.zeros(0, dtype=np.float32)
        self.buf_start = pos
        self.next_start = -(-pos // self.hop) * self.hop  # first grid point at or after pos
        self.records.clear()

    def push(self, samples: np.ndarray, timestamp: float, tp: TopicPartition = ("", 0),
             offset: int = -1) -> list[Window]:
        pos = int(round(timestamp * self.sr))
        n = len(samples)
        end = self.end
        if end is None:
            self._reset(pos)
        elif pos > end + self.tol:  # gap: restart on the grid
            self.stats.gaps += 1
            self._reset(pos)
        elif pos < end - self.tol:  # overlap with what we already have: keep only new samples
            if pos + n <= end:
                self.stats.duplicate_samples += n
                return []
            cut = end - pos
            self.stats.duplicate_samples += cut
            samples = samples[cut:]
            pos = end
        else:
            pos = end  # within tolerance: treat as contiguous (absorbs clock jitter)
        self.buf = np.concatenate([self.buf, samples.astype(np.float32, copy=False)])
        self.records.append((pos, pos + len(samples), tp, offset))
        return self._cut()

    def _cut(self) -> list[Window]:
        out = []
        assert self.buf_start is not None and self.next_start is not None
        while self.next_start + self.win <= self.buf_start + len(self.buf):
            s = self.next_start
            i = s - self.buf_start
            if i < 0:  # grid point before the buffer start cannot happen after _reset
                self.next_start += self.hop
                continue
            data = self.buf[i:i + self.win].copy()
            sources: dict[TopicPartition, tuple[int, int]] = {}
            for p0, p1, tp, off in self.records:
                if p1 > s and p0 < s + self.win and off >= 0:
                    lo, hi = sources.get(tp, (off, off))
                    sources[tp] = (min(lo, off), max(hi, off))
            out.append(Window(self.stream_id, s / self.sr, (s + self.win) / self.sr, data, sources,
                              key=f"{self.stream_id}@{s}"))
            self.next_start += self.hop
        keep_from = self.next_start - self.buf_start
        if keep_from > 0:
            self.buf = self.buf[keep_from:]
            self.buf_start += keep_from
        while self.records and self.records[0][1] <= self.buf_start:
            self.records.popleft()
        return out

    def oldest_needed(self) -> dict[TopicPartition, int]:
        """Smallest offset per partition whose samples a future window still needs."""
        out: dict[TopicPartition, int] = {}
        for _p0, _p1, tp, off in self.records:
            if off >= 0 and (tp not in out or off < out[tp]):
                out[tp] = off
        return out
