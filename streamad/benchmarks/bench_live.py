"""The live phase of ``streamad bench``: N streams produced in real time by paced producer
processes, the daemon scoring them, alert latency read off the alert topic.

Latency of an alert = the time a consumer of the alert topic receives it (so the broker has
acknowledged and served it) minus its ``window_end`` (the capture time of the window's last
sample; producers stamp capture times with the wall clock). Alerts of windows that end in the
warm-up are left out. Every second the sampler records the daemon's consumer lag, scoring queue,
windows scored, CPU and RSS (/metrics and /proc), and the CPU of the broker and the producers.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from streamad.benchmarks.bench_env import DaemonRun, proc_stats, write_config
from streamad.benchmarks.bench_producer import LINGER_MS


@dataclass
class Ctx:
    """What every run of one ``streamad bench`` shares."""

    bootstrap: str
    out: Path
    corpus: Path
    model: Path
    embedded: bool
    partitions: int = 4
    chunk_s: float = 0.1
    broker_pid: int | None = None
    say: Callable[[str], None] = print
    naive_model: Path | None = None  # the GMGAN the naive loop runs (bench_env.naive_model)
    scorer: str = "thread"  # the daemon's worker.scorer
    device: str = "cpu"  # the daemon's model.device (bench --device)
    worker: dict | None = None  # more worker settings of the daemon (bench --max-batch, --queue-windows)
    linger_ms: int = LINGER_MS  # paced producers: how long a record may wait for others of its batch (bench --linger-ms)

    @classmethod
    def from_args(cls, a, out: Path, broker, say: Callable[[str], None], **kw) -> "Ctx":
        """The settings a sweep and a soak share, from ``streamad bench``'s arguments; ``broker`` is
        the embedded one, or None with ``--bootstrap``."""
        return cls(a.bootstrap or broker.bootstrap, out, out / "corpus.npy", Path(), broker is not None,
                   a.partitions, a.chunk_s, broker.proc.pid if broker else None, say, linger_ms=a.linger_ms, **kw)

    def port(self, n: int = 1) -> int:
        from streamad.broker import free_port

        return free_port() if n == 1 else _free_block(n)

    def topics(self, prefix: str) -> str:
        from streamad.io.kafka import ensure_topics

        topic = f"{prefix}-{uuid.uuid4().hex[:6]}"
        ensure_topics(self.bootstrap, [topic, f"{topic}-alerts", f"{topic}-dlq"], self.partitions)
        return topic

    def drop_topics(self, topic: str) -> None:
        """Delete a run's topics: the embedded broker keeps everything in memory."""
        self.drop_topics_named([topic, f"{topic}-alerts", f"{topic}-dlq"])

    def drop_topics_named(self, names: list[str]) -> None:
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.delete_topics(names)
        except Exception as e:  # a cluster may forbid it: not the benchmark's business
            self.say(f"  (could not delete topics {', '.join(names)}: {e})")
        finally:
            admin.close()


def _free_block(n: int) -> int:
    import socket

    from streamad.broker import free_port

    for _ in range(50):
        p = free_port()
        try:
            for i in range(n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p + i))
            return p
        except OSError:
            continue
    raise RuntimeError("no block of free ports")


def spawn_producers(ctx: Ctx, topic: str, streams: int, seconds: float, t0: float, paced: bool,
                    per_process: int = 250, skip_s: float = 0.0) -> list[tuple[subprocess.Popen, Path]]:
    """Producer processes, ``per_process`` streams each (at least 2 processes when paced and N > 50)."""
    procs = max(1, math.ceil(streams / per_process), 2 if paced and streams > 50 else 1)
    out = []
    for i in range(procs):
        first, last = i * streams // procs, (i + 1) * streams // procs
        report = ctx.out / f"producer-{topic}-{i}.json"
        cmd = [sys.executable, "-m", "streamad.benchmarks.bench_producer", "--bootstrap", ctx.bootstrap,
               "--topic", topic, "--corpus", str(ctx.corpus), "--first", str(first), "--count", str(last - first),
               "--seconds", str(seconds), "--chunk-s", str(ctx.chunk_s), "--t0", repr(t0), "--report", str(report),
               "--skip-s", repr(skip_s), "--linger-ms", str(ctx.linger_ms)]
        out.append((subprocess.Popen(cmd + (["--paced"] if paced else [])), report))
    return out


def wait_producers(procs: list[tuple[subprocess.Popen, Path]], timeout: float = 900.0) -> list[dict]:
    """Their reports; a producer still running ``timeout`` s later (a broker that stopped taking
    records) is killed and the benchmark stops with that reason instead of hanging."""
    reports, deadline = [], time.monotonic() + timeout
    for p, report in procs:
        try:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q, _ in procs:
                q.kill()
            raise RuntimeError(f"a benchmark producer was still running after {timeout:.0f} s") from None
        if p.returncode != 0:
            raise RuntimeError(f"benchmark producer exited with {p.returncode}")
        reports.append(json.loads(report.read_text()))
        report.unlink()
        if reports[-1].get("chunks_failed"):
            r = reports[-1]
            print(f"[bench {time.strftime('%H:%M:%S')}]   the broker did not acknowledge {r['chunks_failed']} of a "
                  f"producer's {r['chunks_sent']} chunks: {r.get('failures')}", file=sys.stderr, flush=True)
    return reports


class AlertCollector(threading.Thread):
    """Reads the alert topic from the start; (receive time, window_end) per alert."""

    def __init__(self, bootstrap: str, topic: str):
        super().__init__(daemon=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from kafka import KafkaConsumer, TopicPartition
        self.c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                               auto_offset_reset="earliest", fetch_max_wait_ms=10)
        deadline = time.monotonic() + 30.0
        while not (parts := self.c.partitions_for_topic(topic)):  # a new topic's metadata can lag
            if time.monotonic() > deadline:
                raise RuntimeError(f"alert topic {topic}: no partition metadata within 30 s")
            time.sleep(0.2)
        self.c.assign([TopicPartition(topic, p) for p in parts])
        self.alerts: list[tuple[float, float]] = []
        self.done = threading.Event()

    def run(self) -> None:
        try:
            while not self.done.is_set():
                for recs in self.c.poll(timeout_ms=100).values():
                    now = time.time()
                    for rec in (json.loads(r.value) for r in recs):
                        if rec.get("type", "alert") == "alert":  # not the event_closed records
                            self.alerts.append((now, rec["window_end"]))
        finally:
            self.c.close()


class Sampler(threading.Thread):
    """Once a second: the daemon's /metrics totals and CPU/RSS; the broker's and producers' CPU."""

    def __init__(self, daemon: DaemonRun, others: Callable[[], list[int]], every: float = 1.0,
                 broker_pid: int | None = None):
        """``others``: the producers' and the broker's processes (their CPU together); ``broker_pid``:
        the embedded broker alone as well, so that the two can be told apart."""
        super().__init__(daemon=True)
        self.d, self.others, self.every, self.broker_pid = daemon, others, every, broker_pid
        self.rows: list[dict] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            t = time.time()
            try:
                m = self.d.totals()
            except OSError:
                m = {}
            cpu, rss = proc_stats(self.d.pids())
            ocpu, _ = proc_stats(self.others())
            bcpu = proc_stats([self.broker_pid])[0] if self.broker_pid else None
            self.rows.append({"t": t, "windows": m.get("streamad_windows_scored_total", 0.0),
                              "records": sum(v for k, v in m.items() if k == "streamad_records_total"),
                              "lag": m.get("streamad_consumer_lag", 0.0),
                              "queue": m.get("streamad_scoring_queue_depth", 0.0),
                              "paused": m.get("streamad_paused_partitions", 0.0),
                              "cpu_s": cpu, "rss_mb": rss, "others_cpu_s": ocpu, "broker_cpu_s": bcpu})
            self.done.wait(max(0.0, self.every - (time.time() - t)))


def _pct(x: np.ndarray, q: float) -> float | None:
    return round(float(np.quantile(x, q)), 3) if len(x) else None


def latency_stats(alerts: list[tuple[float, float]], lo: float, hi: float) -> dict:
    lat = np.array([r - e for r, e in alerts if lo <= e <= hi])
    return {"alerts": int(len(lat)), "p50_s": _pct(lat, 0.5), "p95_s": _pct(lat, 0.95), "p99_s": _pct(lat, 0.99),
            "max_s": round(float(lat.max()), 3) if len(lat) else None}


def summarize(rows: list[dict], lo: float, hi: float) -> dict:
    """Rates and resources over the sampler rows between ``lo`` and ``hi`` (wall clock)."""
    win = [r for r in rows if lo <= r["t"] <= hi]
    if len(win) < 2:
        return {}
    a, b = win[0], win[-1]
    dt = b["t"] - a["t"]
    return {"windows_per_s": round((b["windows"] - a["windows"]) / dt, 1),
            "records_per_s": round((b["records"] - a["records"]) / dt, 1),
            "daemon_cpu_pct": round(100 * (b["cpu_s"] - a["cpu_s"]) / dt, 1),
            "broker_producers_cpu_pct": round(100 * (b["others_cpu_s"] - a["others_cpu_s"]) / dt, 1),
            **({"broker_cpu_pct": round(100 * (b["broker_cpu_s"] - a["broker_cpu_s"]) / dt, 1)}
               if a.get("broker_cpu_s") is not None and b.get("broker_cpu_s") is not None else {}),
            "rss_mb_start": round(a["rss_mb"], 1), "rss_mb_end": round(b["rss_mb"], 1),
            "rss_mb_max": round(max(r["rss_mb"] for r in win), 1),
            "lag_max": int(max(r["lag"] for r in win)), "lag_end": int(b["lag"]),
            "queue_max": int(max(r["queue"] for r in win))}


def run_live(ctx: Ctx, n: int, seconds: float, warmup_s: float, processes: int = 1, **worker) -> dict:
    """One point of the sweep: N paced streams for ``seconds`` (the first ``warmup_s`` not counted)."""
    topic = ctx.topics(f"live{n}")
    cfg = write_config(ctx.out / f"live-{n}.yaml", topic, f"bench-{topic}", ctx.model, ctx.embedded, device=ctx.device,
                       **{"scorer": ctx.scorer, **(ctx.worker or {}), **worker})
    daemon = DaemonRun(cfg, ctx.bootstrap, ctx.out / f"daemon-live-{n}.log", ctx.port(processes), processes).start()
    collector = AlertCollector(ctx.bootstrap, f"{topic}-alerts")
    collector.start()
    t0 = time.time() + 4.0  # producers start up (imports) before their first chunk is due
    producers = spawn_producers(ctx, topic, n, seconds, t0, paced=True)
    sampler = Sampler(daemon, lambda: [p.pid for p, _ in producers] + ([ctx.broker_pid] if ctx.broker_pid else []),
                      broker_pid=ctx.broker_pid)
    sampler.start()
    try:
        while any(p.poll() is None for p, _ in producers):
            time.sleep(1.0)
            if sampler.rows and sampler.rows[-1]["t"] > t0 and len(sampler.rows) % 10 == 0:
                r = sampler.rows[-1]
                ctx.say(f"  live N={n}: {r['t'] - t0:5.0f}/{seconds:.0f} s  lag {r['lag']:.0f}  "
                        f"queue {r['queue']:.0f}  alerts {len(collector.alerts)}")
        reports = wait_producers(producers)
        t_end = time.time()
        _settle(sampler, t_end, timeout=30.0)
    finally:
        sampler.done.set()
        collector.done.set()
        rc = daemon.stop()
        for p, _ in producers:
            if p.poll() is None:
                p.kill()
    collector.join(5)
    ctx.drop_topics(topic)
    lo, hi = t0 + warmup_s, t0 + seconds
    res = {"streams": n, "processes": processes, "seconds": seconds, "warmup_s": warmup_s, "daemon_exit": rc,
           "windows_due_per_s": 2.0 * n, "records_due_per_s": round(n / ctx.chunk_s),
           **summarize(sampler.rows, lo, hi), "latency": latency_stats(collector.alerts, lo, hi),
           "producer_late_max_s": max(r["late_max_s"] for r in reports),
           "producer_late_p99_s": max(r["late_p99_s"] for r in reports),
           "drain_s": round(_drained_at(sampler.rows, t_end) - t_end, 1),
           "lag_series": [[round(r["t"] - t0, 1), int(r["lag"])] for r in sampler.rows if r["t"] >= t0]}
    res["keeps_up"], res["verdict"] = verdict(res)
    return res


def _settle(sampler: Sampler, t_end: float, timeout: float) -> None:
    """After the producers stop: wait until the daemon has caught up (lag 0, windows steady)."""
    while time.time() - t_end < timeout:
        time.sleep(0.5)
        rows = [r for r in sampler.rows if r["t"] > t_end]
        if len(rows) >= 2 and rows[-1]["lag"] == 0 and rows[-1]["windows"] == rows[-2]["windows"]:
            return


def _drained_at(rows: list[dict], t_end: float) -> float:
    after = [r for r in rows if r["t"] >= t_end]
    for r in after:
        if r["lag"] == 0:
            return r["t"]
    return after[-1]["t"] if after else t_end


def verdict(r: dict) -> tuple[bool, str]:
    """Keeps up: scores >= 97 % of the windows due, lag ends below 1 s of records, p99 < 5 s
    (when there were alerts), producers on schedule (p99 < 0.25 s late)."""
    due, rate = r["windows_due_per_s"], r.get("windows_per_s", 0.0)
    lat = r["latency"]
    if r.get("producer_late_p99_s", 0) > 0.25:
        return False, (f"producers fell behind their schedule (p99 {r['producer_late_p99_s']} s late): "
                       "the box is out of CPU")
    if rate < 0.97 * due:
        return False, f"scored {rate} of {due:.0f} windows/s due"
    if r.get("lag_end", 0) > r["records_due_per_s"]:
        return False, f"lag {r['lag_end']} records at the end (more than 1 s of input)"
    if lat["p99_s"] is not None and lat["p99_s"] > 5.0:
        return False, f"alert latency p99 {lat['p99_s']} s"
    return True, "keeps up" if lat["alerts"] else "keeps up (no alerts to time)"
