"""The long-lived daemon: Kafka in -> pipelines -> alerts and dead letters out -> commit.

One process runs one or more pipelines (one per config: audio, sensor, heart-rate) on one
consumer. The poll loop (this module, one thread) does, per iteration:

1. poll; each record goes to the pipeline of its topic, which decodes it into its stream's
   buffer (a record that cannot be used goes to the dead-letter topic with the reason); each
   pipeline's complete windows are queued for the scoring worker (:mod:`.worker`, a thread of
   its own: scoring never delays polling, heartbeats or commits);
2. take back the batches the worker has scored: apply each pipeline's alert rule (per stream,
   in window order), produce the alerts;
3. at most every ``kafka.commit_interval_s`` (0.5 s), the offset ledger flushes the producer,
   checks every acknowledgement and commits, per partition, the oldest offset a future window,
   an open event or a window still queued or being scored needs;
4. back-pressure: while ``worker.queue_windows`` windows wait, every assigned partition is
   paused (polling goes on); they resume once the queue is down to half.

So an offset is committed only after every alert for the records before it was acknowledged
(at-least-once); after a crash the daemon re-reads from there and re-creates the same windows
(absolute time grid), decisions and alert ids.
"""
from __future__ import annotations

import json
import logging
import math
import signal
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from kafka import ConsumerRebalanceListener
from kafka.structs import TopicPartition

from streamad.config import ConfigError, KafkaConfig, WorkerConfig
from streamad.daemon.health import HealthState, kafka_connected
from streamad.daemon.ledger import BrokerUnavailable, DeliveryError, OffsetLedger
from streamad.daemon.pipeline import Pipeline
from streamad.daemon.reload import Reloader
from streamad.daemon.supervisor import DaemonExit, StallWatch, Supervisor
from streamad.daemon.telemetry import Telemetry, partition_lags, topic_partition_counts
from streamad.daemon.worker import Job, ScoringWorker
from streamad.errors import described
from streamad.io import kafka as kio
from streamad.io.codecs import PayloadError, encode_alert

log = logging.getLogger("streamad.daemon")
BUSY_POLL_MS = 10  # poll timeout while windows are being scored: decide them promptly
EVICT_CHECK_S = 1.0  # idle streams are looked for at most this often (a pass visits every stream)

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
    scoring_cpu_s: float = 0.0
    batches: int = 0
    pauses: int = 0


class Daemon:
    def __init__(self, pipelines: list[Pipeline], bootstrap: str, kcfg: KafkaConfig,
                 idle_stream_s: float = 300.0, stats_every_s: float = 30.0, telemetry: Telemetry | None = None,
                 health: HealthState | None = None, worker: WorkerConfig | None = None):
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
        self.stall = StallWatch()
        self.stopping = False
        self.consumer = self.producer = self.ledger = self.supervisor = None
        self.embedded = None  # the EmbeddedBroker this process started, supervised (supervisor.py)
        self.on_embedded_restart: Callable[[], None] | None = None
        self.reloader = Reloader(self)  # SIGHUP: hot model reload (reload.py)
        self.wcfg = worker or pipelines[0].cfg.worker
        self.worker: ScoringWorker | None = None
        self.inflight: dict[int, Job] = {}  # queued or being scored, not yet decided
        self.generation = 0  # revocations so far; a job remembers the value at submission
        self.revoked_in: dict[tuple[str, int], int] = {}  # partition -> generation of its last revocation
        self.paused = False
        self.on_alert: Callable[[dict], None] | None = None
        self.score_log = None  # optional text file: one JSON line per scored window (audit trail)
        self.tel = telemetry or Telemetry()
        self.health = health or HealthState(self.tel)
        for p in self.pipelines:
            self.tel.add_pipeline(p.label, p.cfg.kafka.input_topics, p.model.name, p.model.version, p.model.threshold,
                                  p.model.hearing_check)
        self.health.set_models_loaded(True)
        self._drift_at = 0.0
        self._commit_due = False  # batches decided since the last commit
        self._committed_at = -math.inf  # monotonic time of the last commit attempt
        self._evict_at = -math.inf  # monotonic time of the last idle-stream check

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
        scorer = None
        if self.wcfg.scorer == "process":
            from streamad.daemon.scorer_proc import ProcessScorer

            scorer = ProcessScorer(self.wcfg.threads)
            here = [p.label for p in self.pipelines if not scorer.prepare(p.label, p.model)]
            log.info("scoring in a child process (pid %s)%s", scorer.pid,
                     f"; in the worker thread for {', '.join(here)}" if here else "")
        self.worker = ScoringWorker(self.wcfg.max_batch, self.wcfg.latency_budget_s, scorer=scorer)
        self.consumer.subscribe(list(self.routes), listener=_Rebalance(self))
        log.info("subscribed to %s on %s (group %s)", ", ".join(self.routes), self.bootstrap, self.kcfg.group_id)
        t_end = time.monotonic() + max_seconds if max_seconds else None
        last_stats = time.monotonic()
        try:
            while not self.stopping and not (t_end and time.monotonic() > t_end):
                batches = self.supervisor.poll(self.poll_timeout_ms())
                if batches:
                    self.process(batches)
                self.collect()
                self.commit_if_due()
                if time.monotonic() - self._evict_at >= EVICT_CHECK_S:
                    self.evict_idle()
                self.observe()
                if time.monotonic() - last_stats > self.stats_every_s:
                    last_stats = time.monotonic()
                    log.info("stats %s", json.dumps(self.stats()))
            self.drain()
            log.info("stopped cleanly; %s", json.dumps(self.stats()))
            return 0
        finally:
            self.worker.close()
            self.supervisor.stop()
            try:
                self.producer.flush(timeout=10)
            except Exception:  # the broker is away: nothing more to save (the last commit stands)
                pass
            finally:
                self.consumer.close(autocommit=False, timeout_ms=5000)
                self.producer.close(timeout=5)

    def observe(self) -> None:
        """Once per loop iteration: liveness, broker connection, partition lags, streams, scoring queue."""
        self.health.tick()
        up = self.supervisor.tick()
        self.health.set_broker_up(up and kafka_connected(self.consumer))
        self.reloader.maybe_reload()
        lags = partition_lags(self.consumer, self.ledger.consumed)
        for (topic, part), lag in lags.items():
            self.tel.set_lag(topic, part, lag)
        stalled = self.stall.update(self.counters.records, sum(max(0, x) for x in lags.values()))
        if stalled:
            log.warning(stalled)
        queued: dict[str, int] = {}
        for job in self.inflight.values():
            queued[job.pipe.label] = queued.get(job.pipe.label, 0) + len(job.items)
        paused = {(tp.topic, tp.partition) for tp in self.consumer.paused()}
        for p in self.pipelines:
            self.tel.streams_active(p.label, len(p.streams))
            t = p.drain_tally()
            self.tel.tallies(p.label, t)
            c = self.counters
            c.duplicates += t["duplicates"]
            c.dropped_samples += t["dropped"]
            c.nonfinite_scores += t["nonfinite"]
            c.evicted_streams += t["evicted"]
            self.tel.scoring_queue_depth(p.label, queued.get(p.label, 0))
            self.tel.paused_partitions(p.label, sum(1 for tp in paused if self.routes.get(tp[0]) is p))
        if time.monotonic() - self._drift_at > 10.0:  # per-stream drift (a bounded set of series), topic sizes
            self._drift_at = time.monotonic()
            for p in self.pipelines:
                self.tel.stream_drifts(p.label, p.drifts())
            for topic, n in topic_partition_counts(self.consumer, self.routes).items():
                self.tel.topic_partitions(topic, n)

    def stats(self) -> dict[str, Any]:
        d = asdict(self.counters)
        d["scoring_s"], d["scoring_cpu_s"] = round(d["scoring_s"], 3), round(d["scoring_cpu_s"], 3)
        d["commits"] = self.ledger.commits if self.ledger else 0
        d["dead_letter_placeholders"] = self.ledger.placeholders if self.ledger else 0
        d["streams"] = sum(len(p.streams) for p in self.pipelines)
        d["queued_windows"] = self.worker.depth if self.worker else 0
        return d

    # -- the work -----------------------------------------------------------------
    def process(self, batches: dict[TopicPartition, list]) -> None:
        """One poll's records: decode into their streams' buffers, queue the complete windows for scoring."""
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
                for job in self.worker.submit(pipe, items, stamp=self.generation):
                    self.inflight[job.id] = job

    def accept(self, pipe: Pipeline, rec: Any, tp: tuple[str, int]) -> list:
        try:
            items, rejects = pipe.accept(rec, tp)
        except PayloadError as e:
            self.send_dead_letter(pipe, rec, str(e))
            return []
        except Exception as e:  # a poison record must not stop the daemon
            log.exception("unexpected error on %s/%d@%d", rec.topic, rec.partition, rec.offset)
            self.send_dead_letter(pipe, rec, f"unprocessable record ({described(e, 200)})")
            return []
        for r in rejects:
            if not isinstance(r, str):  # (earlier record of the stream, reason)
                self.send_dead_letter(pipe, *r)
        mine = [r for r in rejects if isinstance(r, str)]
        if mine:
            self.send_dead_letter(pipe, rec, "; ".join(mine)[:500])
        return items

    def poll_timeout_ms(self) -> int:
        """Short polls while windows are being scored, so that finished batches are decided promptly;
        none while paused (``collect`` waits on the worker instead: nothing can be fetched)."""
        if self.worker.idle:
            return self.kcfg.poll_timeout_ms
        return 0 if self.paused else min(self.kcfg.poll_timeout_ms, BUSY_POLL_MS)

    def collect(self) -> None:
        """Take back the scored batches: decide, publish, commit (every commit comes after the
        acknowledgements); then pause or resume the partitions (back-pressure)."""
        results = self.worker.finished()
        if not results and self.paused:  # the queue is full: wait for the worker, not the broker
            self.worker.wait(self.kcfg.poll_timeout_ms / 1000)
            results = self.worker.finished()
        for r in results:
            self.counters.scoring_s += r.seconds
            self.counters.scoring_cpu_s += r.cpu_s
            self.counters.batches += 1
            scored = 0
            for job, scores, comps in r.split():
                scored += self.score_and_alert(job, scores, comps)
            pipe = r.jobs[0].pipe
            self.tel.windows_scored(pipe.label, scored, r.seconds, r.scores)
        if results:
            self._commit_due = True
        self.backpressure()

    def drain(self) -> None:
        """Stopping: decide every window queued or being scored, then commit."""
        while not self.worker.idle:
            self.worker.wait(0.2)
            self.collect()
        self.commit()

    def score_and_alert(self, job: Job, scores, comps: dict) -> int:
        """Decide one scored job (a pipeline's windows, in the order they were cut) and publish its
        alerts; windows of partitions revoked since the job was queued are dropped (the new owner
        re-reads them). Returns the number of windows decided."""
        self.inflight.pop(job.id, None)
        pipe, items = job.pipe, job.items
        keep = [i for i, (key, _w) in enumerate(items) if self.revoked_in.get(key[0], -1) <= job.stamp]
        if len(keep) < len(items):
            items, scores = [items[i] for i in keep], scores[keep]
            comps = {k: v[keep] for k, v in comps.items()}
        self.counters.windows += len(items)
        if self.score_log is not None and items:
            for (_k, w), s in zip(items, scores):
                self.score_log.write(json.dumps({"key": w.key, "stream_id": w.stream_id, "start": w.start,
                                                 "end": w.end, "score": float(s)}) + "\n")
            self.score_log.flush()
        self.publish(pipe, pipe.decide(items, scores, comps))
        return len(items)

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

    def backpressure(self) -> None:
        """Pause every assigned partition while ``worker.queue_windows`` windows wait to be scored
        (polling goes on: heartbeats, rebalances, commits); resume at half of that."""
        high = self.wcfg.queue_windows
        if not self.paused and self.worker.depth >= high:
            self.paused = True
            self.counters.pauses += 1
            log.info("scoring queue full (%d windows): pausing %d partition(s)", self.worker.depth,
                     len(self.consumer.assignment()))
        elif self.paused and self.worker.depth <= high // 2:
            self.paused = False
            self.consumer.resume(*self.consumer.paused())
            log.info("scoring queue down to %d windows: partitions resumed", self.worker.depth)
        if self.paused:
            fresh = self.consumer.assignment() - self.consumer.paused()  # assigned since the pause
            if fresh:
                self.consumer.pause(*fresh)

    def send_dead_letter(self, pipe: Pipeline, rec: Any, reason: str) -> None:
        self.counters.dead_letters += 1
        self.tel.dead_letter(pipe.label, reason)
        log.warning("dead-letter %s/%d@%d: %s", rec.topic, rec.partition, rec.offset, reason)
        self.ledger.send_dead_letter(pipe.cfg.kafka.dead_letter_topic, rec, reason)

    def needed(self) -> dict[tuple[str, int], int]:
        """Per partition, the oldest offset still needed: by a stream (future windows, k-of-n context,
        open event) or by a window queued or being scored (released once it is decided)."""
        out: dict[tuple[str, int], int] = {}
        holds = [p.needed_offsets() for p in self.pipelines] + [j.hold for j in self.inflight.values()]
        for src in holds:
            for tp, off in src.items():
                out[tp] = min(off, out.get(tp, off))
        return out

    def commit_if_due(self) -> None:
        """Commit once ``kafka.commit_interval_s`` has passed since the last commit, if windows were
        decided since (the offsets of every stream are computed anew for a commit: once per batch
        cost 8 % of a core at 500 live streams)."""
        if self._commit_due and time.monotonic() - self._committed_at >= self.kcfg.commit_interval_s:
            self.commit()

    def commit(self, tps=None) -> None:
        self._commit_due, self._committed_at = False, time.monotonic()
        try:
            n = self.ledger.commit(self.needed(), tps)
        except BrokerUnavailable as e:  # everything stays pending; the supervisor retries and times out
            self.supervisor.unavailable("commit", str(e))
            return
        self.supervisor.available("commit")
        if n:
            self.tel.commit()

    def evict_idle(self) -> None:
        self._evict_at = time.monotonic()
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
        self.generation += 1  # windows of these partitions queued before now are dropped when scored
        self.revoked_in.update((k, self.generation) for k in keys)
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
