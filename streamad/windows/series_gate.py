"""The time rule that keeps one record from moving a reading stream (the audio buffer's rule).

A record whose readings do not continue the stream — all of them more than ``ahead`` seconds
after its newest reading, or all of them more than ``behind`` seconds before it (further back
than late readings could still be placed) — waits for the stream's next record. If that record
continues the stream, the waiting one was a lone outlier (a forged or corrupt timestamp): it is
rejected (``rejected`` holds its ref and reason) and the stream never moved. Otherwise it is
placed: after a jump ahead the buffer settles what came before (its own rules); after a step
back the stream starts again from it (a fresh buffer; ``steps_back`` counts it).

Without this rule one reading stamped a year ahead made every later reading of its stream "too
late", and a clock stepped back made the rest of the stream too late.
"""
from __future__ import annotations

from typing import Any, Callable

from streamad.timelabels import Readings
from streamad.windows.base import TopicPartition, Window
from streamad.windows.series_buffer import ReadingStreamBuffer


class GatedReadingBuffer:
    def __init__(self, make: Callable[[], ReadingStreamBuffer], ahead_s: float, behind_s: float):
        self.make, self.ahead_s, self.behind_s = make, ahead_s, behind_s
        self.inner = make()
        self.pending: tuple[Readings, TopicPartition, int, Any] | None = None
        self.rejected: list[tuple[Any, str]] = []
        self.steps_back = self.outliers = 0
        self.carried = {"duplicates": 0, "dropped": 0, "accepted": 0}  # totals of replaced buffers

    @property
    def newest_time(self) -> float | None:
        b = self.inner
        return None if b.newest is None else b.newest / b.rate

    def continues(self, r: Readings) -> bool:
        newest = self.newest_time
        if newest is None or not len(r.times):
            return True
        return float(r.times.min()) <= newest + self.ahead_s and float(r.times.max()) >= newest - self.behind_s

    def push(self, r: Readings, tp: TopicPartition = ("", 0), offset: int = -1,
             ref: Any = None) -> tuple[list[Window], list[str]]:
        out: list[Window] = []
        reasons: list[str] = []
        if self.pending is not None:
            p, self.pending = self.pending, None
            if self.continues(r):
                self._reject(p, r)
            else:
                w, why = self._place(*p[:3])
                out, reasons = out + w, reasons + [(p[3], x) for x in why]
        if not self.continues(r):
            self.pending = (r, tp, offset, ref)
            return out, reasons
        w, why = self.inner.push(r, tp, offset)
        return out + w, reasons + why

    def _place(self, r: Readings, tp: TopicPartition, offset: int) -> tuple[list[Window], list[str]]:
        newest = self.newest_time
        if newest is not None and float(r.times.max()) < newest:  # a step back: start again from it
            self.steps_back += 1
            old = self.tallies()
            self.carried = {k: old[k] for k in self.carried}
            self.carried["dropped"] += self.inner.held_slots
            self.inner = self.make()
        return self.inner.push(r, tp, offset)

    def _reject(self, p: tuple, follower: Readings) -> None:
        r, ref = p[0], p[3]
        self.outliers += 1
        d = float(r.times.min()) - float(follower.times.min())
        where = f"{d:.3f} s ahead of" if d > 0 else f"{-d:.3f} s behind"
        self.rejected.append((ref, f"timestamp {r.time_labels[0][:40]} does not continue stream "
                                   f"{r.stream_id[:64]!r}: {where} the record that followed it"))
        self.carried["dropped"] += len(r.times)

    def tallies(self) -> dict[str, int]:
        s, c = self.inner.stats, self.carried
        return {"duplicates": c["duplicates"] + s.duplicates, "dropped": c["dropped"] + s.too_late + s.no_channels,
                "accepted": c["accepted"] + s.readings, "steps_back": self.steps_back}

    @property
    def held(self) -> int:
        return self.inner.held_slots + (len(self.pending[0].times) if self.pending is not None else 0)

    def oldest_needed(self) -> dict[TopicPartition, int]:
        out = self.inner.oldest_needed()
        if self.pending is not None and self.pending[2] >= 0:
            tp, off = self.pending[1], self.pending[2]
            out[tp] = min(off, out.get(tp, off))
        return out
