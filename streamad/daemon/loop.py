"""The long-lived daemon: Kafka in -> windows -> scores -> alerts -> Kafka out.

One process runs one or more *pipelines* (one per config: audio, sensor,
heart-rate), all on one consumer and one scoring worker. For every poll:

1. decode each record (bad ones go to the dead-letter topic with the reason in
   the ``dlq_reason`` header; the daemon goes on);
2. push samples/readings into the per-(partition, stream) buffer, collect the
   windows that are complete;
3. score all windows of a pipeline in one batched pass on the device;
4. apply the alert policy and produce alerts;
5. flush the producer and check every acknowledgement, then commit for each
   partition the oldest offset whose data a future window still needs.

So an offset is committed only after every alert for the records before it was
acknowledged (at-least-once); after a crash the daemon re-reads from there and
re-creates the same windows (absolute time grid) and alert ids.
"""
from __future__ import annotations

import json
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from kafka import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata, TopicPartition

from streamad.alerts import AlertPolicy
from streamad.config import Config, ConfigError
from streamad.io import kafka as kio
from streamad.io.codecs import PayloadError, decode_audio, encode_alert
from streamad.pipeline import AnomalyModel
from streamad.windows.buffers import AudioStreamBuffer, Window
from streamad.worker import Worker

log = logging.getLogger("streamad.daemon")


class DeliveryError(RuntimeError):
    pass


@dataclass
class Counters:
    records: int = 0
    windows: int = 0
    alerts: int = 0
    dead_letters: int = 0
    commits: int = 0
    evicted_streams: int = 0


@dataclass(eq=False)
class Pipeline:
    """Everything specific to one config: decoding, buffers, model, alert policy."""

    cfg: Config
    model: AnomalyModel
    policy: AlertPolicy
    buffers: dict[tuple, Any] = field(default_factory=dict)  # ((topic, partition), stream) -> buffer
    last_seen: dict[tuple, float] = field(default_factory=dict)

    @classmethod
    def build(cls, cfg: Config, model: AnomalyModel) -> "Pipeline":
        if model.cfg.kind != cfg.kind:
            raise ConfigError(f"kind: config is {cfg.kind!r} but model {cfg.model.path} is {model.cfg.kind!r}")
        a = cfg.alerts
        cal = model.calibration
        policy = AlertPolicy(model.threshold, cal.min_windows if cal else a.min_windows,
                             cal.of_windows if cal else a.of_windows, a.cooldown_s, model.name, model.version)
        return cls(cfg, model, policy)

    def push(self, rec: Any, tp: tuple[str, int]) -> tuple[list[Window], list[str]]:
        """Decode one record into its stream buffer; (new windows, rejection reasons). Raises PayloadError."""
        if self.cfg.kind == "audio":
            chunk = decode_audio(rec.key, rec.value, rec.headers)
            sr = self.model.frontend.sr
            if chunk.sample_rate != sr:
                raise PayloadError(f"sample_rate {chunk.sample_rate} does not match the model's {sr}")
            buf = self._buffer(tp, chunk.stream_id)
            return buf.push(chunk.samples, chunk.timestamp, tp, rec.offset), []
        from streamad.io.readings import decode_readings

        channels = self.model.cfg.series.channels
        r = decode_readings(rec.key, rec.value, rec.headers, channels)
        buf = self._buffer(tp, r.stream_id)
        return buf.push(r, tp, rec.offset)

    def _buffer(self, tp: tuple[str, int], stream: str):
        k = (tp, stream)
        self.last_seen[k] = time.monotonic()
        if k not in self.buffers:
            if self.cfg.kind == "audio":
                fe = self.model.frontend
                tol = int(round(self.cfg.audio.gap_tolerance_s * fe.sr))
                self.buffers[k] = AudioStreamBuffer(stream, fe.sr, fe.window, fe.hop, tol)
            else:
                from streamad.windows.readings import ReadingStreamBuffer

                s, fe = self.cfg.series, self.model.frontend
                self.buffers[k] = ReadingStreamBuffer(stream, self.model.cfg.series.channels, fe.rate, fe.window,
                                                      fe.hop, s.late_tolerance_s, s.max_gap)
        return self.buffers[k]

    def drop(self, pred: Callable[[tuple], bool]) -> int:
        gone = [k for k in self.buffers if pred(k)]
        for k in gone:
            self.buffers.pop(k, None)
            self.last_seen.pop(k, None)
            self.policy.forget(_stream_key(k))
        return len(gone)


def _stream_key(k: tuple) -> str:
    (topic, part), stream = k
    return f"{topic}/{part}/{stream}"


class Daemon:
    def __init__(self, pipelines: dict[str, Pipeline], bootstrap: str, kcfg, worker: Worker,
                 idle_stream_s: float = 300.0, stats_every_s: float = 30.0):
        self.routes = {}
        for topic_owner in pipelines.values():
            for t in topic_owner.cfg.kafka.input_topics:
                if t in self.routes:
                    raise ConfigError(f"kafka.input_topics: topic {t!r} is used by two configs")
                self.routes[t] = topic_owner
        self.kcfg = kcfg
        self.bootstrap = bootstrap
        self.worker = worker
        self.idle_stream_s = idle_stream_s
        self.stats_every_s = stats_every_s
        self.counters = Counters()
        self.stopping = False
        self.consumed: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}
        self.rewind: dict[TopicPartition, int] = {}
        self.consumer = None
        self.producer = None
        self.on_alert: Callable[[dict], None] | None = None
        self.score_log = None  # optional text file: one JSON line per scored window (audit trail)

    # -- lifecycle ----------------------------------------------------------------
    def request_stop(self, *_: Any) -> None:
        self.stopping = True

    def run(self, max_seconds: float | None = None) -> int:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        self.producer = kio.producer(self.kcfg, self.bootstrap)
        self.consumer = kio.consumer(self.kcfg, self.bootstrap)
        self.consumer.subscribe(list(self.routes), listener=_Rebalance(self))
        log.info("subscribed to %s on %s (group %s)", ", ".join(self.routes), self.bootstrap, self.kcfg.group_id)
        t_end = time.monotonic() + max_seconds if max_seconds else None
        last_stats = time.monotonic()
        try:
            while not self.stopping:
                batches = self.consumer.poll(timeout_ms=self.kcfg.poll_timeout_ms)
                if batches:
                    self.process(batches)
                    self.commit()
                self.evict_idle()
                if time.monotonic() - last_stats > self.stats_every_s:
                    last_stats = time.monotonic()
                    log.info("stats %s", json.dumps(self.stats()))
                if t_end and time.monotonic() > t_end:
                    break
            self.commit()
            log.info("stopped cleanly; %s", json.dumps(self.stats()))
            return 0
        finally:
            try:
                self.producer.flush(timeout=10)
            finally:
                self.consumer.close(autocommit=False)
                self.producer.close(timeout=5)

    def stats(self) -> dict[str, Any]:
        d = dict(self.counters.__dict__)
        d["scored_windows"] = self.worker.stats.windows
        d["scoring_s"] = round(self.worker.stats.seconds, 3)
        d["streams"] = sum(len(p.buffers) for p in set(self.routes.values()))
        return d

    # -- the work -----------------------------------------------------------------
    def process(self, batches: dict[TopicPartition, list]) -> None:
        futures = []
        pending: dict[int, tuple[Pipeline, list[tuple[tuple, Window]]]] = {}
        for tp, records in batches.items():
            pipe = self.routes[tp.topic]
            tpk = (tp.topic, tp.partition)
            for rec in records:
                self.counters.records += 1
                self.consumed[tp] = rec.offset + 1
                try:
                    windows, rejects = pipe.push(rec, tpk)
                except PayloadError as e:
                    futures.append(self.dead_letter(pipe, rec, str(e)))
                    continue
                except Exception as e:  # a poison record must not stop the daemon
                    log.exception("unexpected error on %s/%d@%d", rec.topic, rec.partition, rec.offset)
                    futures.append(self.dead_letter(pipe, rec, f"unprocessable record ({type(e).__name__}: "
                                                               f"{str(e).splitlines()[0][:200] if str(e) else ''})"))
                    continue
                if rejects:
                    futures.append(self.dead_letter(pipe, rec, "; ".join(rejects)[:500]))
                if windows:
                    stream = windows[0].stream_id
                    bucket = pending.setdefault(id(pipe), (pipe, []))[1]
                    bucket.extend(((tpk, stream), w) for w in windows)
        for pipe, items in pending.values():
            scores, comps = self.worker.score(pipe.model, [w for _, w in items])
            self.counters.windows += len(items)
            for i, (bk, w) in enumerate(items):
                c = {k: float(v[i]) for k, v in comps.items()}
                if self.score_log is not None:
                    self.score_log.write(json.dumps({"key": w.key, "stream_id": w.stream_id, "start": w.start,
                                                     "end": w.end, "score": float(scores[i])}) + "\n")
                alert = pipe.policy.update(_stream_key(bk), w, float(scores[i]), c)
                if alert is not None:
                    key, value = encode_alert(alert)
                    futures.append(self.producer.send(pipe.cfg.kafka.alert_topic, key=key, value=value))
                    self.counters.alerts += 1
                    if self.on_alert:
                        self.on_alert(alert)
        if self.score_log is not None:
            self.score_log.flush()
        if futures:
            self.producer.flush(timeout=30)
            for f in futures:
                try:
                    f.get(timeout=30)
                except Exception as e:  # broker refused or timed out: do not commit past this
                    raise DeliveryError(f"alert/dead-letter delivery failed: {e}") from e

    def dead_letter(self, pipe: Pipeline, rec: Any, reason: str):
        self.counters.dead_letters += 1
        log.warning("dead-letter %s/%d@%d: %s", rec.topic, rec.partition, rec.offset, reason)
        headers = list(rec.headers or []) + [
            ("dlq_reason", reason.encode("utf-8", "replace")),
            ("dlq_source", f"{rec.topic}/{rec.partition}/{rec.offset}".encode()),
        ]
        return self.producer.send(pipe.cfg.kafka.dead_letter_topic, key=rec.key, value=rec.value, headers=headers)

    def safe_offsets(self, tps=None) -> dict[TopicPartition, int]:
        """Per partition: the oldest offset a buffer or an open alert event still needs."""
        needed: dict[tuple[str, int], int] = {}
        for pipe in set(self.routes.values()):
            sources = [pipe.policy.held_offsets()] + [buf.oldest_needed() for buf in pipe.buffers.values()]
            for src in sources:
                for tpk, off in src.items():
                    needed[tpk] = min(off, needed.get(tpk, off))
        out = {}
        for tp, consumed in self.consumed.items():
            if tps is None or tp in tps:
                out[tp] = min(consumed, needed.get((tp.topic, tp.partition), consumed))
        return out

    def commit(self, tps=None) -> None:
        offsets = {tp: OffsetAndMetadata(o, "", -1) for tp, o in self.safe_offsets(tps).items()
                   if self.committed.get(tp) != o}
        if offsets:
            self.consumer.commit(offsets)
            self.counters.commits += 1
            for tp, om in offsets.items():
                self.committed[tp] = om.offset

    def evict_idle(self) -> None:
        now = time.monotonic()
        for pipe in set(self.routes.values()):
            self.counters.evicted_streams += pipe.drop(
                lambda k, p=pipe: now - p.last_seen.get(k, now) > self.idle_stream_s)

    def revoke(self, tps) -> None:
        """Partitions leave this worker: commit what is safe, then forget their streams.

        A partition that comes straight back (eager rebalancing revokes everything) must be
        re-read from that safe offset, since its buffers were dropped: ``assign`` seeks there.
        """
        tps = set(tps)
        safe = self.safe_offsets(tps)
        self.rewind.update(safe)
        try:
            self.commit(tps)
        except Exception as e:  # the group may already have moved on; the new owner re-reads
            log.warning("commit on revoke failed: %s", e)
        keys = {(tp.topic, tp.partition) for tp in tps}
        for pipe in set(self.routes.values()):
            pipe.drop(lambda k: k[0] in keys)
        for tp in tps:
            self.consumed.pop(tp, None)
            self.committed.pop(tp, None)

    def assign(self, tps) -> None:
        for tp in tps:
            off = self.rewind.pop(tp, None)
            if off is not None:
                self.consumer.seek(tp, off)
        self.rewind.clear()


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, daemon: Daemon):
        self.d = daemon

    def on_partitions_revoked(self, revoked) -> None:
        if revoked:
            log.info("partitions revoked: %s", sorted((t.topic, t.partition) for t in revoked))
            self.d.revoke(revoked)

    def on_partitions_assigned(self, assigned) -> None:
        log.info("partitions assigned: %s", sorted((t.topic, t.partition) for t in assigned))
        self.d.assign(assigned)


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
