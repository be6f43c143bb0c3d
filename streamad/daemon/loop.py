"""The long-lived daemon: Kafka in -> pipelines -> alerts and dead letters out -> commit.

One process runs one or more pipelines (one per config: audio, sensor, heart-rate) on one
consumer. For every poll:

1. each record goes to the pipeline of its topic, which decodes it into its stream's buffer
   (a record that cannot be used goes to the dead-letter topic with the reason);
2. each pipeline scores all its complete windows in one batched pass and applies the alert
   rule; alerts are produced;
3. the offset ledger flushes the producer, checks every acknowledgement and commits, per
   partition, the oldest offset a future window or open event still needs.

So an offset is committed only after every alert for the records before it was acknowledged
(at-least-once); after a crash the daemon re-reads from there and re-creates the same windows
(absolute time grid), decisions and alert ids.
"""
from __future__ import annotations

import json
import logging
import signal
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from kafka import ConsumerRebalanceListener
from kafka.structs import TopicPartition

from streamad.config import ConfigError, KafkaConfig
from streamad.daemon.ledger import DeliveryError, OffsetLedger
from streamad.daemon.pipeline import Pipeline
from streamad.io import kafka as kio
from streamad.io.codecs import PayloadError, encode_alert
from streamad.io.deadletter import dead_letter

log = logging.getLogger("streamad.daemon")

__all__ = ["Daemon", "DeliveryError", "Counters", "setup_logging"]


@dataclass
class Counters:
    records: int = 0
    windows: int = 0
    alerts: int = 0
    dead_letters: int = 0
    evicted_streams: int = 0
    scoring_s: float = 0.0


class Daemon:
    def __init__(self, pipelines: list[Pipeline], bootstrap: str, kcfg: KafkaConfig,
                 idle_stream_s: float = 300.0, stats_every_s: float = 30.0):
        self.routes: dict[str, Pipeline] = {}
        for p in pipelines:
            for t in p.cfg.kafka.input_topics:
                if t in self.routes:
                    raise ConfigError(f"kafka.input_topics: topic {t!r} is used by two configs")
                self.routes[t] = p
        self.pipelines = list(pipelines)
        self.kcfg, self.bootstrap = kcfg, bootstrap
        self.idle_stream_s, self.stats_every_s = idle_stream_s, stats_every_s
        self.counters = Counters()
        self.stopping = False
        self.consumer = self.producer = self.ledger = None
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
        self.ledger = OffsetLedger(self.consumer, self.producer)
        self.consumer.subscribe(list(self.routes), listener=_Rebalance(self))
        log.info("subscribed to %s on %s (group %s)", ", ".join(self.routes), self.bootstrap, self.kcfg.group_id)
        t_end = time.monotonic() + max_seconds if max_seconds else None
        last_stats = time.monotonic()
        try:
            while not self.stopping and not (t_end and time.monotonic() > t_end):
                batches = self.consumer.poll(timeout_ms=self.kcfg.poll_timeout_ms)
                if self.ledger.failed:
                    raise self.ledger.failed
                if batches:
                    self.process(batches)
                self.evict_idle()
                if time.monotonic() - last_stats > self.stats_every_s:
                    last_stats = time.monotonic()
                    log.info("stats %s", json.dumps(self.stats()))
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
        d = asdict(self.counters)
        d["scoring_s"] = round(d["scoring_s"], 3)
        d["commits"] = self.ledger.commits if self.ledger else 0
        d["streams"] = sum(len(p.streams) for p in self.pipelines)
        return d

    # -- the work -----------------------------------------------------------------
    def process(self, batches: dict[TopicPartition, list]) -> None:
        """One poll's records: buffer, score, decide, publish, then commit."""
        pending: dict[int, list] = {}
        for tp, records in batches.items():
            pipe = self.routes[tp.topic]
            for rec in records:
                self.counters.records += 1
                self.ledger.seen(tp, rec.offset)
                pending.setdefault(id(pipe), []).extend(self.accept(pipe, rec, (tp.topic, tp.partition)))
        for pipe in self.pipelines:
            items = pending.get(id(pipe))
            if items:
                self.score_and_alert(pipe, items)
        self.commit()

    def accept(self, pipe: Pipeline, rec: Any, tp: tuple[str, int]) -> list:
        try:
            items, rejects = pipe.accept(rec, tp)
        except PayloadError as e:
            self.send_dead_letter(pipe, rec, str(e))
            return []
        except Exception as e:  # a poison record must not stop the daemon
            log.exception("unexpected error on %s/%d@%d", rec.topic, rec.partition, rec.offset)
            first = str(e).splitlines()[0][:200] if str(e) else ""
            self.send_dead_letter(pipe, rec, f"unprocessable record ({type(e).__name__}: {first})")
            return []
        if rejects:
            self.send_dead_letter(pipe, rec, "; ".join(rejects)[:500])
        return items

    def score_and_alert(self, pipe: Pipeline, items: list) -> None:
        t = time.perf_counter()
        windows = [w for _, w in items]
        scores, comps = pipe.score(windows)
        self.counters.scoring_s += time.perf_counter() - t
        self.counters.windows += len(items)
        if self.score_log is not None:
            for w, s in zip(windows, scores):
                self.score_log.write(json.dumps({"key": w.key, "stream_id": w.stream_id, "start": w.start,
                                                 "end": w.end, "score": float(s)}) + "\n")
            self.score_log.flush()
        for alert in pipe.decide(items, scores, comps):
            key, value = encode_alert(alert)
            self.ledger.track(self.producer.send(pipe.cfg.kafka.alert_topic, key=key, value=value))
            self.counters.alerts += 1
            if self.on_alert:
                self.on_alert(alert)

    def send_dead_letter(self, pipe: Pipeline, rec: Any, reason: str) -> None:
        self.counters.dead_letters += 1
        log.warning("dead-letter %s/%d@%d: %s", rec.topic, rec.partition, rec.offset, reason)
        key, value, headers = dead_letter(rec, reason)
        self.ledger.track(self.producer.send(pipe.cfg.kafka.dead_letter_topic, key=key, value=value,
                                             headers=headers))

    def needed(self) -> dict[tuple[str, int], int]:
        out: dict[tuple[str, int], int] = {}
        for p in self.pipelines:
            for tp, off in p.needed_offsets().items():
                out[tp] = min(off, out.get(tp, off))
        return out

    def commit(self, tps=None) -> None:
        self.ledger.commit(self.needed(), tps)

    def evict_idle(self) -> None:
        for p in self.pipelines:
            self.counters.evicted_streams += p.evict_idle(self.idle_stream_s)

    # -- rebalances ---------------------------------------------------------------
    def revoke(self, tps) -> None:
        """Partitions leave this worker: commit what is safe, then forget their streams."""
        self.ledger.revoke(tps, self.needed())
        keys = {(tp.topic, tp.partition) for tp in tps}
        for p in self.pipelines:
            p.drop(lambda k, _st: k[0] in keys)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, daemon: Daemon):
        self.d = daemon

    def on_partitions_revoked(self, revoked) -> None:
        if revoked:
            log.info("partitions revoked: %s", sorted((t.topic, t.partition) for t in revoked))
            self.d.revoke(revoked)

    def on_partitions_assigned(self, assigned) -> None:
        log.info("partitions assigned: %s", sorted((t.topic, t.partition) for t in assigned))
        self.d.ledger.assigned(assigned)


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
