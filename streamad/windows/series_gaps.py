"""Gap rules of the reading buffer: short runs of missing cells are interpolated, long ones
split the stream (see :mod:`streamad.windows.series_buffer` for the rules).

A mixin of :class:`~streamad.windows.series_buffer.ReadingStreamBuffer`: it reads the
buffer's grid state (``base``, ``vals``, ``newest``, ``prev_slot``/``prev_val``, ``win``,
``hop``, ``tol``, ``max_gap``).
"""
from __future__ import annotations

import math

import numpy as np

NONE = -(2 ** 62)  # "no slot"


def ceil_to(x: int, step: int) -> int:
    return -(-x // step) * step


class GapRules:
    def _first_not_due(self, newest: int) -> int:
        # window s is due when newest - (s + win - 1) > tol
        return ceil_to(int(math.ceil(newest - self.tol - self.win + 1)), self.hop)

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
                    t = ceil_to(R, self.hop)
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
