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
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from kafka import ConsumerRebalanceListener
from kafka.structs import TopicPartition

from streamad.config import ConfigError, KafkaConfig
from streamad.daemon.health import HealthState, kafka_connected
from streamad.daemon.ledger import BrokerUnavailable, DeliveryError, OffsetLedger
from streamad.daemon.pipeline import Pipeline
from streamad.daemon.reload import Reloader
from streamad.daemon.supervisor import DaemonExit, Supervisor
from streamad.daemon.telemetry import Telemetry, partition_lags
from streamad.io import kafka as kio
from streamad.io.codecs import PayloadError, encode_alert

log = logging.getLogger("streamad.daemon")

__all__ = ["Daemon", "DaemonExit", "DeliveryError", "Counters"]


@dataclass
class Counters:
    records: int = 0
    windows: int = 0
    alerts: int = 0
    dead_letters: int = 0
    evicted_streams: int = 0
    scoring_s: float = 0.0
    duplicates: int = 0  # samples / readings
    dropped_samples: int = 0
    nonfinite_scores: int = 0


class Daemon:
    def __init__(self, pipelines: list[Pipeline], bootstrap: str, kcfg: KafkaConfig,
                 idle_stream_s: float = 300.0, stats_every_s: float = 30.0, telemetry: Telemetry | None = None,
                 health: HealthState | None = None):
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
        self.consumer = self.producer = self.ledger = self.supervisor = None
        self.embedded = None  # the EmbeddedBroker this process started, supervised (supervisor.py)
        self.on_embedded_restart: Callable[[], None] | None = None
        self.reloader = Reloader(self)  # SIGHUP: hot model reload (reload.py)
        self.on_alert: Callable[[dict], None] | None = None
        self.score_log = None  # optional text file: one JSON line per scored window (audit trail)
        self.tel = telemetry or Telemetry()
        self.health = health or HealthState(self.tel)
        for p in self.pipelines:
            self.tel.add_pipeline(p.label, p.cfg.kafka.input_topics, p.model.name, p.model.version, p.model.threshold)
        self.health.set_models_loaded(True)
        self._drift_at = 0.0

    # -- lifecycle ----------------------------------------------------------------
    def request_stop(self, *_: Any) -> None:
        self.stopping = True
        self.health.set_stopping()

    def run(self, max_seconds: float | None = None) -> int:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.reloader.request)
        wait, stopping = self.kcfg.broker_timeout_s, lambda: self.stopping
        self.producer = kio.connect(lambda: kio.producer(self.kcfg, self.bootstrap), "producer", wait, stopping)
        self.consumer = kio.connect(lambda: kio.consumer(self.kcfg, self.bootstrap), "consumer", wait, stopping)
        if self.producer is None or self.consumer is None:  # stopped while waiting for a broker
            if self.producer is not None:
                self.producer.close(timeout=5)
            return 0
        self.ledger = OffsetLedger(self.consumer, self.producer)
        self.supervisor = Supervisor(self, self.embedded, self.on_embedded_restart)
        self.consumer.subscribe(list(self.routes), listener=_Rebalance(self))
        log.info("subscribed to %s on %s (group %s)", ", ".join(self.routes), self.bootstrap, self.kcfg.group_id)
        t_end = time.monotonic() + max_seconds if max_seconds else None
        last_stats = time.monotonic()
        try:
            while not self.stopping and not (t_end and time.monotonic() > t_end):
                batches = self.supervisor.poll(self.kcfg.poll_timeout_ms)
                if batches:
                    self.process(batches)
                self.evict_idle()
                self.observe()
                if time.monotonic() - last_stats > self.stats_every_s:
                    last_stats = time.monotonic()
                    log.info("stats %s", json.dumps(self.stats()))
            self.commit()
            log.info("stopped cleanly; %s", json.dumps(self.stats()))
            return 0
        finally:
            self.supervisor.stop()
            try:
                self.producer.flush(timeout=10)
            except Exception:  # the broker is away: nothing more to save (the last commit stands)
                pass
            finally:
                self.consumer.close(autocommit=False, timeout_ms=5000)
                self.producer.close(timeout=5)

    def observe(self) -> None:
        """Once per loop iteration: liveness, broker connection, partition lags, active streams."""
        self.health.tick()
        up = self.supervisor.tick()
        self.health.set_broker_up(up and kafka_connected(self.consumer))
        self.reloader.maybe_reload()
        for (topic, part), lag in partition_lags(self.consumer, self.ledger.consumed).items():
            self.tel.set_lag(topic, part, lag)
        for p in self.pipelines:
            self.tel.streams_active(p.label, len(p.streams))
            t = p.drain_tally()
            self.tel.tallies(p.label, t)
            c = self.counters
            c.duplicates += t["duplicates"]
            c.dropped_samples += t["dropped"]
            c.nonfinite_scores += t["nonfinite"]
            c.evicted_streams += t["evicted"]
        if time.monotonic() - self._drift_at > 10.0:  # per-stream drift: a bounded set of series
            self._drift_at = time.monotonic()
            for p in self.pipelines:
                self.tel.stream_drifts(p.label, p.drifts())

    def stats(self) -> dict[str, Any]:
        d = asdict(self.counters)
        d["scoring_s"] = round(d["scoring_s"], 3)
        d["commits"] = self.ledger.commits if self.ledger else 0
        d["dead_letter_placeholders"] = self.ledger.placeholders if self.ledger else 0
        d["streams"] = sum(len(p.streams) for p in self.pipelines)
        return d

    # -- the work -----------------------------------------------------------------
    def process(self, batches: dict[TopicPartition, list]) -> None:
        """One poll's records: buffer, score, decide, publish, then commit."""
        pending: dict[int, list] = {}
        for tp, records in batches.items():
            pipe = self.routes[tp.topic]
            self.tel.records(pipe.label, tp.topic, len(records))
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
        for r in rejects:
            if not isinstance(r, str):  # (earlier record of the stream, reason)
                self.send_dead_letter(pipe, *r)
        mine = [r for r in rejects if isinstance(r, str)]
        if mine:
            self.send_dead_letter(pipe, rec, "; ".join(mine)[:500])
        return items

    def score_and_alert(self, pipe: Pipeline, items: list) -> None:
        t = time.perf_counter()
        windows = [w for _, w in items]
        scores, comps = pipe.score(windows)
        dt = time.perf_counter() - t
        self.counters.scoring_s += dt
        self.counters.windows += len(items)
        self.tel.windows_scored(pipe.label, len(items), dt, scores)
        if self.score_log is not None:
            for w, s in zip(windows, scores):
                self.score_log.write(json.dumps({"key": w.key, "stream_id": w.stream_id, "start": w.start,
                                                 "end": w.end, "score": float(s)}) + "\n")
            self.score_log.flush()
        self.publish(pipe, pipe.decide(items, scores, comps))

    def publish(self, pipe: Pipeline, records: list[dict]) -> None:
        """Alerts and closed-event records to the pipeline's alert topic (acked before the next commit)."""
        for rec in records:
            key, value = encode_alert(rec)
            if rec["type"] == "alert":
                end = rec["window_end"]
                self.ledger.send(pipe.cfg.kafka.alert_topic, key, value,
                                 on_ack=lambda e=end, label=pipe.label: self.tel.alert(label, time.time() - e))
                self.counters.alerts += 1
            else:
                self.ledger.send(pipe.cfg.kafka.alert_topic, key, value)
            if self.on_alert:
                self.on_alert(rec)

    def send_dead_letter(self, pipe: Pipeline, rec: Any, reason: str) -> None:
        self.counters.dead_letters += 1
        self.tel.dead_letter(pipe.label, reason)
        log.warning("dead-letter %s/%d@%d: %s", rec.topic, rec.partition, rec.offset, reason)
        self.ledger.send_dead_letter(pipe.cfg.kafka.dead_letter_topic, rec, reason)

    def needed(self) -> dict[tuple[str, int], int]:
        out: dict[tuple[str, int], int] = {}
        for p in self.pipelines:
            for tp, off in p.needed_offsets().items():
                out[tp] = min(off, out.get(tp, off))
        return out

    def commit(self, tps=None) -> None:
        try:
            n = self.ledger.commit(self.needed(), tps)
        except BrokerUnavailable as e:  # everything stays pending; the supervisor retries and times out
            self.supervisor.unavailable("commit", str(e))
            return
        self.supervisor.available("commit")
        if n:
            self.tel.commit()

    def evict_idle(self) -> None:
        n = 0
        for p in self.pipelines:
            k, closed = p.evict_idle(self.idle_stream_s)
            if k:
                self.tel.streams_evicted(p.label, k)
                self.publish(p, closed)
                n += k
        if n:
            self.counters.evicted_streams += n
            log.info("evicted %d idle stream(s) (silent for %.0f s)", n, self.idle_stream_s)
            self.commit()  # their held records are no longer needed

    def forget_partitions(self, tps) -> None:
        """Partitions whose log restarted: their offsets, buffers and lag series are gone."""
        keys = {(tp.topic, tp.partition) for tp in tps}
        for tp in tps:
            self.ledger.reset(tp)
        self.tel.forget_partitions(keys)
        for p in self.pipelines:
            p.drop(lambda k, _st: k[0] in keys)

    # -- rebalances ---------------------------------------------------------------
    def revoke(self, tps) -> None:
        """Partitions leave this worker: remember where to re-read them, forget their streams."""
        self.ledger.revoke(tps, self.needed())
        keys = {(tp.topic, tp.partition) for tp in tps}
        self.tel.forget_partitions(keys)
        for p in self.pipelines:
            p.drop(lambda k, _st: k[0] in keys, close=False)


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
        self.d.health.set_assigned(len(self.d.consumer.assignment()))
