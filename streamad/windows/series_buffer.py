"""Per-stream buffer for numeric readings: the series twin of ``AudioStreamBuffer``.

Readings sit on an absolute grid of period ``1 / rate_hz``: a reading at time ``ts`` goes to
slot ``round(ts * rate_hz)`` (nearest grid point, ties up). Windows of ``window`` slots start
at slots that are multiples of ``hop`` (the first one at the first such slot at or after the
stream's first reading), so a restarted daemon that re-reads the same records cuts the same
windows with the same keys (``f"{stream_id}@{slot}"``).

Defined behaviour (``tol`` = ``late_tolerance_s * rate_hz`` slots; "newest" = the newest slot
that received a reading):

* **in order**: a reading goes into its slot.
* **duplicate**: a reading whose slot already holds a finite value in every channel where the
  reading has one is dropped and counted in ``stats.duplicates``. This is not an error
  (at-least-once delivery re-sends records). The first finite value of a (slot, channel)
  wins; a reading may fill channels that are still empty in its slot.
* **late**: a reading for an earlier slot that is at most ``tol`` slots behind the newest and
  that no emitted window contains fills its slot (``stats.late`` counts these).
* **too late**: a reading more than ``tol`` slots behind the newest, or whose slot is part of
  a window already emitted (or already dropped from the buffer), is dropped, counted in
  ``stats.too_late``, and described in the reasons ``push`` returns (at most two lines per
  push, naming the count and time range) for the daemon's dead-letter topic.
* **missing readings and NaN / Inf / null values** are the same thing: empty (slot, channel)
  cells. A run of empty cells in one channel is measured over the whole stream, not just
  the window. When a window is cut, runs of at most ``max_gap`` cells are filled by linear
  interpolation between the finite neighbours (``stats.filled_values``). A longer run, or
  one with no finite value before it (a channel that has not reported yet), splits the
  stream: the windows touching it are not emitted (``stats.skipped_windows`` counts those
  that held any data) and the grid continues after the gap: the next window starts at the
  first multiple of ``hop`` from which the data is complete again.
* **when windows are cut**: a window is emitted once its last slot is more than ``tol``
  slots behind the newest (late readings had their chance), or as soon as all its cells
  are filled (complete data is never delayed). A short run that is still open at the end
  of the data (no finite value after it yet) holds the window back until it closes or
  grows past ``max_gap``.
* **channels**: readings are matched to the buffer's channels by name; missing channels are
  empty cells (then the gap rules apply), extra channels are ignored; readings with none of
  the buffer's channels are rejected with a reason (``stats.no_channels``).
* **emitted windows**: ``Window.data`` float32 (window, channels); ``start`` / ``end`` =
  grid times of the first / last slot; ``start_label`` / ``end_label`` = the time labels of
  the readings in those slots as they appeared in the input (for an interpolated slot:
  its grid time, formatted like the stream's labels); ``sources`` = (min, max) offset per
  (topic, partition) of the records that supplied readings to the window.
* **memory**: slots are dropped as soon as no future window needs them and they are more
  than ``tol`` behind the newest; a jump forward in time does not allocate the gap.
  ``oldest_needed()`` gives, per partition, the smallest offset whose readings are still
  held (the daemon commits below it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from streamad.timelabels import Readings, format_time_like
from streamad.windows.base import TopicPartition, Window

NONE = -(2 ** 62)  # "no slot"


def _ceil_to(x: int, step: int) -> int:
    return -(-x // step) * step


@dataclass
class ReadingBufferStats:
    readings: int = 0  # readings placed (in order or late)
    late: int = 0  # placed readings that arrived after a newer one
    duplicates: int = 0  # dropped: slot already filled
    too_late: int = 0  # dropped: beyond late_tolerance_s or window already emitted
    no_channels: int = 0  # dropped: none of the buffer's channels
    windows: int = 0  # windows emitted
    skipped_windows: int = 0  # windows with data not emitted because of a long gap
    filled_values: int = 0  # cells interpolated in emitted windows


class ReadingStreamBuffer:
    def __init__(self, stream_id: str, channels: list[str], rate_hz: float, window: int, hop: int,
                 late_tolerance_s: float, max_gap: int):
        if not channels:
            raise ValueError("channels must not be empty")
        if not rate_hz > 0 or window < 1 or hop < 1 or late_tolerance_s < 0 or max_gap < 0:
            raise ValueError("need rate_hz > 0, window >= 1, hop >= 1, late_tolerance_s >= 0, max_gap >= 0")
        self.stream_id = stream_id
        self.channels = list(channels)
        self.C = len(self.channels)
        self.rate = float(rate_hz)
        self.win = int(window)
        self.hop = int(hop)
        self.late_tolerance_s = float(late_tolerance_s)
        self.tol = float(late_tolerance_s) * self.rate  # slots
        self.max_gap = int(max_gap)
        self.jump = self.win + self.hop + self.max_gap + int(math.ceil(self.tol)) + 2
        self.vals = np.full((0, self.C), np.nan, dtype=np.float32)
        self.base: int | None = None  # absolute slot of vals[0]
        self.newest: int | None = None
        self.first: int | None = None  # smallest slot placed (decides the first window)
        self.next_start: int | None = None
        self.sealed_lo = NONE  # slots in [sealed_lo, sealed) belong to emitted windows
        self.sealed = NONE
        self.trimmed = False
        self.labels: dict[int, str] = {}
        self.last_label: str | None = None
        self.records: list[tuple[int, int, TopicPartition, int]] = []  # (lo slot, hi slot, tp, offset)
        self.prev_slot = np.full(self.C, NONE, dtype=np.int64)  # last finite slot below base
        self.prev_val = np.full(self.C, np.nan, dtype=np.float32)
        self.stats = ReadingBufferStats()

    # ------------------------------------------------------------------ public
    def push(self, readings: Readings, tp: TopicPartition = ("", 0),
             offset: int = -1) -> tuple[list[Window], list[str]]:
        """Add one record's readings; return (windows ready, rejection reasons)."""
        n = len(readings.times)
        if n == 0:
            return [], []
        x = self._map_channels(readings)
        if x is None:
            self.stats.no_channels += n
            got = ", ".join(readings.channels[:10])
            return [], [f"{self.stream_id}: none of the channels {', '.join(self.channels[:10])} "
                        f"in {n} reading(s) (got: {got or 'none'})"]
        slots = np.floor(np.asarray(readings.times, dtype=np.float64) * self.rate + 0.5).astype(np.int64)
        order = np.argsort(slots, kind="stable")
        slots, x = slots[order], x[order]
        labels = [readings.time_labels[i] for i in order.tolist()]
        first = np.ones(n, dtype=bool)
        first[1:] = slots[1:] != slots[:-1]
        rej: dict[str, list] = {}
        out = self._place(slots[first], x[first], [lab for lab, f in zip(labels, first) if f],
                          self.newest, tp, offset, rej, repeat=False)
        for i in np.flatnonzero(~first).tolist():  # the same slot twice in one record (rare)
            out += self._place(slots[i:i + 1], x[i:i + 1], [labels[i]], self.newest, tp, offset, rej,
                               repeat=True)
        out += self._cut()
        self._trim()
        return out, self._reasons(rej)

    def oldest_needed(self) -> dict[TopicPartition, int]:
        """Smallest offset per partition whose readings the buffer still holds."""
        out: dict[TopicPartition, int] = {}
        base = self.base if self.base is not None else NONE
        for _lo, hi, tp, off in self.records:
            if hi >= base and off >= 0 and (tp not in out or off < out[tp]):
                out[tp] = off
        return out

    @property
    def held_slots(self) -> int:
        """Slots currently allocated (for memory checks)."""
        return len(self.vals)

    # ------------------------------------------------------------------ placing
    def _map_channels(self, r: Readings) -> np.ndarray | None:
        v = np.asarray(r.values, dtype=np.float32)
        if v.ndim == 1:
            v = v[:, None]
        if list(r.channels) == self.channels:
            x = v.copy()
        else:
            pos = {c: i for i, c in enumerate(r.channels)}
            if not any(c in pos for c in self.channels):
                return None
            x = np.full((v.shape[0], self.C), np.nan, dtype=np.float32)
            for j, c in enumerate(self.channels):
                if c in pos:
                    x[:, j] = v[:, pos[c]]
        x[~np.isfinite(x)] = np.nan
        return x

    def _place(self, slots: np.ndarray, x: np.ndarray, labels: list[str], ref_newest: int | None,
               tp: TopicPartition, offset: int, rej: dict[str, list], repeat: bool) -> list[Window]:
        n = len(slots)
        status = np.zeros(n, dtype=np.int8)  # 0 place, 1 duplicate, 2 beyond tolerance, 3 sealed
        if self.base is not None and self.newest is not None:
            inbuf = (slots >= self.base) & (slots <= self.newest)
            if inbuf.any():
                cur = self.vals[slots[inbuf] - self.base]
                curfin = np.isfinite(cur)
                newfin = np.isfinite(x[inbuf])
                dup = curfin.any(axis=1) & ~(newfin & ~curfin).any(axis=1)
                status[np.flatnonzero(inbuf)[dup]] = 1
            if repeat:  # an earlier reading of this record had this slot and it has left the buffer
                status[(status == 0) & (slots < self.base)] = 1
        if ref_newest is not None:
            status[(status == 0) & (ref_newest - slots > self.tol)] = 2
        status[(status == 0) & (slots >= self.sealed_lo) & (slots < self.sealed)] = 3
        if self.trimmed and self.base is not None:
            status[(status == 0) & (slots < self.base)] = 3
        self.stats.duplicates += int((status == 1).sum())
        for code in (2, 3):
            bad = np.flatnonzero(status == code)
            if len(bad):
                self.stats.too_late += len(bad)
                r = rej.setdefault("tol" if code == 2 else "sealed", [0, None, None, None])
                r[0] += len(bad)
                r[1] = r[1] if r[1] is not None else labels[bad[0]]
                r[2] = labels[bad[-1]]
                r[3] = ref_newest
        ok = np.flatnonzero(status == 0)
        if not len(ok):
            return []
        slots, x = slots[ok], x[ok]
        labels = [labels[i] for i in ok.tolist()]
        if offset >= 0:
            self.records.append((int(slots[0]), int(slots[-1]), tp, offset))
        out: list[Window] = []
        cuts = np.flatnonzero(np.diff(slots) > self.jump) + 1
        bounds = [0, *cuts.tolist(), len(slots)]
        for a, b in zip(bounds[:-1], bounds[1:]):
            s0 = int(slots[a])
            if self.newest is not None and s0 - self.newest > self.jump:
                # far jump forward: settle everything before it without allocating the gap
                out += self._cut(virtual=s0)
                self._trim(virtual=s0)
            self._write(slots[a:b], x[a:b], labels[a:b], ref_newest)
        return out

    def _write(self, slots: np.ndarray, x: np.ndarray, labels: list[str], ref_newest: int | None) -> None:
        lo, hi = int(slots[0]), int(slots[-1])
        if self.base is None:
            self.base = lo
        if lo < self.base:  # late reading before the first one (nothing trimmed yet)
            pad = np.full((self.base - lo, self.C), np.nan, dtype=np.float32)
            self.vals = np.concatenate([pad, self.vals])
            self.base = lo
        need = hi - self.base + 1
        if need > len(self.vals):
            cap = max(need, 2 * len(self.vals), 64)
            new = np.full((cap, self.C), np.nan, dtype=np.float32)
            new[:len(self.vals)] = self.vals
            self.vals = new
        idx = slots - self.base
        cur = self.vals[idx]
        self.vals[idx] = np.where(np.isnan(cur), x, cur)
        for s, lab in zip(slots.tolist(), labels):
            self.labels.setdefault(s, lab)
        if ref_newest is not None:
            self.stats.late += int((slots < ref_newest).sum())
        self.stats.readings += len(slots)
        if self.newest is None or hi >= self.newest:
            self.newest = hi
            self.last_label = labels[-1]
        if self.next_start is None:
            self.first = lo if self.first is None else min(self.first, lo)

    # ------------------------------------------------------------------ cutting
    def _block(self, s: int, last: int) -> np.ndarray:
        assert self.base is not None
        i0, i1 = s - self.base, last - self.base + 1
        out = np.full((last - s + 1, self.C), np.nan, dtype=np.float32)
        lo, hi = max(i0, 0), min(i1, len(self.vals))
        if hi > lo:
            out[lo - i0:hi - i0] = self.vals[lo:hi]
        return out

    def _left(self, c: int, slot: int) -> tuple[int, float]:
        """Last finite (slot, value) of channel c before ``slot``."""
        assert self.base is not None
        i = min(slot - self.base, len(self.vals))
        if i > 0:
            f = np.flatnonzero(np.isfinite(self.vals[:i, c]))
            if len(f):
                return self.base + int(f[-1]), float(self.vals[f[-1], c])
        return int(self.prev_slot[c]), float(self.prev_val[c])

    def _right(self, c: int, slot: int, known_end: int) -> tuple[int, float] | None:
        """First finite (slot, value) of channel c after ``slot`` up to ``known_end``."""
        assert self.base is not None and self.newest is not None
        i0 = slot + 1 - self.base
        i1 = min(known_end, self.newest) - self.base + 1
        if i1 > i0:
            f = np.flatnonzero(np.isfinite(self.vals[i0:i1, c]))
            if len(f):
                return slot + 1 + int(f[0]), float(self.vals[i0 + f[0], c])
        return None

    def _first_not_due(self, newest: int) -> int:
        # window s is due when newest - (s + win - 1) > tol
        return _ceil_to(int(math.ceil(newest - self.tol - self.win + 1)), self.hop)

    def _cut(self, virtual: int | None = None) -> list[Window]:
        out: list[Window] = []
        if self.newest is None or self.base is None:
            return out
        newest = self.newest if virtual is None else virtual
        known_end = self.newest if virtual is None else virtual - 1  # cells after it are unknown
        while True:
            if self.next_start is not None:
                s = self.next_start
            elif self.first is not None:
                s = _ceil_to(self.first, self.hop)
            else:
                break
            last = s + self.win - 1
            due = newest - last > self.tol
            if not due:
                if last <= self.newest:
                    block = self._block(s, last)
                    if np.isfinite(block).all():
                        out.append(self._emit(s, last, block, 0))
                        continue
                break
            block = self._block(s, last)
            fin = np.isfinite(block)
            if fin.all():
                out.append(self._emit(s, last, block, 0))
                continue
            target, pending, filled = self._gaps(s, block, fin, newest, known_end)
            if target is not None:
                nxt = max(s + self.hop, min(target, self._first_not_due(newest)))
                self.stats.skipped_windows += self._windows_with_data(s, nxt)
                self.next_start = nxt
                continue
            if pending:
                break
            out.append(self._emit(s, last, block, filled))
        return out

    def _gaps(self, s: int, block: np.ndarray, fin: np.ndarray, newest: int,
              known_end: int) -> tuple[int | None, bool, int]:
        """Fill short runs in ``block`` in place.

        Returns (skip target or None, pending, cells filled). The skip target is the first
        grid slot at or after the end of the longest-reaching long run touching the window.
        """
        target: int | None = None
        pending = False
        filled = 0
        w = len(block)
        for c in np.flatnonzero(~fin.all(axis=0)).tolist():
            miss = (~fin[:, c]).astype(np.int8)
            d = np.diff(np.concatenate([[0], miss, [0]]))
            for a, b in zip(np.flatnonzero(d == 1).tolist(), (np.flatnonzero(d == -1) - 1).tolist()):
                A, B = s + a, s + b
                if a > 0:
                    L, vL = A - 1, float(block[a - 1, c])
                else:
                    L, vL = self._left(c, A)
                if b < w - 1:
                    right: tuple[int, float] | None = (B + 1, float(block[b + 1, c]))
                else:
                    right = self._right(c, B, known_end)
                if right is None:  # run still open at the end of the known data
                    if L == NONE or known_end - L > self.max_gap:
                        t = self._first_not_due(newest)
                        target = t if target is None else max(target, t)
                    else:
                        pending = True
                    continue
                R, vR = right
                if L == NONE or R - L - 1 > self.max_gap:
                    t = _ceil_to(R, self.hop)
                    target = t if target is None else max(target, t)
                    continue
                pos = np.arange(A, B + 1, dtype=np.float64)
                block[a:b + 1, c] = vL + (vR - vL) * (pos - L) / (R - L)
                filled += b - a + 1
        return target, pending, filled

    def _windows_with_data(self, s: int, nxt: int) -> int:
        """How many grid windows starting in [s, nxt) hold any finite cell."""
        assert self.base is not None and self.newest is not None
        data_end = min(self.newest, self.base + len(self.vals) - 1)  # no data after this slot
        starts = np.arange(s, min(nxt, data_end + 1), self.hop, dtype=np.int64)
        if not len(starts):
            return 0
        i0 = s - self.base
        i1 = min(int(starts[-1]) + self.win - 1, data_end) - self.base + 1
        anyf = np.isfinite(self.vals[i0:i1]).any(axis=1)
        cs = np.concatenate([[0], np.cumsum(anyf)])
        a = np.clip(starts - s, 0, len(anyf))
        b = np.clip(starts - s + self.win, 0, len(anyf))
        return int(((cs[b] - cs[a]) > 0).sum())

    def _label(self, slot: int) -> str:
        lab = self.labels.get(slot)
        i = slot - (self.base or 0)
        if lab is not None and 0 <= i < len(self.vals) and np.isfinite(self.vals[i]).any():
            return lab
        return format_time_like(slot / self.rate, self.last_label)

    def _emit(self, s: int, last: int, block: np.ndarray, filled: int) -> Window:
        sources: dict[TopicPartition, tuple[int, int]] = {}
        for lo, hi, tp, off in self.records:
            if lo <= last and hi >= s and off >= 0:
                a, b = sources.get(tp, (off, off))
                sources[tp] = (min(a, off), max(b, off))
        win = Window(self.stream_id, s / self.rate, last / self.rate, block.astype(np.float32, copy=False),
                     sources, start_label=self._label(s), end_label=self._label(last),
                     key=f"{self.stream_id}@{s}")
        if self.sealed_lo == NONE:
            self.sealed_lo = s
        self.sealed = max(self.sealed, last + 1)
        self.next_start = s + self.hop
        self.stats.windows += 1
        self.stats.filled_values += filled
        return win

    # ------------------------------------------------------------------ memory
    def _trim(self, virtual: int | None = None) -> None:
        if self.next_start is None or self.base is None or self.newest is None:
            return
        newest = self.newest if virtual is None else virtual
        T = min(self.next_start, int(math.ceil(newest - self.tol)))
        k = T - self.base
        if k <= 0:
            return
        m = min(k, len(self.vals), self.newest - self.base + 1)
        if m > 0:
            fin = np.isfinite(self.vals[:m])
            has = fin.any(axis=0)
            lastidx = m - 1 - np.argmax(fin[::-1], axis=0)
            for c in np.flatnonzero(has).tolist():
                self.prev_slot[c] = self.base + int(lastidx[c])
                self.prev_val[c] = self.vals[lastidx[c], c]
        self.vals = self.vals[k:] if k < len(self.vals) else np.full((0, self.C), np.nan, dtype=np.float32)
        if k <= len(self.labels):
            for s in range(self.base, T):
                self.labels.pop(s, None)
        else:
            self.labels = {s: v for s, v in self.labels.items() if s >= T}
        self.base = T
        self.trimmed = True
        self.records = [r for r in self.records if r[1] >= T]

    # ------------------------------------------------------------------ reasons
    def _reasons(self, rej: dict[str, list]) -> list[str]:
        out = []
        for kind, (n, first, last, ref) in rej.items():
            span = first if n == 1 else f"{first} .. {last}"
            if kind == "tol":
                newest = self.labels.get(ref) if ref is not None else None
                newest = newest or (format_time_like(ref / self.rate, self.last_label) if ref is not None else "?")
                out.append(f"{self.stream_id}: {n} reading(s) too late ({span}): more than "
                           f"{self.late_tolerance_s:g} s behind the newest reading ({newest})")
            else:
                out.append(f"{self.stream_id}: {n} reading(s) too late ({span}): "
                           f"their slots belong to windows already emitted")
        return out
