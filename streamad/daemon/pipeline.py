"""One config's pipeline: decode -> per-stream buffer -> batched scoring -> alert rule.

Streams are keyed by (topic, partition, stream id), so a stream moved by a rebalance never
mixes with another partition's buffer. Per stream the pipeline keeps the window buffer, the
live alert rule and the offsets a faithful replay needs (:meth:`Pipeline.needed_offsets`):
those whose samples a future window still uses, those of the last n-1 windows (the k-of-n
context) and, while an event is open, those of its opening window and its context — so a
daemon restarted from the last commit re-creates the same windows, decisions and alert ids.

Stream lifetime (README "Time rules, limits and exit codes"). Each partition has a *stream
clock*: the newest capture time any of its streams has accepted. A stream's silence is how far
that clock has moved since the stream's last record (stream time: a re-read after a restart
sees the same silences), or, when its partition is silent too, wall time.

* **hold bound**: a stream silent for more than ``worker.max_hold_s`` no longer holds its
  partition's commit back (its partial window survives in memory, but not a crash), and an open
  event stops holding its opening window once it is ``max_hold_s`` old.
* **idle**: a stream silent for ``worker.idle_stream_s`` of stream time (and at least
  ``max_hold_s`` of wall time), or of wall time, is forgotten (evicted).
* **the clock resists forged timestamps**: a stream moves its partition's clock only once it has
  accepted two records (a lone record of a new key stamped years ahead does not), and the wall-time
  guard above keeps a forged clock from evicting streams that are still sending.
* **limit**: at most ``worker.max_streams`` streams; a new stream beyond it evicts the least
  recently seen one (logged, counted).
* **size**: a record larger than ``worker.max_record_bytes`` is dead-lettered before decoding.
* **scores**: a non-finite window score is counted and logged and does not enter the rule.
"""
from __future__ import annotations

import logging
import math
import time
from collections import Counter, deque
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from streamad.alerts import AlertRule, LiveRule, alert_record, closed_record
from streamad.daemon.drift import Drift
from streamad.evidence import EvidenceRecorder
from streamad.config import Config, ConfigError
from streamad.io.codecs import PayloadError
from streamad.kinds import kind_of
from streamad.model import AnomalyModel
from streamad.windows.base import Window

log = logging.getLogger("streamad.daemon")

StreamKey = tuple[tuple[str, int], str]  # ((topic, partition), stream id)
TALLIES = ("duplicates", "dropped", "nonfinite", "evicted", "steps_back")
_CLOCK_AFTER = 2  # records a stream must have accepted before it moves its partition's clock


def _min_offsets(*sources: dict) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for src in sources:
        for tp, off in src.items():
            off = off[0] if isinstance(off, tuple) else off
            out[tp] = min(off, out.get(tp, off))
    return out


@dataclass
class StreamState:
    buffer: Any
    rule: LiveRule
    drift: Drift
    last_seen: float = field(default_factory=time.monotonic)  # wall (monotonic) time of its last record
    clock_seen: float = -math.inf  # its partition's stream clock at its last record
    accepted: int = 0  # records whose samples / readings its buffer placed
    context: deque = field(default_factory=deque)  # sources of the last n-1 windows
    hold: dict = field(default_factory=dict)  # offsets an open event needs for a faithful replay
    alert: dict | None = None  # the alert of the open event (its closed record pairs with it)

    def needed(self) -> dict[tuple[str, int], int]:
        return _min_offsets(self.buffer.oldest_needed(), self.hold, *self.context)


class _Every:
    """At most one log line per ``period_s`` for a recurring condition, with the count since the last."""

    def __init__(self, period_s: float = 10.0):
        self.period_s, self.last, self.count = period_s, -math.inf, 0

    def __call__(self, n: int = 1) -> int:
        self.count += n
        if time.monotonic() - self.last < self.period_s:
            return 0
        self.last, n, self.count = time.monotonic(), self.count, 0
        return n


class Pipeline:
    """Everything specific to one config: its model, kind, rule and streams."""

    def __init__(self, name: str, cfg: Config, model: AnomalyModel):
        if model.cfg.kind != cfg.kind:
            raise ConfigError(f"kind: config is {cfg.kind!r} but model {model.source or cfg.model.path} is "
                              f"{model.cfg.kind!r}")
        self.name, self.cfg, self.model = name, cfg, model
        self.label = Path(name).stem or name  # the `pipeline` label of its metrics (config file stem)
        self.kind = kind_of(cfg)
        self.rule = AlertRule.for_model(model, cfg.alerts.cooldown_s)
        self.streams: dict[StreamKey, StreamState] = {}  # least recently seen first
        self.clocks: dict[tuple[str, int], float] = {}  # stream clock per partition
        self.tally: Counter = Counter()  # since the last drain_tally(): TALLIES
        self._log_cap, self._log_nonfinite = _Every(), _Every()
        cal = model.calibration
        self.normal_mean = float((cal.holdout or {}).get("mean", 0.0)) if cal is not None else 0.0
        a = cfg.alerts
        self.evidence = EvidenceRecorder(a.evidence_dir, model, self.kind.name == "audio", a.evidence_pre_s,
                                         a.evidence_post_s, a.evidence_max_s) if a.evidence_dir else None

    # -- records -> windows ----------------------------------------------------------
    def accept(self, record: Any, tp: tuple[str, int]) -> tuple[list[tuple[StreamKey, Window]], list]:
        """Decode one record into its stream's buffer: (complete windows, rejections). A rejection is
        a reason (about this record) or a (record, reason) pair about an earlier record of its stream.

        Raises PayloadError for a record that cannot be used."""
        size = len(record.value) if record.value is not None else 0
        if size > self.cfg.worker.max_record_bytes:
            raise PayloadError(f"record of {size} bytes exceeds worker.max_record_bytes "
                               f"({self.cfg.worker.max_record_bytes})")
        payload = self.kind.decode(record, self.model)
        key = (tp, payload.stream_id)
        st = self.streams.pop(key, None)
        if st is None:
            self._make_room()
            st = StreamState(self.kind.new_buffer(self.cfg, self.model, payload.stream_id), self.rule.live(),
                             Drift(self.cfg.alerts.drift_halflife_s))
        self.streams[key] = st  # most recently seen last
        if self.evidence is not None and self.kind.name == "audio":
            self.evidence.samples(key, payload.timestamp, payload.samples)
        before = self.kind.tallies(st.buffer)
        windows, rejects = self.kind.push(st.buffer, payload, tp, record.offset, record)
        self._count(st, payload.stream_id, before)
        newest = self.kind.newest(st.buffer)
        if newest is not None and st.accepted >= _CLOCK_AFTER and newest > self.clocks.get(tp, -math.inf):
            self.clocks[tp] = newest
        st.clock_seen, st.last_seen = self.clocks.get(tp, -math.inf), time.monotonic()
        return [(key, w) for w in windows], list(rejects) + self.kind.rejected(st.buffer)

    def _count(self, st: StreamState, sid: str, before: dict[str, int]) -> None:
        after = self.kind.tallies(st.buffer)
        st.accepted += int(after["accepted"] > before["accepted"])  # records that placed anything
        for k in ("duplicates", "dropped", "steps_back"):
            self.tally[k] += after[k] - before[k]
        if after["steps_back"] > before["steps_back"]:
            log.warning("stream %r: its clock stepped back to %.3f; a new segment starts there", sid[:64],
                        self.kind.newest(st.buffer) or 0.0)

    def _make_room(self) -> None:
        over = len(self.streams) - self.cfg.worker.max_streams + 1
        if over <= 0:
            return
        for key in list(self.streams)[:over]:
            self._forget(key)
        n = self._log_cap(over)
        if n:
            log.warning("stream limit worker.max_streams=%d reached: evicted %d least recently seen stream(s)",
                        self.cfg.worker.max_streams, n)

    def _forget(self, key: StreamKey, count: bool = True) -> None:
        st = self.streams.pop(key)
        if self.evidence is not None:
            self.evidence.forget(key)
        self.tally["evicted"] += int(count)
        self.tally["dropped"] += self.kind.held(st.buffer)

    def swap_model(self, model: AnomalyModel) -> None:
        """A new model takes over at a window boundary (``reload.py``): buffers stay, rules start afresh."""
        self.model = model
        self.rule = AlertRule.for_model(model, self.cfg.alerts.cooldown_s)
        cal = model.calibration
        self.normal_mean = float((cal.holdout or {}).get("mean", 0.0)) if cal is not None else 0.0
        if self.evidence is not None:
            self.evidence.model = model
        for st in self.streams.values():
            st.rule, st.hold, st.alert = self.rule.live(), {}, None
            st.context.clear()

    # -- windows -> scores -> alerts -------------------------------------------------
    def score(self, windows: list[Window], scorer: Any = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Scores of windows (called by the scoring worker's thread: no pipeline state is touched);
        ``scorer``: ``ProcessScorer.score`` (``worker.scorer: process``) instead of this thread."""
        w = self.cfg.worker
        if scorer is not None:
            return scorer(self.label, self.model, windows, w.max_batch, w.precision)
        return self.model.score_windows(windows, w.max_batch, w.precision)

    def _count_nonfinite(self, items: list[tuple[StreamKey, Window]], scores: np.ndarray) -> None:
        bad = np.flatnonzero(~np.isfinite(np.asarray(scores, dtype=np.float64)))
        if len(bad):
            self.tally["nonfinite"] += len(bad)
            n = self._log_nonfinite(len(bad))
            if n:
                log.error("%d window(s) scored NaN/inf (not alerted on), e.g. %s", n, items[int(bad[0])][1].key[:80])

    def decide(self, items: list[tuple[StreamKey, Window]], scores: np.ndarray,
               comps: dict[str, np.ndarray]) -> list[dict]:
        """Apply the alert rule per stream, in window order: the records to publish (alerts of
        opened events, closed records of ended ones)."""
        out: list[dict] = []
        a = self.cfg.alerts
        max_hold = self.cfg.worker.max_hold_s
        self._count_nonfinite(items, scores)
        for i, (key, w) in enumerate(items):
            st = self.streams.get(key)
            if st is None:  # the stream was dropped (rebalance, eviction) while its windows were scored
                continue
            score = float(scores[i])
            if a.adapt_threshold:
                st.rule.offset = st.drift.offset(self.normal_mean, a.adapt_warmup_s, a.adapt_max_offset)
            step = st.rule.update(w.start, w.end, score)
            if math.isfinite(score):
                st.drift.update(w.end, min(score, self.rule.threshold + a.adapt_max_offset))  # spikes clipped
            if step.closed is not None:
                out.extend(self._closed(key, st, step.closed))
            if st.rule.event is None:
                st.hold = {}
            elif st.hold and w.end - st.rule.event.start > max_hold:
                st.hold = {}  # a long event stops holding its opening window (bounded re-reads)
            if step.opened is not None:
                st.hold = _min_offsets(w.sources, *st.context)
                st.alert = alert_record(w, score, self.rule.threshold + st.rule.offset, self.model.name,
                                        self.model.version, {k: float(v[i]) for k, v in comps.items()})
                if self.evidence is not None:
                    self.evidence.alert(key, st.alert, w)
                out.append(st.alert)
            if self.rule.of_windows > 1:
                st.context.append(w.sources)
                while len(st.context) > self.rule.of_windows - 1:
                    st.context.popleft()
        if self.evidence is not None:
            self.evidence.settle()
        return out

    def _closed(self, key: StreamKey, st: StreamState, event) -> list[dict]:
        alert, st.alert = st.alert, None
        if alert is None:  # opened before a restart: the replay re-creates it from the hold
            return []
        if self.evidence is not None:
            self.evidence.closed(key, alert, event)
        return [closed_record(alert, event)]

    # -- offsets and stream lifetime -------------------------------------------------
    def silence(self, key: StreamKey, st: StreamState) -> float:
        """Stream time since the stream's last record (how far its partition's clock has moved)."""
        return self.clocks.get(key[0], -math.inf) - st.clock_seen

    def needed_offsets(self) -> dict[tuple[str, int], int]:
        max_hold = self.cfg.worker.max_hold_s
        return _min_offsets(*(st.needed() for k, st in self.streams.items() if self.silence(k, st) <= max_hold))

    def drop(self, pred: Callable[[StreamKey, StreamState], bool], close: bool = True) -> list[dict]:
        """Forget the streams ``pred`` selects; with ``close``, the closed records of their open
        events (not on a rebalance: the partition's new owner replays and closes them)."""
        closed = []
        for k in [k for k, st in self.streams.items() if pred(k, st)]:
            st = self.streams.pop(k)
            if close and st.rule.event is not None:
                closed.extend(self._closed(k, st, st.rule.event))
            if self.evidence is not None:
                self.evidence.forget(k)
        live = {k[0] for k in self.streams}
        for tp in [tp for tp in self.clocks if tp not in live]:
            del self.clocks[tp]
        return closed

    def evict_idle(self, idle_s: float, now: float | None = None) -> tuple[int, list[dict]]:
        """Forget streams silent for ``idle_s`` (stream time with a wall-time guard, or wall time):
        (how many, the closed records of their open events). Their held samples count as dropped."""
        now = time.monotonic() if now is None else now
        wall_min = min(idle_s, self.cfg.worker.max_hold_s)

        def idle(k: StreamKey, st: StreamState) -> bool:
            return now - st.last_seen > idle_s or (self.silence(k, st) > idle_s and now - st.last_seen > wall_min)

        gone = {k for k, st in self.streams.items() if idle(k, st)}
        for k in gone:
            self.tally["dropped"] += self.kind.held(self.streams[k].buffer)
        return len(gone), self.drop(lambda k, _st: k in gone) if gone else []

    def drifts(self) -> dict[str, float]:
        """Per stream id: its normal-score drift (see streamad.daemon.drift)."""
        out = {}
        for (_tp, sid), st in self.streams.items():
            d = st.drift.drift(self.normal_mean)
            if d is not None:
                out[sid] = d
        return out

    def drain_tally(self) -> dict[str, int]:
        """Counts since the last call (duplicates, dropped samples, non-finite scores, limit evictions)."""
        out = {k: int(self.tally.get(k, 0)) for k in TALLIES}
        self.tally.clear()
        return out
