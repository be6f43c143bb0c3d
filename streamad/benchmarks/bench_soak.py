"""The soak of ``streamad bench``: N live streams for a long time; RSS and latency at start and end.

    streamad bench --soak 30 --soak-streams 800        # 30 minutes at 800 streams

The embedded broker keeps every record in memory and enforces no retention (800 streams of
16 kHz int16 audio are 25.6 MB/s, 46 GB in 30 minutes), and its fetches slow down as a partition
fills with record batches (``tools/broker_probe.py``; docs/PERFORMANCE.md, "What a soak costs the
embedded broker"). So the input moves every ``--soak-rotate-s`` seconds (default 20) to the next
of a ring of ``RING`` topics (all in the daemon's ``input_topics``), and a topic is emptied (deleted
and created again) two moves after its producers stopped, once the daemon has read it to its end
(its consumer lag on /metrics is 0): nothing is deleted unread. A topic the daemon has not read by
then is left as it is, and the next segment written to it follows what it holds (counted in
``input_topic_recycles_skipped``). Each move starts new streams in the daemon (a stream is keyed by
topic, partition and id; a topic comes round again after ``RING`` segments, past
``worker.idle_stream_s``, set to 30 s here, so its streams start afresh). Against a real Kafka
(``--bootstrap``) retention does this job; the ring is kept so that both runs are alike.

Reported: latency p50/p95/p99 and the daemon's RSS over the first minutes after the warm-up
("start"), over the last minutes ("end") and over the whole run; the RSS change end vs start;
rebalances seen in the daemon log; producers' lateness. Results go to ``OUT/soak.json`` and into
``OUT/performance.json`` / ``.md``.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

import numpy as np

from streamad.benchmarks import bench_report
from streamad.benchmarks.bench_env import DaemonRun, corpus, daemon_worker, prepare_model, write_config
from streamad.benchmarks.bench_live import (
    AlertCollector,
    Ctx,
    Sampler,
    latency_stats,
    spawn_producers,
    summarize,
    wait_producers,
)
from streamad.config import ConfigError

SPAN_S = 120.0  # the "start" and "end" spans
RING = 4  # input topics the soak moves round (a few partitions subscribed, whatever its length)


def soak(a, out: Path, say: Callable[[str], None]) -> int:
    from streamad.broker import EmbeddedBroker
    from streamad.io.kafka import ensure_topics

    if not a.soak_streams:
        raise ConfigError("bench --soak needs --soak-streams N (80 % of the live capacity measured by the sweep)")
    from streamad.benchmarks.bench import data_dir

    data = data_dir(a)
    from streamad.benchmarks.bench import box_info

    argv = sys.argv[2:] if sys.argv[1:2] == ["bench"] else []
    head = {"command": "streamad bench " + shlex.join(argv), "box": box_info(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    broker = None if a.bootstrap else EmbeddedBroker().start()
    try:
        ctx = Ctx.from_args(a, out, broker, say, device=a.device, worker=daemon_worker(a))
        sig = corpus(data, out)
        ctx.model, model_info = prepare_model(out, data, sig, Path(a.model) if a.model else None, a.alert_fraction,
                                            a.detector)
        base = f"soak-{uuid.uuid4().hex[:6]}"
        segments = max(1, int(np.ceil(a.soak * 60 / a.soak_rotate_s)))
        inputs = [f"{base}-{i}" for i in range(min(segments, RING))]
        ensure_topics(ctx.bootstrap, inputs + [f"{base}-alerts", f"{base}-dlq"], a.partitions)
        cfg = write_config(out / "soak.yaml", base, f"bench-{base}", ctx.model, ctx.embedded, inputs=inputs,
                           device=a.device, idle_stream_s=30.0, max_streams=_max_streams(a.soak_streams),
                           scorer=a.scorer, **ctx.worker)
        res = _run(ctx, a, cfg, base, inputs, segments, say)
        res["model"] = model_info
        head["box"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        res.update(head, finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    finally:
        if broker:
            broker.stop()
    (out / "soak.json").write_text(json.dumps(res, indent=1))
    perf = out / "performance.json"
    full = json.loads(perf.read_text()) if perf.exists() else {}
    full["soak"] = res
    bench_report.write_all(full, out, Path(a.docs) if a.docs else None)
    print(bench_report.soak_markdown(res))
    return 0


def _run(ctx: Ctx, a, cfg: Path, base: str, inputs: list[str], segments: int, say) -> dict:
    n, seg_s = a.soak_streams, a.soak_rotate_s
    log = ctx.out / "daemon-soak.log"
    daemon = DaemonRun(cfg, ctx.bootstrap, log, ctx.port(), 1).start()
    collector = AlertCollector(ctx.bootstrap, f"{base}-alerts")
    collector.start()
    t0 = time.time() + 6.0
    live: list = []
    sampler = Sampler(daemon, lambda: [p.pid for p, _ in live] + ([ctx.broker_pid] if ctx.broker_pid else []), 5.0,
                      broker_pid=ctx.broker_pid)
    sampler.start()
    reports: list[dict] = []
    skipped = 0  # ring topics not emptied: the daemon had not read them when their turn came
    next_say = [time.time()]

    def wait_until(t: float) -> None:  # a progress line every minute, whatever the rotation period
        while time.time() < t:
            if time.time() >= next_say[0]:
                r = sampler.rows[-1] if sampler.rows else {}
                say(f"  soak {(time.time() - t0) / 60:5.1f}/{a.soak:.0f} min: lag {r.get('lag', 0):.0f}, "
                    f"RSS {r.get('rss_mb', 0):.0f} MB, alerts {len(collector.alerts)}")
                next_say[0] += 60.0
            time.sleep(min(0.5, max(0.0, t - time.time())))

    try:
        for i in range(segments):
            topic = inputs[i % len(inputs)]
            t_seg = t0 + i * seg_s
            wait_until(t_seg - 5.0)  # the next segment's producers start 5 s ahead
            nxt = spawn_producers(ctx, topic, n, seg_s, t_seg, paced=True, skip_s=i * seg_s)  # the audio goes on
            reports += wait_producers(live) if live else []
            live[:] = nxt
            if i >= 2:  # (then the ring has at least three topics)
                skipped += not _recycle_if_read(ctx, daemon, inputs[(i - 2) % len(inputs)], a.partitions)
        wait_until(t0 + segments * seg_s)
        reports += wait_producers(live)
        t_end = time.time()
        time.sleep(10.0)
    finally:
        sampler.done.set()
        collector.done.set()
        rc = daemon.stop()
    collector.join(5)
    ctx.drop_topics_named(inputs + [f"{base}-alerts", f"{base}-dlq"])
    res = _summary(ctx, a, sampler.rows, collector.alerts, reports, t0, t_end, rc, log)
    res["input_topic_recycles_skipped"] = skipped
    return res


def _max_streams(streams: int) -> int:
    """The daemon's ``worker.max_streams`` for a soak: a stream is keyed by its topic, so while the
    daemon reads one topic, the producers fill the next and an idle one waits out ``idle_stream_s``,
    up to every ring topic holds live streams; with the default (2 000) 800 soak streams made the
    daemon evict streams that were still sending and drop their samples."""
    from streamad.config import WorkerConfig

    return max(WorkerConfig().max_streams, (RING + 1) * streams)


def _recycle_if_read(ctx: Ctx, daemon: DaemonRun, topic: str, partitions: int) -> bool:
    """Empty a ring topic (delete it and create it again) if the daemon has read it to its end (its
    consumer lag is 0); True when it did. An unread topic is left alone: nothing is deleted unread."""
    from streamad.io.kafka import ensure_topics

    try:
        lag = daemon.topic_lag(topic)
    except OSError:  # /metrics did not answer: not known to be read
        lag = None
    if lag != 0:
        ctx.say(f"  soak: input topic {topic} not read to its end yet (lag {lag}); the next segment follows it")
        return False
    ctx.drop_topics_named([topic])
    ensure_topics(ctx.bootstrap, [topic], partitions)  # (if a client's metadata request re-created it first, as is)
    return True


def _summary(ctx, a, rows, alerts, reports, t0, t_end, rc, log: Path) -> dict:
    spans = {"start": (t0 + a.warmup_s, t0 + a.warmup_s + SPAN_S), "end": (t_end - SPAN_S, t_end),
             "all": (t0 + a.warmup_s, t_end)}
    res: dict = {"streams": a.soak_streams, "minutes": a.soak, "rotate_s": a.soak_rotate_s, "daemon_exit": rc,
                 "rebalances": log.read_text().count("partitions revoked"),
                 "producer_late_p99_s": max(r["late_p99_s"] for r in reports),
                 "producer_late_max_s": max(r["late_max_s"] for r in reports),
                 "rss_series": [[round((r["t"] - t0) / 60, 2), round(r["rss_mb"], 1)] for r in rows if r["t"] >= t0]}
    for name, (lo, hi) in spans.items():
        s = summarize(rows, lo, hi)
        span = [r["rss_mb"] for r in rows if lo <= r["t"] <= hi]
        res[name] = {"span": f"{(lo - t0) / 60:.1f}-{(hi - t0) / 60:.1f} min", "latency": latency_stats(alerts, lo, hi),
                     "rss_mb": round(float(np.mean(span)), 1) if span else None, **s}
    if res["start"]["rss_mb"] and res["end"]["rss_mb"]:
        res["rss_change_pct"] = round(100 * (res["end"]["rss_mb"] / res["start"]["rss_mb"] - 1), 2)
    return res
