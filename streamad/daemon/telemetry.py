"""Prometheus metrics of one daemon process, on a private registry.

``Telemetry`` owns a ``prometheus_client.CollectorRegistry`` of its own (not the library's
global one), so tests and several daemons in one process never collide; the health server
(``streamad.daemon.health``) renders it on ``/metrics``.

Labels are bounded on purpose: ``pipeline`` (one per ``--config``), ``topic`` (the configured
input topics), ``partition`` (their partitions), ``reason`` (the fixed vocabulary
``REASON_CLASSES``) and ``quantile``. There is no per-stream label: stream ids are chosen by
producers, unbounded in number and churn as streams go idle, and every label value would live
for the life of the process and in Prometheus' TSDB. Per-stream detail is in the alert topic
and the ``--score-log`` audit trail; ``streamad_window_score`` gives a bounded drift view.

``METRIC_NAMES`` lists every series name as Prometheus renders it (``_total`` for counters,
``_bucket``/``_count``/``_sum`` for histograms); the deploy tests check the dashboard and
the alert rules against it.
"""
from __future__ import annotations

import math
import re
from collections import deque
from typing import Iterable

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

P = ("pipeline",)
SCORE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
SCORE_QUANTILES = ("0.5", "0.9", "0.99")
SCORE_WINDOW = 1024  # recent finite window scores per pipeline behind streamad_window_score
STREAM_SERIES = 20  # per pipeline: the most drifted streams get a streamad_stream_score_drift series

# (attribute, type, name without suffix, help, labels)
_SPECS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("c_records", "counter", "streamad_records", "Records consumed, per input topic.", P + ("topic",)),
    ("c_windows", "counter", "streamad_windows_scored", "Windows scored.", P),
    ("c_alerts", "counter", "streamad_alerts", "Alerts published and acknowledged by the broker.", P),
    ("c_dead", "counter", "streamad_dead_letters",
     "Records copied to the dead-letter topic, per reason class.", P + ("reason",)),
    ("c_nonfinite", "counter", "streamad_nonfinite_scores", "Windows whose score was NaN or infinite.", P),
    ("c_dups", "counter", "streamad_duplicates", "Duplicate samples/readings dropped (at-least-once resends).", P),
    ("c_dropped", "counter", "streamad_dropped_samples",
     "Samples/readings dropped (too late, before a gap, overlap).", P),
    ("c_evicted", "counter", "streamad_streams_evicted",
     "Streams forgotten: idle for worker.idle_stream_s, or beyond worker.max_streams.", P),
    ("c_commits", "counter", "streamad_commits", "Offset commits sent to the consumer group.", ()),
    ("h_score", "histogram", "streamad_score_seconds", "Wall time of one batched scoring pass.", P),
    ("h_latency", "histogram", "streamad_alert_latency_seconds",
     "From the end of the alerting window (stream time) to the broker's acknowledgement of the alert.", P),
    ("g_lag", "gauge", "streamad_consumer_lag",
     "Records behind the partition's high watermark.", P + ("topic", "partition")),
    ("g_streams", "gauge", "streamad_streams_active", "Streams with a live buffer.", P),
    ("g_model", "gauge", "streamad_model_info", "The loaded model (value 1).", P + ("name", "version")),
    ("g_threshold", "gauge", "streamad_threshold", "Calibrated alert threshold of the loaded model.", P),
    ("g_hearing", "gauge", "streamad_model_hearing_check_auc",
     "Audio models: ROC-AUC of the training's hearing check (generic sounds added to held-back normal audio).", P),
    ("g_score", "gauge", "streamad_window_score",
     f"Quantiles of the last {SCORE_WINDOW} finite window scores (drift view).", P + ("quantile",)),
    ("g_over", "gauge", "streamad_window_score_over_threshold_ratio",
     f"Fraction of the last {SCORE_WINDOW} finite window scores over the threshold.", P),
    ("g_drift", "gauge", "streamad_stream_score_drift",
     f"Per stream: running mean of its normal scores minus the calibration's (the {STREAM_SERIES} most "
     "drifted streams per pipeline; see alerts.drift_halflife_s).", P + ("stream",)),
    ("g_paused", "gauge", "streamad_paused_partitions", "Partitions paused for back-pressure.", P),
    ("g_queue", "gauge", "streamad_scoring_queue_depth", "Windows waiting to be scored.", P),
    ("g_assigned", "gauge", "streamad_partitions_assigned", "Partitions assigned to this process.", ()),
    ("g_topic_parts", "gauge", "streamad_topic_partitions",
     "Partitions of each subscribed input topic (broker metadata): the group's assigned partitions "
     "should add up to their sum.", P + ("topic",)),
    ("g_broker", "gauge", "streamad_broker_up", "1 while the consumer holds a broker connection.", ()),
    ("g_tick", "gauge", "streamad_loop_last_tick_timestamp_seconds",
     "Unix time of the main loop's last iteration.", ()),
    ("g_ready", "gauge", "streamad_ready", "1 while /readyz answers 200.", ()),
    ("g_build", "gauge", "streamad_build_info", "streamad version (value 1).", ("version",)),
)

_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}
METRIC_NAMES: frozenset[str] = frozenset(n + s for _, kind, n, _, _ in _SPECS for s in _SUFFIXES[kind])
# rendered name -> its label names (``le`` on histogram buckets)
METRIC_LABELS: dict[str, tuple[str, ...]] = {
    n + s: labels + (("le",) if s == "_bucket" else ()) for _, kind, n, _, labels in _SPECS for s in _SUFFIXES[kind]}

# Dead-letter reason classes: (class, pattern searched in the lower-cased reason), first match wins.
_REASON_RULES: tuple[tuple[str, str], ...] = (
    ("too_late", r"reading\(s\) too late"),
    ("unprocessable", r"^unprocessable record"),
    ("bad_key", r"^(missing key|key is not utf-8|key \(stream id\))"),
    ("sample_rate_mismatch", r"^sample_rate .* does not match"),
    ("missing_header", r"^missing header"),
    ("bad_header", r"^header "),
    ("nonfinite_audio", r"^float32 (payload contains nan|sample out of range)"),
    ("bad_audio_payload", r"^(empty audio payload|payload of \d+ bytes)"),
    ("invalid_json", r"^(empty payload|value is not utf-8|invalid json)"),
    ("bad_value", r"value must be a number"),
    ("bad_timestamp", r"timestamp"),
    ("no_channels", r"^none of the expected channels"),
    ("too_large", r"exceeds worker\.max_record_bytes"),
    ("bad_structure", r"^(unknown structure|ambiguous record|reading|batch|empty batch|readings have)"
                      r"|too many (rows|channels)|expected an object|missing 'ts'|missing 'values'|'values' must be"),
)
REASON_CLASSES: tuple[str, ...] = tuple(c for c, _ in _REASON_RULES) + ("other",)
_COMPILED = tuple((c, re.compile(p)) for c, p in _REASON_RULES)


def reason_class(reason: str) -> str:
    """Map a free-text dead-letter reason to one of ``REASON_CLASSES`` (bounded label values).

    A reason that already is a class name is kept; text that matches no rule is ``other``.
    """
    text = (reason or "").strip().lower()
    if text in REASON_CLASSES:
        return text
    for cls, pat in _COMPILED:
        if pat.search(text):
            return cls
    return "other"


class Telemetry:
    """Every streamad metric, on a private registry. Thread-safe (prometheus_client is)."""

    def __init__(self, registry: CollectorRegistry | None = None, version: str | None = None):
        prometheus_client.disable_created_metrics()  # no *_created series: half the series, no use here
        self.registry = registry if registry is not None else CollectorRegistry()
        kinds = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}
        for attr, kind, name, doc, labels in _SPECS:
            kw = {}
            if kind == "histogram":
                kw["buckets"] = SCORE_BUCKETS if name == "streamad_score_seconds" else LATENCY_BUCKETS
            setattr(self, attr, kinds[kind](name, doc, labels, registry=self.registry, **kw))
        self._topic_pipeline: dict[str, str] = {}
        self._model: dict[str, tuple[str, str]] = {}
        self._hearing: set[str] = set()  # pipelines whose model has a hearing check (a series)
        self._thresholds: dict[str, float] = {}
        self._scores: dict[str, deque] = {}
        if version is None:
            from streamad import __version__ as version
        self.g_build.labels(version=version).set(1)

    # -- set-up -------------------------------------------------------------------------
    def add_pipeline(self, pipeline: str, topics: Iterable[str], model_name: str, model_version: str,
                     threshold: float, hearing_check: float | None = None) -> None:
        """Register a pipeline: its input topics, model, threshold and hearing check; its series start at 0."""
        for t in topics:
            self._topic_pipeline[t] = pipeline
            self.c_records.labels(pipeline=pipeline, topic=t)
        for m in (self.c_windows, self.c_alerts, self.c_nonfinite, self.c_dups, self.c_dropped, self.c_evicted,
                  self.h_score, self.h_latency, self.g_streams, self.g_paused, self.g_queue):
            m.labels(pipeline=pipeline)
        for r in ("too_late", "other"):  # the commonest classes exist from the start, so rate() works
            self.c_dead.labels(pipeline=pipeline, reason=r)
        self.model_info(pipeline, model_name, model_version)
        self.threshold(pipeline, threshold)
        self.hearing_check(pipeline, hearing_check)

    def model_info(self, pipeline: str, name: str, version: str) -> None:
        """The pipeline's current model; a new one replaces the old series (model roll)."""
        old = self._model.get(pipeline)
        if old is not None and old != (name, version):
            self.g_model.remove(pipeline, *old)
        self._model[pipeline] = (name, version)
        self.g_model.labels(pipeline=pipeline, name=name, version=version).set(1)

    def threshold(self, pipeline: str, value: float) -> None:
        self._thresholds[pipeline] = float(value)
        self.g_threshold.labels(pipeline=pipeline).set(value)

    def hearing_check(self, pipeline: str, value: float | None) -> None:
        """The loaded model's hearing-check ROC-AUC; None (a model without one) removes the series."""
        if value is not None:
            self.g_hearing.labels(pipeline=pipeline).set(value)
            self._hearing.add(pipeline)
        elif pipeline in self._hearing:
            self.g_hearing.remove(pipeline)
            self._hearing.discard(pipeline)

    # -- the data path ---------------------------------------------------------------------
    def records(self, pipeline: str, topic: str, n: int = 1) -> None:
        self.c_records.labels(pipeline=pipeline, topic=topic).inc(n)

    def windows_scored(self, pipeline: str, n: int, seconds: float, scores: Iterable[float] | None = None) -> None:
        """One batched scoring pass: ``n`` windows in ``seconds``; ``scores`` feed the drift gauges."""
        self.c_windows.labels(pipeline=pipeline).inc(n)
        self.h_score.labels(pipeline=pipeline).observe(seconds)
        if scores is not None:
            self._observe_scores(pipeline, scores)

    def nonfinite_scores(self, pipeline: str, n: int = 1) -> None:
        self.c_nonfinite.labels(pipeline=pipeline).inc(n)

    def alert(self, pipeline: str, latency_s: float | None = None) -> None:
        """An alert the broker acknowledged; latency = ack time - window end (clamped at 0)."""
        self.c_alerts.labels(pipeline=pipeline).inc()
        if latency_s is not None and math.isfinite(latency_s):
            self.h_latency.labels(pipeline=pipeline).observe(max(0.0, latency_s))

    def dead_letter(self, pipeline: str, reason: str) -> str:
        """Count one dead letter; returns the reason class used as the label."""
        cls = reason_class(reason)
        self.c_dead.labels(pipeline=pipeline, reason=cls).inc()
        return cls

    def duplicates(self, pipeline: str, n: int = 1) -> None:
        self.c_dups.labels(pipeline=pipeline).inc(n)

    def dropped_samples(self, pipeline: str, n: int = 1) -> None:
        self.c_dropped.labels(pipeline=pipeline).inc(n)

    def tallies(self, pipeline: str, t: dict[str, int]) -> None:
        """A pipeline's counts since the last call (``Pipeline.drain_tally``)."""
        for key, counter in (("duplicates", self.c_dups), ("dropped", self.c_dropped),
                             ("nonfinite", self.c_nonfinite), ("evicted", self.c_evicted)):
            if t.get(key):
                counter.labels(pipeline=pipeline).inc(t[key])

    def streams_evicted(self, pipeline: str, n: int = 1) -> None:
        self.c_evicted.labels(pipeline=pipeline).inc(n)

    def streams_active(self, pipeline: str, n: int) -> None:
        self.g_streams.labels(pipeline=pipeline).set(n)

    def paused_partitions(self, pipeline: str, n: int) -> None:
        self.g_paused.labels(pipeline=pipeline).set(n)

    def scoring_queue_depth(self, pipeline: str, n: int) -> None:
        self.g_queue.labels(pipeline=pipeline).set(n)

    def stream_drifts(self, pipeline: str, drifts: dict[str, float], limit: int = STREAM_SERIES) -> None:
        """Replace the pipeline's per-stream drift series by its ``limit`` most drifted streams."""
        top = sorted(drifts.items(), key=lambda kv: -abs(kv[1]))[:limit]
        for labels in [s.labels for m in self.g_drift.collect() for s in m.samples]:
            if labels.get("pipeline") == pipeline and labels.get("stream") not in dict(top):
                self.g_drift.remove(pipeline, labels["stream"])
        for sid, d in top:
            self.g_drift.labels(pipeline=pipeline, stream=sid).set(d)

    def commit(self, n: int = 1) -> None:
        self.c_commits.inc(n)

    # -- consumer lag ----------------------------------------------------------------------
    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        """Lag of one assigned partition (clamped at 0); its pipeline is found from the topic."""
        pipe = self._topic_pipeline.get(topic, "")
        self.g_lag.labels(pipeline=pipe, topic=topic, partition=str(partition)).set(max(0, int(lag)))

    def topic_partitions(self, topic: str, n: int) -> None:
        """Partition count of a subscribed input topic, as the broker's metadata gives it."""
        self.g_topic_parts.labels(pipeline=self._topic_pipeline.get(topic, ""), topic=topic).set(int(n))

    def forget_partitions(self, tps: Iterable[tuple[str, int]]) -> None:
        """Drop the lag series of revoked partitions (they are another process's now)."""
        for topic, part in tps:
            try:
                self.g_lag.remove(self._topic_pipeline.get(topic, ""), topic, str(part))
            except KeyError:
                pass

    def max_lag(self) -> int | None:
        """The largest lag over the assigned partitions; None when no lag is known."""
        vals = [s.value for m in self.g_lag.collect() for s in m.samples]
        return int(max(vals)) if vals else None

    # -- internals -------------------------------------------------------------------------
    def _observe_scores(self, pipeline: str, scores: Iterable[float]) -> None:
        buf = self._scores.setdefault(pipeline, deque(maxlen=SCORE_WINDOW))
        buf.extend(s for s in map(float, scores) if math.isfinite(s))
        if not buf:
            return
        xs = sorted(buf)
        for q in SCORE_QUANTILES:
            self.g_score.labels(pipeline=pipeline, quantile=q).set(xs[min(len(xs) - 1, int(float(q) * len(xs)))])
        thr = self._thresholds.get(pipeline)
        if thr is not None:
            self.g_over.labels(pipeline=pipeline).set(sum(x > thr for x in xs) / len(xs))


def partition_lags(consumer, consumed: dict) -> dict[tuple[str, int], int]:
    """Lag per assigned partition from a kafka-python consumer: high watermark - next offset to consume.

    ``consumed`` maps TopicPartition -> the next offset the daemon will read (``Daemon.consumed``).
    Partitions with no fetch response yet (no high watermark) or nothing consumed are left out.
    The high watermark comes with every fetch response (no extra request); exact on the embedded
    broker too (``tests/test_health.py``).
    """
    out = {}
    for tp in consumer.assignment():
        hw, pos = consumer.highwater(tp), consumed.get(tp)
        if hw is not None and pos is not None:
            out[(tp.topic, tp.partition)] = max(0, hw - pos)
    return out


def topic_partition_counts(consumer, topics: Iterable[str]) -> dict[str, int]:
    """Partition count of each of ``topics`` from the metadata a kafka-python consumer already holds
    (kept fresh by the client for its subscription; no request, so it never blocks the loop).
    Topics whose metadata has not arrived yet are left out."""
    try:
        cluster = consumer._client.cluster
    except AttributeError:
        return {}
    out = {}
    for t in topics:
        parts = cluster.partitions_for_topic(t)
        if parts:
            out[t] = len(parts)
    return out
